"""Volume.ImportBegin(t size) → (h fd, s path) and ImportEnd(b success, s message):
the two-step import (docs/api.md): staging of exactly `size`
bytes (0 = the current size), a write-only fd on it, commit or discard, one
import at a time.

Each test runs on a file pool, a file-reflink pool on btrfs and one on XFS.
"""

import fcntl
import os

from datatest import (VOLUME, MiB, allocated, backend_classes, dir_files, holey, main, random_bytes, sha256,
                      sha256_file)


class ImportBeginMixin:

    def setUp(self):
        super().setUp()
        self.vpath, self.v = self.origin('work', size=4 * MiB)
        self.old = holey(4 * MiB, seed=1, every=3)
        self.seed(self.v, self.old)

    def begin(self, size, expect_len):
        fd, path = self.import_begin(self.vpath, size)
        self.addCleanup(self._close_quietly, fd)
        self.assertEqual(path, self.staging(self.v), 'ImportBegin returns the path of <vid>-import.img')
        self.assertTrue(os.path.isfile(path), f'{path} must exist once ImportBegin replied')
        self.assertEqual(os.path.getsize(path), expect_len, f'ImportBegin({size}): length of the staging file')
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        self.assertEqual(flags & os.O_ACCMODE, os.O_WRONLY, 'ImportBegin must return a write-only fd')
        st_fd, st_path = os.fstat(fd), os.stat(path)
        self.assertEqual((st_fd.st_dev, st_fd.st_ino), (st_path.st_dev, st_path.st_ino),
                         'the fd must be open on the returned path')
        return fd, path

    @staticmethod
    def _close_quietly(fd):
        try:
            os.close(fd)
        except OSError:
            pass

    def test_success_same_size(self):
        before_files = set(dir_files(self.D))
        fd, path = self.begin(4 * MiB, 4 * MiB)
        self.assertEqual(sha256_file(self.img(self.v)), self.state(self.vpath, self.v)['image sha256'])
        new = holey(4 * MiB, seed=2, every=2)
        self.write_all(fd, new)
        os.close(fd)
        # nothing is committed before ImportEnd
        self.assertEqual(sha256_file(self.img(self.v)), sha256(self.old), 'the image changed before ImportEnd')
        since = self.mark()
        self.import_end(self.vpath, True, '')
        self.assertImage(self.vpath, self.v, new, 'ImportBegin + ImportEnd(true)')
        self.assertNoStaging(what='after ImportEnd(true)')
        self.sync()
        self.assertEqual(self.service_signals(since, 'SizeChanged', self.vpath), [])
        extra = set(dir_files(self.D)) - before_files
        self.assertTrue(all('.img.' in f for f in extra), f'files left by the import: {sorted(extra)}')

    def test_size_zero_is_current_size_and_clears(self):
        """ImportBegin(0) stages the current size; ending it without writing
        clears the volume to zeros, all holes (#7426, #10576)."""
        fd, path = self.begin(0, 4 * MiB)
        os.close(fd)
        self.import_end(self.vpath, True, '')
        self.assertImage(self.vpath, self.v, bytes(4 * MiB), 'ImportBegin(0) + ImportEnd(true) without data')
        self.assertEqual(allocated(self.img(self.v)), 0)

    def check_size_change(self, new_size):
        old_size = self.vprop(self.vpath, 'Size')
        fd, path = self.begin(new_size, new_size)
        new = random_bytes(new_size, new_size)
        self.write_all(fd, new)
        os.close(fd)
        since = self.mark()
        self.import_end(self.vpath, True, 'ignored on success')
        self.assertImage(self.vpath, self.v, new, f'ImportBegin({new_size}) into a volume of {old_size}')
        self.assertEqual(tuple(self.wait_signal(since, 'SizeChanged', self.vpath, VOLUME)), (old_size, new_size))
        self.wait_property_changed(since, self.vpath, VOLUME, 'Size', new_size)
        self.assertNoStaging()

    def test_grow(self):
        self.check_size_change(7 * MiB)

    def test_shrink(self):
        self.check_size_change(MiB)

    def test_failure_discards(self):
        before = self.state(self.vpath, self.v)
        fd, path = self.begin(6 * MiB, 6 * MiB)
        self.write_all(fd, random_bytes(6 * MiB, 3))
        os.close(fd)
        since = self.mark()
        e = self.assertDBusError('ImportFailed', self.import_end, self.vpath, False, 'not enough data (copied 5 '
                                 'bytes, expected 6291456 bytes)',
                                 contains='Data import failed: not enough data (copied 5 bytes, expected 6291456 bytes)')
        self.assertTrue(e.message.startswith(f'{self.pool}:{self.v}'), e.message)
        self.assertState(before, self.vpath, self.v, 'ImportEnd(false)')
        self.assertNoStaging(what='after ImportEnd(false)')
        self.sync()
        self.assertEqual(self.service_signals(since, 'SizeChanged', self.vpath), [])
        # the import is over
        self.assertDBusError('NoImportInProgress', self.import_end, self.vpath, True, '', contains=self.v)
        self.assertDBusError('NoImportInProgress', self.import_end, self.vpath, False, 'x', contains=self.v)

    def test_end_without_begin(self):
        before = self.state(self.vpath, self.v)
        self.assertDBusError('NoImportInProgress', self.import_end, self.vpath, True, '', contains=self.v)
        self.assertDBusError('NoImportInProgress', self.import_end, self.vpath, False, 'nothing', contains=self.v)
        self.assertState(before, self.vpath, self.v, 'ImportEnd without ImportBegin')

    def test_one_import_at_a_time(self):
        other, other_vid = self.origin('other', size=2 * MiB)
        fd, path = self.begin(4 * MiB, 4 * MiB)
        staged = dir_files(self.D)
        self.assertDBusError('ImportInProgress', self.import_begin, self.vpath, 4 * MiB, contains=self.v)
        self.assertDBusError('ImportInProgress', self.import_begin, self.vpath, 0, contains=self.v)
        self.assertDBusError('ImportInProgress', self.import_from, 'pipe', self.vpath, random_bytes(4 * MiB, 4),
                             4 * MiB, contains=self.v)
        self.assertDBusError('ImportInProgress', self.import_volume, self.vpath, other, contains=self.v)
        self.assertEqual(dir_files(self.D), staged, 'refused imports must not touch the staged one')
        # the staged import still works
        new = random_bytes(4 * MiB, 5)
        self.write_all(fd, new)
        os.close(fd)
        self.import_end(self.vpath, True, '')
        self.assertImage(self.vpath, self.v, new, 'the first import after refused ones')
        # and another one can begin now
        fd, path = self.begin(2 * MiB, 2 * MiB)
        os.close(fd)
        self.assertDBusError('ImportFailed', self.import_end, self.vpath, False, 'changed my mind')
        self.assertNoStaging()

    def test_not_supported_for_non_origin(self):
        vpath, vid = self.volatile('work', size=4 * MiB)
        before = dir_files(self.D)
        self.assertDBusError('NotSupported', self.import_begin, vpath, 4 * MiB, contains=vid)
        self.assertDBusError(('NotSupported', 'NoImportInProgress'), self.import_end, vpath, True, '')
        self.assertEqual(dir_files(self.D), before)

    def test_busy_while_started(self):
        self.start(self.vpath)
        before = dir_files(self.D)
        self.assertDBusError('VolumeBusy', self.import_begin, self.vpath, 4 * MiB, contains=self.v)
        self.assertDBusError('VolumeBusy', self.import_begin, self.vpath, 0, contains=self.v)
        self.assertEqual(dir_files(self.D), before)
        self.stop(self.vpath)
        fd, path = self.begin(0, 4 * MiB)
        os.close(fd)
        self.assertDBusError('ImportFailed', self.import_end, self.vpath, False, 'x')

    def test_remove_while_staged(self):
        """Remove takes the staging file with the rest of the volume."""
        fd, path = self.begin(4 * MiB, 4 * MiB)
        os.close(fd)
        self.remove(self.vpath)
        left = [f for f in dir_files(self.D) if f.startswith(self.v)]
        self.assertEqual(left, [], 'files of a volume removed while an import was staged')
        self.assertNotIn(self.vpath, self.managed_objects())


backend_classes(ImportBeginMixin, globals())

if __name__ == '__main__':
    main()
