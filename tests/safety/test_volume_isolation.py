"""Volumes never share files: no vid or name can make one volume's operation
read, replace or delete the files of another volume (or of another pool).

The file drivers accept only the vids appvms/<vm>/<name> and
vm-templates/<vm>/<name>; a name whose files would be another volume's
(ending in -cow, -dirty or -import) is refused with InvalidArgument naming
the volume it would collide with; clean-up takes exactly a volume's own
names; and nothing under a pool is reached through a symbolic link.
"""

import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'reflink'))

from reflinktest import MiB, ReflinkTestCase, main, volume_path  # noqa: E402


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_at(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class VolumeIsolationTest(ReflinkTestCase):

    def prepare(self):
        # the default pools: varlibqubes (file, /tmp is not a reflink
        # filesystem here) on the base dir, linux-kernel on base/vm-kernels
        self.kernel = os.path.join(self.base_dir, 'vm-kernels', '6.1')
        os.makedirs(self.kernel)
        for f in ('vmlinuz', 'initramfs', 'modules.img'):
            with open(os.path.join(self.kernel, f), 'wb') as fh:
                fh.write(f.encode() * 4096)

    def reflink_pool(self):
        if not hasattr(self, '_reflink_dir'):
            self._reflink_dir = os.path.join(self.mount('btrfs', size=512 * MiB), 'pool')
            self.add_reflink_pool('rp', self._reflink_dir)
        return 'rp', self._reflink_dir

    def file_pool(self):
        if not hasattr(self, '_file_dir'):
            self._file_dir = os.path.join(self.pools_dir, 'fp')
            self.add_file_pool('fp', dir_path=self._file_dir)
        return 'fp', self._file_dir

    def pools(self):
        return (self.file_pool(), self.reflink_pool())

    # ---- (a) the layout of vids -----------------------------------------------

    def test_only_the_qubes_layout(self):
        self.assertEqual(self.get_pool('varlibqubes'), '/org/qubes/Storage1/pool/varlibqubes')
        bad = ('custom/vol', 'vm-kernels/6.1/modules', 'appvms/work', 'appvms/work/private/x', 'private',
               'appvms/1work/private', 'appvms/work/_private', 'appvms/work/.private', 'vm-templates/-t/root',
               'Appvms/work/private', 'appvms/' + 'w' * 32 + '/private', 'appvms/work/' + 'p' * 32)
        for pool, _ in self.pools():
            for vid in bad:
                with self.subTest(pool=pool, vid=vid):
                    self.assertRejected('InvalidArgument', self.create_volume, pool,
                                        dict(name='private', vm='work', vid=vid, size=MiB, rw=True,
                                             save_on_stop=True), contains=(vid,))
            for vid in ('appvms/work/private', 'vm-templates/fedora-38/root', 'appvms/Work_2.x/data-1'):
                with self.subTest(pool=pool, vid=vid):
                    vpath = self.create_volume(pool, dict(name='private', vm='work', vid=vid, size=MiB, rw=True,
                                                          save_on_stop=True))
                    self.assertEqual(vpath, volume_path(pool, vid))

    def test_kernel_files_out_of_reach(self):
        # a file-driver snapshot in the default pool whose vid names the
        # kernel pool's modules image: refused, so Remove can never delete it
        modules = os.path.join(self.kernel, 'modules.img')
        before = digest(modules)
        self.create_volume('varlibqubes', dict(name='root', vm='tpl', template=True, size=MiB, rw=True,
                                               save_on_stop=True))
        created = None
        try:
            created = self.create_volume('varlibqubes', dict(name='modules', vm='x', vid='vm-kernels/6.1/modules',
                                                             size=MiB, snap_on_start=True,
                                                             source='vm-templates/tpl/root'))
        except Exception as e:  # noqa: BLE001 - the expected refusal is checked below
            self.assertIn('InvalidArgument', getattr(e, 'name', ''), e)
            self.assertIn('vm-kernels/6.1/modules', e.message)
        if created:
            self.start(created)
            self.stop(created)
            self.remove(created)
        self.assertTrue(os.path.exists(modules), 'the kernel pool lost modules.img')
        self.assertEqual(digest(modules), before)
        self.assertIsNone(created, 'a vid outside appvms/ and vm-templates/ was accepted')

    def test_snapshot_source_outside_the_layout(self):
        for pool, _ in self.pools():
            with self.subTest(pool=pool):
                self.assertRejected(('InvalidArgument', 'NoSuchVolume'), self.create_volume, pool,
                                    dict(name='root', vm='work', size=MiB, snap_on_start=True,
                                         source='vm-kernels/6.1/modules'))

    # ---- (b) names whose files would be another volume's ----------------------

    def test_reserved_endings_refused(self):
        for pool, _ in self.pools():
            self.create_volume(pool, dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True))
            for ending in ('-cow', '-dirty', '-import'):
                name = 'private' + ending
                for how, cfg in (('default vid', dict(name=name, vm='work')),
                                 ('explicit vid', dict(name='data', vm='work', vid='appvms/work/' + name))):
                    with self.subTest(pool=pool, name=name, how=how):
                        self.assertRejected('InvalidArgument', self.create_volume, pool,
                                            dict(cfg, size=MiB, rw=True, save_on_stop=True),
                                            contains=('appvms/work/' + name, 'appvms/work/private', ending))
            # names that merely contain the endings are fine
            for name in ('private-cowx', 'dirty', 'import-2', 'privateimport'):
                with self.subTest(pool=pool, name=name):
                    self.create_volume(pool, dict(name=name, vm='work', size=MiB, rw=True, save_on_stop=True))

    def test_dirty_name_cannot_replace_running_image(self):
        pool, d = self.reflink_pool()
        vpath = self.create_volume(pool, dict(name='private', vm='work', size=4 * MiB, rw=True, save_on_stop=True))
        self.start(vpath)
        running = self.vprop(vpath, 'Path')
        self.assertEqual(running, os.path.join(d, 'appvms/work/private-dirty.img'))
        write_at(running, MiB, b'the VM wrote this' * 100)
        self.assertRejected('InvalidArgument', self.create_volume, pool,
                            dict(name='private-dirty', vm='work', size=4 * MiB, rw=True, save_on_stop=True),
                            contains=('appvms/work/private-dirty', 'appvms/work/private'))
        self.stop(vpath)
        with open(os.path.join(d, 'appvms/work/private.img'), 'rb') as f:
            f.seek(MiB)
            self.assertEqual(f.read(1700), b'the VM wrote this' * 100, 'the running image of private was lost')

    def test_import_name_cannot_lose_its_image(self):
        pool, d = self.reflink_pool()
        root = self.create_volume(pool, dict(name='root', vm='work', size=MiB, rw=True, save_on_stop=True))
        self.assertRejected('InvalidArgument', self.create_volume, pool,
                            dict(name='root-import', vm='work', size=MiB, rw=True, save_on_stop=True),
                            contains=('appvms/work/root-import', 'appvms/work/root'))
        self.start(root)
        self.stop(root)

    # ---- (c) clean-up takes exactly a volume's own names ----------------------

    def test_neighbours_with_longer_names_untouched(self):
        for pool, d in self.pools():
            with self.subTest(pool=pool):
                vm = 'n' + pool
                neighbours = {}
                for name in ('root-x', 'root.img', 'root.x', 'rootx', 'root-cowx'):
                    vp = self.create_volume(pool, dict(name=name, vm=vm, size=MiB, rw=True, save_on_stop=True))
                    img = os.path.join(d, 'appvms', vm, name + '.img')
                    write_at(img, 0, name.encode() * 64)
                    neighbours[name] = (vp, img, digest(img))
                root = self.create_volume(pool, dict(name='root', vm=vm, size=MiB, rw=True, save_on_stop=True))
                self.start(root)
                self.stop(root)
                self.remove(root)
                root = self.create_volume(pool, dict(name='root', vm=vm, size=MiB, rw=True, save_on_stop=True))
                self.remove(root)
                for name, (vp, img, before) in neighbours.items():
                    self.assertEqual(digest(img), before, f'{name} changed by operations on root')

    # ---- (d) a snapshot's Remove removes only what it owns --------------------

    def test_snapshot_remove_keeps_source(self):
        for pool, d in self.pools():
            with self.subTest(pool=pool):
                src = self.create_volume(pool, dict(name='root', vm='tpl', template=True, size=MiB, rw=True,
                                                    save_on_stop=True))
                img = os.path.join(d, 'vm-templates/tpl/root.img')
                write_at(img, 0, b'template data' * 100)
                before = digest(img)
                snap = self.create_volume(pool, dict(name='root', vm='app', size=MiB, snap_on_start=True,
                                                     source='vm-templates/tpl/root'))
                self.start(snap)
                self.stop(snap)
                self.remove(snap)
                self.assertEqual(digest(img), before)
                self.start(src)
                self.stop(src)

    # ---- (f) nothing under a pool is reached through a symbolic link ----------

    def test_symlinked_vm_dir_not_followed(self):
        outside = os.path.join(self.tmp, 'outside')
        os.makedirs(outside)
        for pool, d in self.pools():
            with self.subTest(pool=pool):
                os.symlink(outside, os.path.join(d, 'appvms', 'evil'))
                self.assertDBusError('Failed', self.create_volume, pool,
                                     dict(name='private', vm='evil', size=MiB, rw=True, save_on_stop=True))
                self.assertEqual(os.listdir(outside), [], 'a file was created through the symbolic link')

    def test_symlinked_image_not_followed(self):
        target = os.path.join(self.tmp, 'precious')
        with open(target, 'wb') as f:
            f.write(b'not a volume' * 1000)
        before = digest(target)
        for pool, d in self.pools():
            with self.subTest(pool=pool):
                vpath = self.create_volume(pool, dict(name='private', vm='sym', size=MiB, rw=True,
                                                      save_on_stop=True))
                img = os.path.join(d, 'appvms/sym/private.img')
                os.unlink(img)
                os.symlink(target, img)
                # reading through the link, resizing it or starting from it
                # would touch a file outside the pool: each call fails instead
                for call in (lambda: self.resize(vpath, 2 * MiB), lambda: self.start(vpath)):
                    try:
                        call()
                    except Exception:  # noqa: BLE001 - any refusal is fine; the file must be untouched
                        pass
                self.assertEqual(digest(target), before, 'a file outside the pool was changed through a link')
                self.assertEqual(os.path.getsize(target), 12000)
                self.assertTrue(os.path.islink(img))
                os.unlink(img)


if __name__ == '__main__':
    main()
