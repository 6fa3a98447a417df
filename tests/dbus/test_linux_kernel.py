"""The linux-kernel pool: kernel directories found in <base>/vm-kernels."""

import os
import unittest

from storaged import MiB, StoragedTestCase, opts, pool_path, vconf, volume_path

POOL_NAME = 'linux-kernel'
FULL = '6.1.0-1-amd64'      # vmlinuz, initramfs, modules.img
NO_MODULES = '5.15.94'       # vmlinuz, initramfs only


class LinuxKernelTest(StoragedTestCase):

    def prepare(self):
        self.kdir = os.path.join(self.base_dir, 'vm-kernels')
        for ver, files in ((FULL, ('vmlinuz', 'initramfs', 'modules.img')), (NO_MODULES, ('vmlinuz', 'initramfs'))):
            os.makedirs(os.path.join(self.kdir, ver))
            for f in files:
                with open(os.path.join(self.kdir, ver, f), 'wb') as fh:
                    fh.write(b'\x7fELF' + f.encode() * 1000)

    def vpath(self, ver):
        return volume_path(POOL_NAME, ver)

    def test_volumes_listed(self):
        self.assertEqual(self.list_volumes(POOL_NAME), [(v, self.vpath(v)) for v in sorted((FULL, NO_MODULES))])
        for ver in (FULL, NO_MODULES):
            self.assertEqual(self.get_volume(POOL_NAME, ver), self.vpath(ver))
        self.assertDBusError('NoSuchVolume', self.get_volume, POOL_NAME, '4.19', contains='4.19')

    def test_properties(self):
        for ver in (FULL, NO_MODULES):
            with self.subTest(kernel=ver):
                p = self.vprops(self.vpath(ver))
                d = os.path.join(self.kdir, ver)
                expected = {
                    'Vid': ver, 'Pool': pool_path(POOL_NAME), 'Source': '', 'SnapOnStart': False,
                    'SaveOnStop': False, 'Rw': False, 'RevisionsToKeep': 0, 'Size': 0, 'Usage': 0,
                    'Revisions': [], 'IsDirty': False, 'IsOutdated': False, 'Started': False, 'KernelsDir': d,
                }
                got = {k: p[k] for k in expected}
                self.assertEqual(got, expected)
                if ver == FULL:
                    self.assertEqual(p['Path'], os.path.join(d, 'modules.img'))
                    self.assertEqual(p['BlockDevice'], (os.path.join(d, 'modules.img'), '', 'disk', False))
                else:
                    # no modules.img: no disk for the VM
                    self.assertEqual(p['BlockDevice'][0], '')

    def test_pool_properties(self):
        p = self.pprops(POOL_NAME)
        self.assertEqual(p['Driver'], 'linux-kernel')
        config = dict(p['Config'])
        self.assertEqual(config.pop('revisions_to_keep', '0'), '0')
        self.assertConfig(config, POOL_NAME, 'linux-kernel', {'dir_path': self.kdir})
        self.assertEqual((p['Size'], p['Usage'], p['RevisionsToKeep'], p['UsageState']), (0, 0, 0, ''))
        # its kernels' sizes: what its volumes say they hold
        self.assertEqual(p['UsageDetails'], {'provisioned': p['Provisioned']})

    def test_create_volume_not_supported(self):
        for config in (vconf(name='kernel', vm='work'),
                       vconf(name='kernel', vm='work', vid='6.2.0', size=MiB),
                       vconf(name='kernel', vm='work', size=MiB, rw=False, save_on_stop=False)):
            with self.subTest(config=config):
                self.assertRejected('NotSupported', self.create_volume, POOL_NAME, config, contains=POOL_NAME)
        self.assertEqual([v for v, _ in self.list_volumes(POOL_NAME)], sorted((FULL, NO_MODULES)))

    def test_verify(self):
        self.assertIs(self.verify(self.vpath(FULL)), True)
        self.assertIs(self.verify(self.vpath(NO_MODULES)), True)   # modules.img is optional

    def test_verify_missing_vmlinuz(self):
        os.unlink(os.path.join(self.kdir, FULL, 'vmlinuz'))
        self.assertRejected('MissingImage', self.verify, self.vpath(FULL), contains=FULL)
        self.assertIs(self.verify(self.vpath(NO_MODULES)), True)

    def test_verify_missing_initramfs(self):
        os.unlink(os.path.join(self.kdir, NO_MODULES, 'initramfs'))
        self.assertRejected('MissingImage', self.verify, self.vpath(NO_MODULES), contains=NO_MODULES)

    def test_set_revisions_to_keep_not_supported(self):
        self.assertRejected('NotSupported', self.set_revisions_to_keep, self.vpath(FULL), 1, contains=FULL)
        self.assertEqual(self.vprop(self.vpath(FULL), 'RevisionsToKeep'), 0)
        self.assertRejected('NotSupported', self.pool_set_revisions_to_keep, POOL_NAME, 1, contains=POOL_NAME)
        self.assertEqual(self.pprops(POOL_NAME)['RevisionsToKeep'], 0)
        # 0 is what it keeps anyway
        self.set_revisions_to_keep(self.vpath(FULL), 0)
        self.pool_set_revisions_to_keep(POOL_NAME, 0)

    def test_read_only(self):
        self.assertRejected('ReadOnly', self.resize, self.vpath(FULL), MiB, contains=FULL)
        self.assertRejected(('NotSupported', 'ReadOnly', 'InvalidArgument'), self.set_rw, self.vpath(FULL), True,
                            contains=FULL)
        self.assertFalse(self.vprop(self.vpath(FULL), 'Rw'))

    def test_start_stop(self):
        before = self.snapshot_all()
        for ver in (FULL, NO_MODULES):
            self.start(self.vpath(ver))
            self.assertTrue(self.vprop(self.vpath(ver), 'Started'))
            self.stop(self.vpath(ver))
            self.assertFalse(self.vprop(self.vpath(ver), 'Started'))
        # a kernel's files are never touched
        after = self.snapshot_all()
        kernels = {k: v for k, v in before['tree'].items() if k.startswith('base/vm-kernels/')}
        self.assertEqual(kernels, {k: v for k, v in after['tree'].items() if k.startswith('base/vm-kernels/')})

    def test_batch_with_kernel(self):
        self.batch('StartVolumes', [self.vpath(FULL), self.vpath(NO_MODULES)], opts())
        self.assertTrue(self.vprop(self.vpath(FULL), 'Started'))
        self.batch('VerifyVolumes', [self.vpath(FULL), self.vpath(NO_MODULES)])
        self.batch('StopVolumes', [self.vpath(FULL), self.vpath(NO_MODULES)])
        self.assertFalse(self.vprop(self.vpath(NO_MODULES), 'Started'))


if __name__ == '__main__':
    unittest.main(verbosity=2)
