"""Nothing a client was handed can change a committed image later: after
ImportEnd (commit or discard), writes through the fd that ImportBegin handed
out reach no image of the volume — not the committed image, not its
revisions, not a running image made from it, not a later staging file.

Each test runs on the file driver (on the test's temp dir, and on a btrfs loop
filesystem where FICLONE works) and on file-reflink on btrfs and XFS.
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'data'))

from datatest import BLOCK, DataTestCase, MiB, backend_classes, holey, main, sha256, sha256_file  # noqa: E402


class ImportDetachMixin:

    def setUp(self):
        super().setUp()
        self.vpath, self.v = self.origin('work', size=4 * MiB)
        self.old = holey(4 * MiB, seed=1, every=3)
        self.seed(self.v, self.old)

    def scribble(self, fd, what):
        """What a client that kept the fd writes after ImportEnd: data all
        over the file, extending it too, flushed."""
        junk = (what.encode() * BLOCK)[:BLOCK]
        for off in range(0, 4 * MiB, 256 * 1024):
            self.assertEqual(os.pwrite(fd, junk, off), BLOCK)
        os.pwrite(fd, junk, 5 * MiB)
        os.fsync(fd)

    def images(self):
        """sha256 of every image file of the volume now (name → digest)."""
        d = os.path.dirname(self.img(self.v))
        name = os.path.basename(self.v)
        out = {}
        for f in sorted(os.listdir(d)):
            if f.startswith(name + '.') or f.startswith(name + '-'):
                out[f] = sha256_file(os.path.join(d, f))
        return out

    def begin(self, size):
        fd, path = self.import_begin(self.vpath, size)
        self.addCleanup(self._close_quietly, fd)
        return fd, path

    @staticmethod
    def _close_quietly(fd):
        try:
            os.close(fd)
        except OSError:
            pass

    def test_writes_after_commit_reach_no_image(self):
        new = holey(4 * MiB, seed=2, every=2)
        fd, _ = self.begin(4 * MiB)
        self.write_all(fd, new)
        self.import_end(self.vpath, True, '')
        self.assertEqual(sha256_file(self.img(self.v)), sha256(new))
        committed = self.images()
        self.scribble(fd, 'late write after ImportEnd(true) ')
        self.assertEqual(self.images(), committed, 'a write through the handed-out fd changed an image')
        self.assertEqual(os.path.getsize(self.img(self.v)), 4 * MiB)
        self.assertEqual(self.vprop(self.vpath, 'Size'), 4 * MiB)
        # a running image made from the committed data is out of reach too
        self.start(self.vpath)
        running = self.vprop(self.vpath, 'Path')
        before = sha256_file(running)
        self.scribble(fd, 'late write while started ')
        self.assertEqual(sha256_file(running), before, 'a write through the handed-out fd reached the running image')
        self.stop(self.vpath)
        self.assertEqual(sha256_file(self.img(self.v)), sha256(new), 'the committed data changed')
        os.close(fd)

    def test_writes_after_discard_reach_no_image(self):
        fd, _ = self.begin(4 * MiB)
        self.write_all(fd, holey(4 * MiB, seed=3, every=2))
        self.assertDBusError('ImportFailed', self.import_end, self.vpath, False, 'client gave up',
                             contains='client gave up')
        self.assertEqual(sha256_file(self.img(self.v)), sha256(self.old))
        before = self.images()
        self.scribble(fd, 'late write after ImportEnd(false) ')
        self.assertEqual(self.images(), before)
        # nor does it reach the next staging file, or what that commits
        fd2, _ = self.begin(4 * MiB)
        newer = holey(4 * MiB, seed=4, every=2)
        self.write_all(fd2, newer)
        self.scribble(fd, 'late write into the next import ')
        os.close(fd2)
        self.import_end(self.vpath, True, '')
        self.assertEqual(sha256_file(self.img(self.v)), sha256(newer))
        self.scribble(fd, 'late write after the next commit ')
        self.assertEqual(sha256_file(self.img(self.v)), sha256(newer))
        os.close(fd)

    def test_two_commits_in_a_row(self):
        first = holey(4 * MiB, seed=5, every=2)
        fd1, _ = self.begin(4 * MiB)
        self.write_all(fd1, first)
        self.import_end(self.vpath, True, '')
        second = holey(4 * MiB, seed=6, every=2)
        fd2, _ = self.begin(4 * MiB)
        self.write_all(fd2, second)
        self.import_end(self.vpath, True, '')
        committed = self.images()
        self.assertEqual(sha256_file(self.img(self.v)), sha256(second))
        self.scribble(fd1, 'first fd ')
        self.scribble(fd2, 'second fd ')
        self.assertEqual(self.images(), committed, 'a handed-out fd reached an image or a revision')
        os.close(fd1)
        os.close(fd2)


backend_classes(ImportDetachMixin, globals())


class ImportDetachFileOnBtrfs(ImportDetachMixin, DataTestCase):
    """The file driver on a filesystem where FICLONE works: the committed
    image is a reflink, still a file of its own."""

    backend = 'btrfs'

    @property
    def driver(self):
        return 'file'

    def make_pool(self, name, backend, revisions_to_keep=None):
        d = os.path.join(self.fs.mnt, f'{self._testMethodName}-file-{name}')
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        self.add_pool(name, 'file', {'dir_path': d, 'revisions_to_keep': str(self.revisions_to_keep)})
        return d


if __name__ == '__main__':
    main()
