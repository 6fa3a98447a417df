"""Volume.Import(h fd, t size, a{sv}): one call that reads exactly `size` bytes
(0 = the current size) from a pipe, socket or regular file into staging, with
holes for blocks of zeros, checks for too much data, flushes and commits.

Each test runs on a file pool, a file-reflink pool on btrfs and one on XFS.
docs/api.md (Volume.Import), docs/crash-safety.md.
"""

import os
import shutil

from datatest import (BLOCK, VOLUME, MiB, allocated, backend_classes, chunked, dir_files, holey,
                      main, random_bytes, sha256, sha256_file, zeros)

SOURCES = ('pipe', 'socket', 'file')


class ImportMixin:

    def setUp(self):
        super().setUp()
        self.vpath, self.v = self.origin('work', size=4 * MiB)
        self.old = holey(4 * MiB, seed=1, every=3)
        self.seed(self.v, self.old)
        self.refresh_usage(self.pool)

    def expect_prefix(self, e):
        self.assertTrue(e.message.startswith(f'{self.pool}:{self.v}'),
                        f'error message must start with "{self.pool}:{self.v}": {e.message!r}')

    # ---- exact data -----------------------------------------------------------

    def check_exact(self, kind):
        new = holey(4 * MiB, seed=2, every=4, data_blocks=2)
        since = self.mark()
        self.import_from(kind, self.vpath, new, len(new))
        self.assertImage(self.vpath, self.v, new, f'Import from a {kind}')
        self.assertNoStaging(what=f'after Import from a {kind}')
        self.sync()
        self.assertEqual(self.service_signals(since, 'SizeChanged', self.vpath), [],
                         'an import of the same size must not emit SizeChanged')

    def test_exact_from_pipe(self):
        self.check_exact('pipe')

    def test_exact_from_socket(self):
        self.check_exact('socket')

    def test_exact_from_regular_file(self):
        self.check_exact('file')

    def test_holes_with_odd_sized_writes(self):
        """A writer that writes in odd-sized pieces (as a pipe from another
        program may deliver them) must not cost the holes: zero blocks are
        found at file offsets, not per read."""
        new = holey(4 * MiB, seed=15, every=4, data_blocks=2)
        r, feeder = self.pipe_source(chunked(new, 100_003))
        try:
            self.do_import(self.vpath, r, len(new))
        finally:
            os.close(r)
        feeder.finish()
        self.assertImage(self.vpath, self.v, new, 'Import from a pipe written in 100003-byte pieces')

    def test_size_zero_means_current_size(self):
        new = random_bytes(4 * MiB, seed=3)
        self.import_from('pipe', self.vpath, new, 0)
        self.assertImage(self.vpath, self.v, new, 'Import with size 0 (= the current size, 4 MiB)')
        # 0 still means the current size: fewer bytes are not enough
        before = self.state(self.vpath, self.v)
        e = self.assertDBusError('ImportFailed', self.import_from, 'pipe', self.vpath, new[:MiB], 0,
                                 contains=f'not enough data (copied {MiB} bytes, expected {4 * MiB} bytes)')
        self.expect_prefix(e)
        self.assertState(before, self.vpath, self.v, 'failed Import with size 0')
        self.assertNoStaging(what='after a failed Import with size 0')

    def test_zeros_become_holes(self):
        """An import of N bytes of zeros yields N bytes of zeros, all holes."""
        self.assertGreater(allocated(self.img(self.v)), 0)
        r, feeder = self.pipe_source(zeros(4 * MiB))
        try:
            self.do_import(self.vpath, r, 4 * MiB)
        finally:
            os.close(r)
        feeder.finish()
        self.assertImage(self.vpath, self.v, bytes(4 * MiB), 'Import of zeros')
        self.assertEqual(allocated(self.img(self.v)), 0, 'an import of zeros must leave only holes')
        self.refresh_usage(self.pool)
        self.assertEqual(self.vprop(self.vpath, 'Usage'), 0, 'Usage after an import of zeros')

    def test_holes_of_a_sparse_regular_file(self):
        """A sparse source file (holes made by seeking) is read without its
        holes being allocated in the volume."""
        new = holey(4 * MiB, seed=4, every=8)
        p = os.path.join(self.tmp, 'sparse.bin')
        with open(p, 'wb') as f:
            for i in range(0, len(new), BLOCK):
                if new[i:i + BLOCK] != bytes(BLOCK):
                    f.seek(i)
                    f.write(new[i:i + BLOCK])
            f.truncate(len(new))
        self.assertLess(allocated(p), len(new))
        fd = os.open(p, os.O_RDONLY)
        try:
            self.do_import(self.vpath, fd, len(new))
        finally:
            os.close(fd)
        self.assertImage(self.vpath, self.v, new, 'Import from a sparse file')

    def test_size_not_a_multiple_of_blocks(self):
        size = 3 * MiB + 123
        new = random_bytes(size, 16)
        since = self.mark()
        self.import_from('pipe', self.vpath, new, size)
        self.assertImage(self.vpath, self.v, new, f'Import of {size} bytes')
        self.assertEqual(tuple(self.wait_signal(since, 'SizeChanged', self.vpath, VOLUME)), (4 * MiB, size))
        tail = bytes(size - 100) + b'\x01' * 100
        self.import_from('file', self.vpath, tail, 0)
        self.assertImage(self.vpath, self.v, tail, 'Import of zeros ending in a partial block of data')

    def test_invalid_size(self):
        before = self.state(self.vpath, self.v)
        for size in (1 << 63, (1 << 64) - 1):
            self.assertDBusError('InvalidArgument', self.import_from, 'file', self.vpath, b'', size,
                                 contains=str(size))
            self.assertDBusError('InvalidArgument', self.import_begin, self.vpath, size, contains=str(size))
        self.assertState(before, self.vpath, self.v, 'Import with an invalid size')
        self.assertNoStaging()

    # ---- too little, too much ---------------------------------------------

    def check_not_enough(self, kind, got):
        want = 4 * MiB
        before = self.state(self.vpath, self.v)
        e = self.assertDBusError('ImportFailed', self.import_from, kind, self.vpath, random_bytes(got, 5), want,
                                 contains=f'not enough data (copied {got} bytes, expected {want} bytes)')
        self.expect_prefix(e)
        self.assertState(before, self.vpath, self.v, f'Import of {got} of {want} bytes from a {kind}')
        self.assertNoStaging(what=f'after an Import with too little data from a {kind}')

    def test_not_enough_data_from_pipe(self):
        self.check_not_enough('pipe', 4 * MiB - 12345)

    def test_not_enough_data_from_socket(self):
        self.check_not_enough('socket', 3 * MiB + 1)

    def test_not_enough_data_from_regular_file(self):
        self.check_not_enough('file', 4 * MiB - 1)

    def test_no_data_at_all(self):
        self.check_not_enough('pipe', 0)

    def check_too_much(self, kind, extra):
        want = 4 * MiB
        before = self.state(self.vpath, self.v)
        e = self.assertDBusError('ImportFailed', self.import_from, kind, self.vpath, random_bytes(want, 6), want,
                                 extra=extra, contains=f'too much data (expected {want} bytes)')
        self.expect_prefix(e)
        self.assertState(before, self.vpath, self.v, f'Import of {want}+{len(extra)} bytes from a {kind}')
        self.assertNoStaging(what=f'after an Import with too much data from a {kind}')

    def test_too_much_data_one_byte_from_pipe(self):
        self.check_too_much('pipe', b'\0')

    def test_too_much_data_from_pipe(self):
        self.check_too_much('pipe', random_bytes(3 * MiB, 7))

    def test_too_much_data_from_socket(self):
        self.check_too_much('socket', b'x')

    def test_too_much_data_from_regular_file(self):
        self.check_too_much('file', b'\0')

    # ---- size changes -------------------------------------------------------

    def check_size_change(self, new_size):
        old_size = self.vprop(self.vpath, 'Size')
        new = holey(new_size, seed=new_size, every=2)
        since = self.mark()
        self.import_from('pipe', self.vpath, new, new_size)
        self.assertImage(self.vpath, self.v, new, f'Import of {new_size} bytes into a volume of {old_size}')
        args = self.wait_signal(since, 'SizeChanged', self.vpath, VOLUME)
        self.assertEqual(tuple(args), (old_size, new_size), 'SizeChanged(old_size, new_size)')
        self.sync()
        self.assertEqual(len(self.service_signals(since, 'SizeChanged', self.vpath)), 1,
                         'exactly one SizeChanged per import')
        self.wait_property_changed(since, self.vpath, VOLUME, 'Size', new_size)
        self.assertNoStaging(what='after an import of another size')
        return new

    def test_import_grows_volume(self):
        self.check_size_change(6 * MiB)

    def test_import_shrinks_volume(self):
        self.check_size_change(2 * MiB)
        # and grows again; size 0 now means the new size
        self.check_size_change(5 * MiB)
        new = random_bytes(5 * MiB, 8)
        self.import_from('file', self.vpath, new, 0)
        self.assertImage(self.vpath, self.v, new, 'Import with size 0 after a size change')

    def test_size_survives_restart(self):
        new = self.check_size_change(8 * MiB)
        self.restart_service()
        self.assertEqual(self.vprop(self.vpath, 'Size'), 8 * MiB, 'Size after a restart')
        self.assertEqual(sha256_file(self.img(self.v)), sha256(new))

    # ---- refusals --------------------------------------------------------

    def test_not_supported_for_non_origin(self):
        vpath, vid = self.volatile('work', size=4 * MiB)
        before = dir_files(self.D)
        r, feeder = self.pipe_source(chunked(random_bytes(4 * MiB, 9)))
        try:
            e = self.assertDBusError('NotSupported', self.do_import, vpath, r, 4 * MiB, contains=vid)
        finally:
            os.close(r)
            feeder.finish()
        self.assertEqual(dir_files(self.D), before, f'{e.name} must change nothing')

    def test_busy_while_started(self):
        self.start(self.vpath)
        before = dir_files(self.D)
        for kind in SOURCES:
            self.assertDBusError('VolumeBusy', self.import_from, kind, self.vpath, random_bytes(4 * MiB, 10), 4 * MiB,
                                 contains=self.v)
        self.assertEqual(dir_files(self.D), before, 'a refused import must change nothing')
        self.stop(self.vpath)
        new = random_bytes(4 * MiB, 11)
        self.import_from('pipe', self.vpath, new, 4 * MiB)
        self.assertImage(self.vpath, self.v, new, 'Import after Stop')

    def make_dirty(self):
        """A running image left by a crash (the volume is not started)."""
        if self.backend == 'file':
            cow = os.path.join(self.D, self.v + '-cow.img')
            with open(cow, 'wb') as f:
                f.truncate(4 * MiB)
                f.write(b'\x5a' * BLOCK)
        else:
            # Whole at once, as a crash leaves it: the service reads sizes
            # behind our back and must never see a half-copied image.
            tmp = os.path.join(os.path.dirname(self.D), 'planted-dirty.tmp')
            shutil.copyfile(self.img(self.v), tmp)
            os.rename(tmp, os.path.join(self.D, self.v + '-dirty.img'))

    def test_busy_while_dirty(self):
        self.make_dirty()
        before = self.state(self.vpath, self.v)
        self.assertDBusError('VolumeBusy', self.import_from, 'pipe', self.vpath, random_bytes(4 * MiB, 12), 4 * MiB,
                             contains=self.v)
        self.assertState(before, self.vpath, self.v, 'Import into a dirty volume')

    def test_write_only_fd_refused(self):
        r, w = os.pipe()
        try:
            before = self.state(self.vpath, self.v)
            self.assertDBusError('InvalidArgument', self.do_import, self.vpath, w, 4 * MiB, contains=self.v)
            self.assertState(before, self.vpath, self.v, 'Import from a write-only fd')
        finally:
            os.close(r)
            os.close(w)

    # ---- staging -------------------------------------------------

    def test_writes_only_staging_and_survives_crash(self):
        """While an import runs only <vid>-import.img is written; a crash of
        the service leaves the committed image as it was; for file-reflink the
        next Start deletes the staging file."""
        before = self.state(self.vpath, self.v)
        size = 6 * MiB
        data = random_bytes(size, 13)
        r, feeder = self.pipe_source(chunked(data, 256 * 1024), delay=0.05)
        call = self.import_async(self.vpath, r, size)
        os.close(r)
        st = self.wait_staged(self.v, MiB)
        self.assertEqual(os.path.getsize(st), size, 'the staging file has the size of the import')
        self.assertEqual(sha256_file(self.img(self.v)), before['image sha256'],
                         'the committed image must not be written while importing')
        self.kill_service()
        feeder.finish()
        self.start_service()
        self.assertEqual(self.vprop(self.vpath, 'Size'), 4 * MiB, 'Size after a crash during an import')
        self.assertEqual(sha256_file(self.img(self.v)), before['image sha256'],
                         'the committed image after a crash during an import')
        self.assertEqual(self.vprop(self.vpath, 'Revisions'), before['Revisions'])
        if self.backend != 'file':
            self.start(self.vpath)
            self.assertFalse(os.path.exists(st), f'Start must delete the staging file {st} left by a crash')
            self.stop(self.vpath)
            self.assertEqual(sha256_file(self.img(self.v)), before['image sha256'])
        new = random_bytes(4 * MiB, 14)
        self.import_from('pipe', self.vpath, new, 4 * MiB)
        self.assertImage(self.vpath, self.v, new, 'Import after a crash during an import')
        self.assertNoStaging(what='after an import that followed a crash')
        self.assertFalse(call['done'] and 'error' not in call, 'the killed import must not have succeeded')


class RevisionMixin:
    """Reflink pools keep revisions: an import commits a new one."""

    def test_import_adds_revision(self):
        vpath, vid = self.origin('rev', size=4 * MiB)
        old = random_bytes(4 * MiB, 20)
        self.seed(vid, old)
        self.assertEqual(self.vprop(vpath, 'Revisions'), [])
        new = random_bytes(2 * MiB, 21)
        self.import_from('pipe', vpath, new, len(new))
        revs = self.vprop(vpath, 'Revisions')
        self.assertEqual(len(revs), 1, f'one revision after the first import: {revs}')
        self.assertImage(vpath, vid, new, 'Import with a revision')
        # the revision holds the data before the import, with its size
        since = self.mark()
        self.revert(vpath, '')
        self.assertEqual(sha256_file(self.img(vid)), sha256(old), 'Revert after Import gives back the old data')
        self.assertEqual(self.vprop(vpath, 'Size'), 4 * MiB)
        self.assertEqual(tuple(self.wait_signal(since, 'SizeChanged', vpath, VOLUME)), (2 * MiB, 4 * MiB))

    def test_failed_import_adds_no_revision(self):
        vpath, vid = self.origin('rev', size=4 * MiB)
        before = self.state(vpath, vid)
        self.assertDBusError('ImportFailed', self.import_from, 'pipe', vpath, b'x' * 1000, 4 * MiB)
        self.assertState(before, vpath, vid, 'failed import')


backend_classes(ImportMixin, globals())
backend_classes(RevisionMixin, globals(), backends=('btrfs', 'xfs'))

if __name__ == '__main__':
    main()
