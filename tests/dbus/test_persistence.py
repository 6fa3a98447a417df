"""What the service knows survives a restart; bad state records are skipped."""

import glob
import os
import shutil
import unittest

from storaged import MANAGER, POOL, ROOT, MiB, StoragedTestCase, pool_path


def strip_pool_usage(props):
    # the fill level of the filesystem the pool lives on moves with every
    # other process writing to it
    return {k: v for k, v in props.items() if k not in ('Usage', 'UsageDetails')}


class PersistenceTest(StoragedTestCase):

    def prepare(self):
        kdir = os.path.join(self.base_dir, 'vm-kernels', '6.1.0')
        os.makedirs(kdir)
        for f in ('vmlinuz', 'initramfs', 'modules.img'):
            with open(os.path.join(kdir, f), 'wb') as fh:
                fh.write(b'k' * 100)
        os.makedirs(os.path.join(self.pools_dir, 'kernels2', '5.10'))

    def populate(self):
        self.add_file_pool('p1', revisions_to_keep=0)
        self.add_file_pool('p2')
        self.add_pool('k2', 'linux-kernel', {'dir_path': os.path.join(self.pools_dir, 'kernels2')})
        self.pool_set_revisions_to_keep('p2', 0)
        self.pool_set_revisions_to_keep('p2', 1)
        v = {}
        v['tpl'] = self.create_volume('p1', dict(name='root', vm='tpl', template=True, size=2 * MiB, rw=True,
                                                 save_on_stop=True))
        v['root'] = self.create_volume('p1', dict(name='root', vm='work', size=2 * MiB, rw=True, snap_on_start=True,
                                                  source='vm-templates/tpl/root'))
        v['private'] = self.create_volume('p1', dict(name='private', vm='work', size=MiB, rw=True,
                                                     save_on_stop=True, revisions_to_keep=1))
        v['volatile'] = self.create_volume('p1', dict(name='volatile', vm='work', size=MiB, rw=True))
        v['custom'] = self.create_volume('p2', dict(name='data', vm='other', vid='appvms/other/vol', size='3145728',
                                                    rw=True, save_on_stop=True))
        v['ro'] = self.create_volume('varlibqubes', dict(name='private', vm='ro-vm', size=MiB, rw=True,
                                                         save_on_stop=True))
        self.set_rw(v['ro'], False)
        self.set_revisions_to_keep(v['custom'], 0)
        self.resize(v['custom'], 4 * MiB)
        # one commit, so there is a revision; then started for good
        self.start(v['private'])
        self.stop(v['private'])
        self.start(v['private'])
        self.start(v['root'])
        return v

    def state(self):
        """Everything a client can read, minus the pools' fill level."""
        out = {'version': self.get_prop(ROOT, MANAGER, 'Version'), 'drivers': self.list_drivers(),
               'pools': self.list_pools(), 'pool_props': {}, 'volumes': {}, 'volume_props': {}}
        for name, path in out['pools']:
            self.assertEqual(self.get_pool(name), path)
            # usage is refreshed in the background: make it current
            self.refresh_usage(name)
            out['pool_props'][name] = strip_pool_usage(self.pprops(name))
            out['volumes'][name] = self.list_volumes(name)
            for vid, vpath in out['volumes'][name]:
                self.assertEqual(self.get_volume(name, vid), vpath)
                out['volume_props'][vpath] = self.vprops(vpath)
        objs = self.managed_objects()
        out['objects'] = sorted(objs)
        return out

    def assertStateEqual(self, before, after, ignore_volumes=()):
        for key in before:
            b, a = before[key], after[key]
            if key == 'volume_props':
                b = {k: v for k, v in b.items() if k not in ignore_volumes}
            if b != a:
                if isinstance(b, dict):
                    lines = []
                    for k in sorted(set(b) | set(a)):
                        if b.get(k) != a.get(k):
                            lines.append(f'  {k}:\n    before: {b.get(k)!r}\n    after:  {a.get(k)!r}')
                    self.fail(f'{key} differs after restart:\n' + '\n'.join(lines))
                self.fail(f'{key} differs after restart:\n  before: {b!r}\n  after:  {a!r}')

    def test_restart_keeps_everything(self):
        v = self.populate()
        before = self.state()
        self.assertTrue(before['volume_props'][v['private']]['Started'])
        self.assertEqual([r[0] for r in before['volume_props'][v['private']]['Revisions']], ['old'])
        self.assertEqual(before['volume_props'][v['custom']]['Size'], 4 * MiB)
        self.assertFalse(before['volume_props'][v['ro']]['Rw'])
        self.assertEqual([vid for vid, _ in before['volumes']['linux-kernel']], ['6.1.0'])
        self.assertEqual([vid for vid, _ in before['volumes']['k2']], ['5.10'])
        self.restart_service()
        after = self.state()
        self.assertStateEqual(before, after)
        # and once more, with nothing done in between
        self.restart_service()
        self.assertStateEqual(before, self.state())

    def test_started_volume_stops_after_restart(self):
        v = self.populate()
        self.restart_service()
        self.assertTrue(self.vprop(v['private'], 'Started'))
        self.stop(v['private'])
        self.assertFalse(self.vprop(v['private'], 'Started'))
        self.stop(v['root'])
        self.restart_service()
        self.assertFalse(self.vprop(v['private'], 'Started'))
        self.assertFalse(self.vprop(v['root'], 'Started'))

    def test_removals_persist(self):
        v = self.populate()
        self.stop(v['root'])
        self.remove(v['root'])
        self.remove(v['custom'])
        self.remove_pool('p2')
        before = self.state()
        self.restart_service()
        self.assertStateEqual(before, self.state())
        self.assertNotIn('p2', [n for n, _ in self.list_pools()])
        self.assertDBusError('NoSuchVolume', self.get_volume, 'p1', 'appvms/work/root')

    def test_garbage_records_skipped(self):
        v = self.populate()
        before = self.state()
        self.stop_service()
        pools_dir = os.path.join(self.state_dir, 'pools')
        vol_records = sorted(glob.glob(os.path.join(self.state_dir, 'volumes', 'p1', '*.volume')))
        self.assertTrue(os.path.isdir(pools_dir) and vol_records,
                        f'state dir layout unknown to this test: {sorted(self.state_records())}')
        with open(os.path.join(pools_dir, 'garbage.pool'), 'wb') as f:
            f.write(os.urandom(300))
        with open(os.path.join(pools_dir, 'empty.pool'), 'wb'):
            pass
        with open(os.path.join(self.state_dir, 'volumes', 'p1', 'garbage.volume'), 'wb') as f:
            f.write(b'\x00\xff' * 100)
        with open(os.path.join(self.state_dir, 'volumes', 'p1', 'empty.volume'), 'wb'):
            pass
        # a torn copy of a good record under another name
        with open(vol_records[0], 'rb') as f:
            data = f.read()
        with open(os.path.join(self.state_dir, 'volumes', 'p1', 'appvms%torn%private.volume'), 'wb') as f:
            f.write(data[:len(data) // 2])
        self.start_service()
        self.assertStateEqual(before, self.state())
        self.assertNotIn('garbage', [n for n, _ in self.list_pools()])
        self.assertDBusError('NoSuchVolume', self.get_volume, 'p1', 'appvms/torn/private')
        self.assertTrue(self.vprop(v['private'], 'Started'))

    def test_torn_volume_record_skipped(self):
        v = self.populate()
        before = self.state()
        self.stop_service()
        # tear the record of one volume: only that one is lost
        rec = os.path.join(self.state_dir, 'volumes', 'p2', 'appvms%other%vol.volume')
        self.assertTrue(os.path.isfile(rec), f'state dir layout unknown to this test: {sorted(self.state_records())}')
        with open(rec, 'rb') as f:
            data = f.read()
        with open(rec, 'wb') as f:
            f.write(data[:len(data) // 2])
        self.start_service()
        self.assertDBusError('NoSuchVolume', self.get_volume, 'p2', 'appvms/other/vol')
        before['volumes']['p2'] = [x for x in before['volumes']['p2'] if x[0] != 'appvms/other/vol']
        before['objects'] = [o for o in before['objects'] if o != v['custom']]
        # the lost volume no longer counts in its pool's Provisioned
        before['pool_props']['p2']['Provisioned'] -= before['volume_props'][v['custom']]['Size']
        self.assertStateEqual(before, self.state(), ignore_volumes=(v['custom'],))

    def test_torn_pool_record_skipped(self):
        self.populate()
        d = os.path.join(self.pools_dir, 'lonely')
        self.add_pool('lonely', 'file', {'dir_path': d, 'revisions_to_keep': '1'})
        before = self.state()
        self.stop_service()
        rec = os.path.join(self.state_dir, 'pools', 'lonely.pool')
        self.assertTrue(os.path.isfile(rec), f'state dir layout unknown to this test: {sorted(self.state_records())}')
        with open(rec, 'rb') as f:
            data = f.read()
        # cut inside the configuration: the pool has no usable dir_path
        cut = data.index(b'dir_path')
        with open(rec, 'wb') as f:
            f.write(data[:cut])
        self.start_service()
        self.assertDBusError('NoSuchPool', self.get_pool, 'lonely')
        before['pools'] = [p for p in before['pools'] if p[0] != 'lonely']
        del before['pool_props']['lonely']
        del before['volumes']['lonely']
        before['objects'] = [o for o in before['objects'] if o != pool_path('lonely')]
        self.assertStateEqual(before, self.state())
        # the pool's directory is left alone
        self.assertTrue(os.path.isdir(os.path.join(d, 'appvms')))

    def test_empty_state_dir_gives_defaults_again(self):
        self.populate()
        self.stop_service()
        shutil.rmtree(self.state_dir)
        self.start_service()
        self.assertEqual([n for n, _ in self.list_pools()], ['linux-kernel', 'varlibqubes'])
        self.assertEqual(self.get_prop(pool_path('varlibqubes'), POOL, 'Config')['dir_path'], self.base_dir)
        self.assertEqual(self.list_volumes('varlibqubes'), [])

if __name__ == '__main__':
    unittest.main(verbosity=2)
