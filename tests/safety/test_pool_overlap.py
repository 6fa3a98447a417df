#!/usr/bin/python3
"""Two pools never share storage (AddPool).

A pool whose dir_path is another pool's directory — spelled the same, with
'..' or a trailing '/', or reached through a symlinked parent — or lies inside
it, or holds it, is refused with AlreadyExists naming the other pool, and
nothing changes. A dir_path of / or one that is itself a symlink is refused
with InvalidArgument. The one nesting allowed is the default layout: a
linux-kernel directory inside a file pool's directory, outside its appvms/
and vm-templates/ (<base>/vm-kernels beside <base>/appvms).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'dbus'))

import storaged  # noqa: E402
from storaged import StoragedTestCase  # noqa: E402


class PoolOverlapTest(StoragedTestCase):

    def setUp(self):
        super().setUp()
        self.a_dir = os.path.join(self.pools_dir, 'a')
        self.add_file_pool('a', dir_path=self.a_dir)
        self.assertTrue(os.path.isdir(os.path.join(self.a_dir, 'appvms')))

    def refused(self, name, driver, dir_path, error, other):
        self.assertRejected(error, self.add_pool, name, driver, {'dir_path': dir_path}, contains=(name, other))
        self.assertDBusError('NoSuchPool', self.get_pool, name)

    def test_same_directory(self):
        for driver in ('file', 'file-reflink', 'linux-kernel'):
            with self.subTest(driver=driver):
                self.refused('b', driver, self.a_dir, 'AlreadyExists', 'a')

    def test_same_directory_spelled_otherwise(self):
        os.mkdir(os.path.join(self.pools_dir, 'x'))
        for spelling in (self.a_dir + '/', os.path.join(self.pools_dir, 'x', '..', 'a'),
                         self.pools_dir + '//a/.'):
            with self.subTest(dir_path=spelling):
                self.refused('b', 'file', spelling, 'AlreadyExists', 'a')

    def test_through_a_symlinked_parent(self):
        link = os.path.join(self.tmp, 'pools-link')
        os.symlink(self.pools_dir, link)
        self.refused('b', 'file', os.path.join(link, 'a'), 'AlreadyExists', 'a')
        self.refused('b', 'file', os.path.join(link, 'a', 'inner'), 'AlreadyExists', 'a')

    def test_nested(self):
        # inside the other pool's directory (also inside its volume dirs)
        for inner in ('inner', 'appvms', 'appvms/vm', 'vm-templates'):
            for driver in ('file', 'file-reflink', 'linux-kernel'):
                if driver == 'linux-kernel' and inner == 'inner':
                    continue  # the default layout, allowed below
                with self.subTest(inner=inner, driver=driver):
                    self.refused('b', driver, os.path.join(self.a_dir, inner), 'AlreadyExists', 'a')
        # holding the other pool's directory
        for driver in ('file', 'file-reflink', 'linux-kernel'):
            with self.subTest(outer=self.pools_dir, driver=driver):
                self.refused('b', driver, self.pools_dir, 'AlreadyExists', 'a')

    def test_the_default_pools(self):
        # the embedded default: varlibqubes on the base dir, linux-kernel in it
        self.refused('b', 'file', self.base_dir, 'AlreadyExists', 'varlibqubes')
        self.refused('b', 'linux-kernel', os.path.join(self.base_dir, 'vm-kernels'), 'AlreadyExists',
                     'linux-kernel')
        self.refused('b', 'file', os.path.join(self.base_dir, 'vm-kernels', '6.1'), 'AlreadyExists',
                     ('linux-kernel', 'varlibqubes'))

    def test_kernel_directory_beside_volume_dirs_allowed(self):
        kdir = os.path.join(self.a_dir, 'kernels')
        self.add_pool('k', 'linux-kernel', {'dir_path': kdir})
        self.assertEqual(dict(self.pprops('k')['Config'])['dir_path'], kdir)
        # and once it is there, a file pool inside it clashes with it
        self.refused('c', 'file', os.path.join(kdir, 'x'), 'AlreadyExists', 'k')

    def test_root_refused(self):
        for spelling in ('/', '//', '/tmp/..'):
            with self.subTest(dir_path=spelling):
                # linux-kernel: if it were accepted, nothing would be written to /
                self.refused('b', 'linux-kernel', spelling, 'InvalidArgument', '/')

    def test_symlink_refused(self):
        target = os.path.join(self.pools_dir, 'target')
        os.mkdir(target)
        link = os.path.join(self.pools_dir, 'link')
        os.symlink(target, link)
        for driver in ('file', 'file-reflink', 'linux-kernel'):
            with self.subTest(driver=driver):
                self.refused('b', driver, link, 'InvalidArgument', 'symlink')
        self.assertEqual(os.listdir(target), [])

    def test_unrelated_directories_accepted(self):
        self.add_file_pool('b', dir_path=os.path.join(self.pools_dir, 'b'))
        self.add_file_pool('ab', dir_path=os.path.join(self.pools_dir, 'ab'))  # a prefix, not a parent
        names = [n for n, _ in self.list_pools()]
        for n in ('a', 'b', 'ab'):
            self.assertIn(n, names)


if __name__ == '__main__':
    storaged.main()
