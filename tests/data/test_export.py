"""Volume.Export() → (h fd, s path) and ExportEnd(s path), signals Exported and
ExportEnded (docs/api.md; docs/drivers.md, "Differences from qubesd": stable
exports; API.md Volume.Export).

file-reflink (btrfs, XFS): the export is a reflink copy of the committed data
that does not change while the volume is started, its running image written,
resized, stopped (committed) or imported into.
file: the export is the live image; until ExportEnd the volume refuses Start,
Resize, Import, ImportBegin, ImportVolume and Remove with VolumeBusy.
"""

import fcntl
import os
import subprocess

from datatest import (VOLUME, MiB, backend_classes, dir_files, holey, main, random_bytes, sha256, sha256_fd,
                      sha256_file)


class ExportCommon:

    def setUp(self):
        super().setUp()
        self.vpath, self.v = self.origin('work', size=4 * MiB)
        self.A = holey(4 * MiB, seed=1, every=3)
        self.seed(self.v, self.A)

    def do_export(self):
        since = self.mark()
        fd, path = self.export(self.vpath)
        self.addCleanup(os.close, fd)
        self.assertEqual(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE, os.O_RDONLY,
                         'Export must return a read-only fd')
        st_fd, st_path = os.fstat(fd), os.stat(path)
        self.assertEqual((st_fd.st_dev, st_fd.st_ino), (st_path.st_dev, st_path.st_ino),
                         'the fd must be open on the returned path')
        self.assertEqual(tuple(self.wait_signal(since, 'Exported', self.vpath, VOLUME)), (path,),
                         'signal Exported(path)')
        return fd, path

    def end_export(self, path):
        since = self.mark()
        self.export_end(self.vpath, path)
        self.assertEqual(tuple(self.wait_signal(since, 'ExportEnded', self.vpath, VOLUME)), (path,),
                         'signal ExportEnded(path)')

    def assertExport(self, fd, path, content, what):
        digest, n = sha256_fd(fd)
        self.assertEqual(n, len(content), f'{what}: length read through the export fd')
        self.assertTrue(digest == sha256(content), f'{what}: data read through the export fd changed')
        self.assertTrue(sha256_file(path) == sha256(content), f'{what}: the data at the export path {path} changed')

    def test_not_supported_for_non_origin(self):
        vpath, vid = self.volatile('work')
        before = dir_files(self.D)
        self.assertDBusError('NotSupported', self.export, vpath, contains=vid)
        self.assertEqual(dir_files(self.D), before)

    def test_export_end_of_unknown_path(self):
        fd, path = self.do_export()
        before = dir_files(self.D)
        self.assertDBusError('InvalidArgument', self.export_end, self.vpath, path + '.nope', contains=self.v)
        self.assertEqual(dir_files(self.D), before)
        self.end_export(path)


class ExportStableMixin(ExportCommon):

    def test_stable_while_started_and_written(self):
        fd, path = self.do_export()
        self.assertNotEqual(path, self.img(self.v), 'a reflink pool exports a copy, not the committed image')
        self.assertTrue(path.startswith(self.D + os.sep), f'the export {path} must be in the pool')
        self.assertExport(fd, path, self.A, 'right after Export')

        # the VM runs and writes its image
        self.start(self.vpath)
        dirty = self.vprop(self.vpath, 'Path')
        self.assertTrue(os.path.isfile(dirty), f'the running image {dirty}')
        B = random_bytes(4 * MiB, 2)
        with open(dirty, 'r+b') as f:
            f.write(B)
            f.flush()
            os.fsync(f.fileno())
        self.assertExport(fd, path, self.A, 'while started, after its running image was written')

        # an export made while it runs is the committed data too
        fd2, path2 = self.do_export()
        self.assertNotEqual(path2, path)
        self.assertExport(fd2, path2, self.A, 'exported while started')

        self.resize(self.vpath, 6 * MiB)
        self.assertExport(fd, path, self.A, 'after Resize of the running volume')
        self.stop(self.vpath)
        committed = B + bytes(2 * MiB)
        self.assertEqual(sha256_file(self.img(self.v)), sha256(committed), 'Stop commits the running image')
        self.assertExport(fd, path, self.A, 'after Stop committed the new data')

        C = random_bytes(2 * MiB, 3)
        self.import_from('pipe', self.vpath, C, len(C))
        self.assertImage(self.vpath, self.v, C, 'Import while exported')
        self.assertExport(fd, path, self.A, 'after an Import')
        self.assertExport(fd2, path2, self.A, 'after an Import (second export)')

        self.assertDBusError('VolumeBusy', self.remove, self.vpath, contains=self.v)
        self.end_export(path)
        self.assertFalse(os.path.exists(path), f'ExportEnd must remove the copy {path}')
        self.assertTrue(os.path.exists(path2), 'ExportEnd of one export must leave the other')
        digest, _ = sha256_fd(fd)
        self.assertEqual(digest, sha256(self.A), 'an open fd keeps reading the export after ExportEnd')
        self.assertDBusError('VolumeBusy', self.remove, self.vpath, contains=self.v)
        self.end_export(path2)
        self.remove(self.vpath)
        left = [f for f in dir_files(self.D) if f.startswith(self.v)]
        self.assertEqual(left, [], 'files left after ExportEnd and Remove')

    def test_export_shares_extents(self):
        """The export is a reflink copy: it allocates no new space."""
        fd, path = self.do_export()
        subprocess.run(['sync', '-f', path], check=True)
        out = subprocess.run(['filefrag', '-v', path], stdout=subprocess.PIPE, check=True).stdout.decode()
        data_extents = [ln for ln in out.splitlines() if ln.strip()[:1].isdigit()]
        self.assertTrue(data_extents, f'no extents in {path}:\n{out}')
        self.assertTrue(all('shared' in ln for ln in data_extents),
                        f'every extent of the export must be shared with the image:\n{out}')
        self.end_export(path)


class ExportLiveMixin(ExportCommon):

    def test_live_export_refuses_changes_until_export_end(self):
        fd, path = self.do_export()
        self.assertEqual(path, self.img(self.v), 'the file driver exports its image')
        self.assertExport(fd, path, self.A, 'the export')
        other, _ = self.origin('other', size=2 * MiB)
        before = self.state(self.vpath, self.v)
        refusals = [
            ('Start', lambda: self.start(self.vpath)),
            ('Resize', lambda: self.resize(self.vpath, 8 * MiB)),
            ('Import', lambda: self.import_from('pipe', self.vpath, random_bytes(4 * MiB, 4), 4 * MiB)),
            ('ImportBegin', lambda: self.import_begin(self.vpath, 4 * MiB)),
            ('ImportVolume', lambda: self.import_volume(self.vpath, other)),
            ('Remove', lambda: self.remove(self.vpath)),
        ]
        for name, fn in refusals:
            with self.subTest(method=name):
                self.assertDBusError('VolumeBusy', fn, contains=self.v)
                self.assertState(before, self.vpath, self.v, f'{name} refused while exported')
        self.assertFalse(self.vprop(self.vpath, 'Started'))
        self.assertExport(fd, path, self.A, 'after the refusals')
        self.end_export(path)
        self.assertTrue(os.path.exists(path), 'ExportEnd of the live image must not remove it')
        # everything works again
        self.start(self.vpath)
        self.stop(self.vpath)
        self.resize(self.vpath, 8 * MiB)
        new = random_bytes(8 * MiB, 5)
        self.import_from('pipe', self.vpath, new, len(new))
        self.assertImage(self.vpath, self.v, new, 'Import after ExportEnd')
        self.remove(self.vpath)

    def test_second_export_keeps_refusing(self):
        fd, path = self.do_export()
        fd2, path2 = self.do_export()
        self.end_export(path)
        self.assertDBusError('VolumeBusy', self.start, self.vpath, contains=self.v)
        self.end_export(path2)
        self.start(self.vpath)
        self.stop(self.vpath)


backend_classes(ExportStableMixin, globals(), backends=('btrfs', 'xfs'))
backend_classes(ExportLiveMixin, globals(), backends=('file',))

if __name__ == '__main__':
    main()
