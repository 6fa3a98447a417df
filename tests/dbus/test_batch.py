"""Manager.StartVolumes / StopVolumes / VerifyVolumes: every volume is handled,
then one failure is reported (naming its volume); nothing is rolled back."""

import os
import shutil
import unittest

from storaged import ERROR_NAMES, ERROR_PREFIX, ROOT, MiB, StoragedTestCase, opts, pool_path, volume_path

VMS = ('va', 'vb', 'vc')


class BatchTest(StoragedTestCase):
    pool = 'fp'

    def setUp(self):
        super().setUp()
        self.D = os.path.join(self.pools_dir, self.pool)
        self.add_pool(self.pool, 'file', {'dir_path': self.D, 'revisions_to_keep': '1'})
        self.paths = {}
        for vm in VMS:
            self.paths[vm] = self.create_volume(self.pool, dict(name='private', vm=vm, size=MiB, rw=True,
                                                                save_on_stop=True))

    def vid(self, vm):
        return f'appvms/{vm}/private'

    def img(self, vm):
        return os.path.join(self.D, self.vid(vm) + '.img')

    def cow(self, vm):
        return os.path.join(self.D, self.vid(vm) + '-cow.img')

    def all_paths(self):
        return [self.paths[vm] for vm in VMS]

    def started(self, vm):
        return self.vprop(self.paths[vm], 'Started')

    def test_all_succeed(self):
        self.batch('VerifyVolumes', self.all_paths(), opts(**{'auth.no_user_interaction': True}))
        self.batch('StartVolumes', self.all_paths(), opts(**{'auth.no_user_interaction': True}))
        for vm in VMS:
            self.assertTrue(self.started(vm), vm)
            self.assertTrue(os.path.isfile(self.cow(vm)))
        self.batch('StopVolumes', self.all_paths(), opts(**{'auth.no_user_interaction': True}))
        for vm in VMS:
            self.assertFalse(self.started(vm), vm)
            self.assertTrue(os.path.isfile(self.cow(vm) + '.old'))

    def test_empty_list(self):
        for method in ('StartVolumes', 'StopVolumes', 'VerifyVolumes'):
            self.batch(method, [])

    def test_start_volumes_one_fails(self):
        os.unlink(self.img('vb'))
        self.assertDBusError('MissingImage', self.batch, 'StartVolumes', self.all_paths(), contains=self.vid('vb'))
        self.assertTrue(self.started('va'))
        self.assertTrue(self.started('vc'))
        self.assertFalse(self.started('vb'))
        self.assertTrue(os.path.isfile(self.cow('va')))
        self.assertTrue(os.path.isfile(self.cow('vc')))

    def test_start_volumes_last_fails(self):
        # the failure is reported even when it is not the first volume handled
        os.unlink(self.img('vc'))
        self.assertDBusError('MissingImage', self.batch, 'StartVolumes', self.all_paths(), contains=self.vid('vc'))
        self.assertTrue(self.started('va'))
        self.assertTrue(self.started('vb'))

    def test_verify_volumes_one_fails(self):
        os.unlink(self.img('va'))
        self.assertRejected('MissingImage', self.batch, 'VerifyVolumes', self.all_paths(), contains=self.vid('va'))
        self.batch('VerifyVolumes', [self.paths['vb'], self.paths['vc']])

    def test_stop_volumes_one_fails(self):
        self.batch('StartVolumes', self.all_paths())
        # make committing vb's CoW impossible: a non-empty directory where its
        # old revision goes
        blocker = self.cow('vb') + '.old'
        os.makedirs(os.path.join(blocker, 'x'))
        e = self.assertDBusError(ERROR_NAMES, self.batch, 'StopVolumes', self.all_paths(), contains=self.vid('vb'))
        self.assertTrue(e.name.startswith(ERROR_PREFIX))
        self.assertFalse(self.started('va'))
        self.assertFalse(self.started('vc'))
        self.assertTrue(os.path.isfile(self.cow('va') + '.old'))
        self.assertTrue(os.path.isfile(self.cow('vc') + '.old'))
        # once the obstacle is gone, vb stops too
        shutil.rmtree(blocker)
        self.batch('StopVolumes', [self.paths['vb']])
        self.assertFalse(self.started('vb'))

    def test_mixed_pools(self):
        vq = self.create_volume('varlibqubes', dict(name='volatile', vm='va', size=MiB, rw=True))
        self.batch('StartVolumes', [self.paths['va'], vq])
        self.assertTrue(self.vprop(vq, 'Started'))
        self.assertTrue(self.started('va'))
        self.batch('StopVolumes', [self.paths['va'], vq])
        self.assertFalse(self.vprop(vq, 'Started'))

    def test_unknown_object_path(self):
        bogus = volume_path(self.pool, 'appvms/nosuch/private')
        for method in ('StartVolumes', 'StopVolumes', 'VerifyVolumes'):
            with self.subTest(method=method):
                self.assertDBusError('NoSuchVolume', self.batch, method, [self.paths['va'], bogus],
                                     contains='nosuch')
                self.assertDBusError('NoSuchVolume', self.batch, method, [pool_path(self.pool)])
                self.assertDBusError('NoSuchVolume', self.batch, method, [ROOT])
                self.assertDBusError('NoSuchVolume', self.batch, method, ['/not/ours'], contains='/not/ours')

    def test_duplicate_paths(self):
        self.batch('StartVolumes', [self.paths['va'], self.paths['va']])
        self.assertTrue(self.started('va'))
        self.batch('StopVolumes', [self.paths['va'], self.paths['va']])
        self.assertFalse(self.started('va'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
