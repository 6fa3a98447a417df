"""Pool setup of file-reflink on real filesystems (docs/drivers.md, "file-reflink": pool setup):
AddPool works where FICLONE works (btrfs, XFS reflink=1); on tmpfs and ext4
the setup check fails with the setup-check message, removing the directory only if
setup made it; setup_check=false works anywhere; the default pool
varlibqubes is file-reflink on a reflink-capable base dir and file otherwise."""

import os

from reflinktest import NO_REFLINK_MSG, ReflinkTestCase, list_files, main, pool_path


class PoolSetupTest(ReflinkTestCase):

    def check_pool_made(self, name, d, rtk='2'):
        self.assertEqual(self.get_pool(name), pool_path(name))
        self.assertIn((name, pool_path(name)), [tuple(p) for p in self.list_pools()])
        props = self.pprops(name)
        self.assertEqual(props['Driver'], 'file-reflink')
        # setup_check is an instruction for setup, never saved
        self.assertConfig(props['Config'], name, 'file-reflink', {'dir_path': d, 'revisions_to_keep': rtk})
        for sub in ('appvms', 'vm-templates'):
            self.assertTrue(os.path.isdir(os.path.join(d, sub)), f'setup of {name} made no {sub}/ in {d}')
        self.assertEqual(sorted(os.listdir(d)), ['appvms', 'vm-templates'],
                         f'setup of {name} left other files in {d} (probe leftovers?)')

    def reflink_fs_works(self, kind):
        mnt = self.mount(kind)
        # a new directory, setup_check by default (true) and explicitly true
        for i, check in enumerate((None, 'true', 'True')):
            d = os.path.join(mnt, f'new{i}')
            self.add_reflink_pool(f'p{i}', d, revisions_to_keep=2, setup_check=check)
            self.check_pool_made(f'p{i}', d)
        # an existing directory
        d = os.path.join(mnt, 'existing')
        os.makedirs(d)
        self.add_reflink_pool('pe', d, revisions_to_keep=2)
        self.check_pool_made('pe', d)
        # survives a restart (persisted), and still without setup_check
        self.restart_service()
        self.check_pool_made('pe', d)
        self.missing_parent_refused(mnt)

    def missing_parent_refused(self, mnt):
        """A dir_path whose parent does not exist is refused by name, and
        setup creates nothing on the way (no parent made and left behind)."""
        for check in (None, 'false'):
            d = os.path.join(mnt, 'no-such-parent', 'pool')
            self.assertDBusError('Failed', self.add_reflink_pool, 'orphan', d, 2, check,
                                 contains=f'Cannot create directory {d}')
            self.assertFalse(os.path.exists(os.path.dirname(d)),
                             f'a refused AddPool (setup_check={check}) created {os.path.dirname(d)}')
            self.assertDBusError('NoSuchPool', self.get_pool, 'orphan')

    def test_btrfs_add_pool(self):
        self.reflink_fs_works('btrfs')

    def test_xfs_add_pool(self):
        self.reflink_fs_works('xfs')

    def no_reflink_fs(self, kind):
        mnt = self.mount(kind)
        # a directory setup creates, setup_check by default: Failed, the
        # directory is gone again, nothing is added (not even after restart)
        for i, check in enumerate((None, 'true')):
            d = os.path.join(mnt, f'new{i}')
            name = f'p{i}'
            e = self.assertDBusError('Failed', self.add_reflink_pool, name, d, 2, check,
                                     contains=NO_REFLINK_MSG.format(dir=d))
            self.assertFalse(os.path.exists(d), f'failed setup left {d} behind (it created it): {e.message}')
            self.assertDBusError('NoSuchPool', self.get_pool, name)
            self.assertNotIn(name, [p[0] for p in self.list_pools()])
        # an existing directory with content: kept exactly as it was
        d = os.path.join(mnt, 'existing')
        os.makedirs(d)
        with open(os.path.join(d, 'keep-me'), 'w') as f:
            f.write('user data\n')
        self.assertDBusError('Failed', self.add_reflink_pool, 'pe', d, 2,
                             contains=NO_REFLINK_MSG.format(dir=d))
        self.assertTrue(os.path.isdir(d), f'failed setup removed the existing directory {d}')
        self.assertEqual(list_files(d), ['keep-me'], f'failed setup changed the existing directory {d}')
        self.assertEqual(sorted(os.listdir(d)), ['keep-me'])
        self.restart_service()
        for name in ('p0', 'p1', 'pe'):
            self.assertDBusError('NoSuchPool', self.get_pool, name)
        # setup_check=false: works on this filesystem, new and existing dirs
        for i, check in enumerate(('false', 'False', '0')):
            d2 = os.path.join(mnt, f'unchecked{i}')
            self.add_reflink_pool(f'u{i}', d2, revisions_to_keep=2, setup_check=check)
            self.check_pool_made(f'u{i}', d2)
        self.missing_parent_refused(mnt)
        self.add_reflink_pool('ue', d, revisions_to_keep=2, setup_check='false')
        self.assertEqual(self.pprops('ue')['Driver'], 'file-reflink')
        self.assertEqual(sorted(os.listdir(d)), ['appvms', 'keep-me', 'vm-templates'])

    def test_tmpfs_setup_check(self):
        self.no_reflink_fs('tmpfs')

    def test_ext4_setup_check(self):
        self.no_reflink_fs('ext4')


class DefaultPoolTestBase(ReflinkTestCase):
    """The service starts with an empty state on a base dir on base_fs."""
    base_fs = None
    expect_driver = None

    def prepare(self):
        mnt = self.mount(self.base_fs)
        self.base_dir = os.path.join(mnt, 'qubes')

    def test_varlibqubes_driver(self):
        props = self.pprops('varlibqubes')
        self.assertEqual(props['Driver'], self.expect_driver,
                         f'varlibqubes on a {self.base_fs} base dir should use {self.expect_driver}')
        self.assertEqual(props['Config'].get('dir_path'), self.base_dir)
        self.assertNotIn('setup_check', props['Config'])
        # and it is usable: a volume starts and stops there
        v = self.origin('varlibqubes', 'work', 'private', size=1 << 20)
        self.start(v)
        self.stop(v)
        self.assertTrue(os.path.isfile(os.path.join(self.base_dir, 'appvms', 'work', 'private.img')))


class DefaultPoolBtrfs(DefaultPoolTestBase):
    base_fs = 'btrfs'
    expect_driver = 'file-reflink'


class DefaultPoolXfs(DefaultPoolTestBase):
    base_fs = 'xfs'
    expect_driver = 'file-reflink'


class DefaultPoolTmpfs(DefaultPoolTestBase):
    base_fs = 'tmpfs'
    expect_driver = 'file'


class DefaultPoolExt4(DefaultPoolTestBase):
    base_fs = 'ext4'
    expect_driver = 'file'


del DefaultPoolTestBase

if __name__ == '__main__':
    main()
