"""The copy fallback and the FICLONE errno rule (docs/drivers.md, "file-reflink").

On tmpfs and ext4 (pools with setup_check=false) FICLONE fails with
EOPNOTSUPP/EXDEV: Start and Stop work by a sparse copy, and holes stay holes.
On btrfs, with the test seam QUBES_STORAGED_TEST_FICLONE_ERRNO: EBADF, EINVAL,
EOPNOTSUPP and EXDEV fall back to the sparse copy (EIO failing with the same
seam proves FICLONE was not used; the copy itself may still share extents:
copy_file_range reflinks on btrfs, as coreutils' cp does); any other errno (EIO, ENOSPC) fails the operation with Failed, and leaves no
temp file and no dirty image behind."""

import errno
import os

from reflinktest import (GiB, MiB, NO_REFLINK_MSG, ReflinkTestCase, allocated, content_digest, list_files, main,
                         random_chunks, temp_files, write_chunks)

ERRNO_ENV = 'QUBES_STORAGED_TEST_FICLONE_ERRNO'
OFFSETS = (0, 300 * MiB, GiB - MiB)
DATA = len(OFFSETS) * MiB


class FallbackFsBase(ReflinkTestCase):
    """tmpfs / ext4: no reflinks at all."""
    fs = None

    def setUp(self):
        super().setUp()
        self.D = os.path.join(self.mount(self.fs), 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=1, setup_check='false')

    def test_origin_start_stop_by_sparse_copy(self):
        v = self.origin('r', 'work', 'private', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        self.assertEqual(allocated(f.clean), 0, 'a new origin image is sparse')
        self.start(v)
        self.assertEqual(allocated(f.dirty), 0, 'dirty copy of an empty image allocates nothing')
        write_chunks(f.dirty, random_chunks('one', OFFSETS))
        one = content_digest(f.dirty)
        self.stop(v)
        self.assertEqual(content_digest(f.clean), one)
        self.assertSparse(f.clean, DATA, 'clean after the first Stop')
        self.assertEqual(os.stat(f.clean).st_size, GiB)

        self.start(v)
        self.assertTrue(self.vprop(v, 'IsDirty'))
        self.assertEqual(content_digest(f.dirty), one, 'Start copied the clean image')
        self.assertSparse(f.dirty, DATA, 'dirty made by the copy fallback')
        self.assertEqual(os.stat(f.dirty).st_size, GiB)
        self.assertNotEqual(os.stat(f.dirty).st_ino, os.stat(f.clean).st_ino)
        write_chunks(f.dirty, random_chunks('two', (600 * MiB,)))
        self.assertEqual(content_digest(f.clean), one, 'writing the dirty image changed the clean one')
        two = content_digest(f.dirty)
        self.stop(v)
        self.assertEqual(content_digest(f.clean), two)
        self.assertSparse(f.clean, DATA + MiB, 'clean after the second Stop')
        revs = self.assertRevisionsMatchFiles(v, self.D, 'appvms/work/private')
        self.assertEqual(len(revs), 1)
        rev = self.revision_files(self.D, 'appvms/work/private')[revs[0][0]][0]
        self.assertEqual(content_digest(rev), one, 'the revision is the clean image before the Stop')
        self.assertSparse(rev, DATA, 'revision made by the copy fallback')
        self.assertEqual(temp_files(self.D), [])

    def test_snapshot_and_volatile_by_sparse_copy(self):
        tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        tf = self.files(self.D, 'vm-templates/tpl/root')
        self.start(tpl)
        write_chunks(tf.dirty, random_chunks('tpl', OFFSETS))
        self.stop(tpl)
        snap = self.snapshot('r', 'app', 'root', 'vm-templates/tpl/root')
        vol = self.volatile('r', 'app', size=GiB)
        sf, vf = self.files(self.D, 'appvms/app/root'), self.files(self.D, 'appvms/app/volatile')
        self.batch('StartVolumes', [snap, vol])
        for p in (sf.clean, sf.dirty):
            self.assertEqual(content_digest(p), content_digest(tf.clean))
            self.assertSparse(p, DATA, 'snapshot image made by the copy fallback')
        self.assertEqual(os.stat(vf.dirty).st_size, GiB)
        self.assertEqual(allocated(vf.dirty), 0, 'a volatile image starts empty')
        self.batch('StopVolumes', [snap, vol])
        self.assertEqual(list_files(os.path.join(self.D, 'appvms', 'app')), [],
                         'snapshot and volatile volumes leave no image after Stop')


class FallbackTmpfs(FallbackFsBase):
    fs = 'tmpfs'


class FallbackExt4(FallbackFsBase):
    fs = 'ext4'


del FallbackFsBase


class FicloneErrnoBtrfs(ReflinkTestCase):
    """btrfs with FICLONE failing on purpose (the test seam)."""

    def setUp(self):
        super().setUp()
        self.mnt = self.mount('btrfs')
        self.D = os.path.join(self.mnt, 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=1)
        self.v = self.origin('r', 'work', 'private', size=GiB)
        self.f = self.files(self.D, 'appvms/work/private')
        self.start(self.v)
        write_chunks(self.f.dirty, random_chunks('data', OFFSETS))
        self.stop(self.v)
        self.data = content_digest(self.f.clean)
        self.tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        self.tf = self.files(self.D, 'vm-templates/tpl/root')
        self.start(self.tpl)
        write_chunks(self.tf.dirty, random_chunks('tpl', OFFSETS))
        self.stop(self.tpl)
        self.snap = self.snapshot('r', 'app', 'root', 'vm-templates/tpl/root')
        self.sf = self.files(self.D, 'appvms/app/root')

    def hard_failure(self, err):
        self.restart_with_env(**{ERRNO_ENV: err})
        clean_before = (os.stat(self.f.clean).st_ino, content_digest(self.f.clean))
        e = self.assertDBusError('Failed', self.start, self.v, contains=('appvms/work/private',))
        self.assertIn(os.strerror(err), e.message, 'the message should carry the reason')
        self.assertEqual(temp_files(self.mnt), [], f'Start failing with {errno.errorcode[err]} left temp files')
        self.assertFalse(os.path.exists(self.f.dirty), f'Start failing with {errno.errorcode[err]} left a dirty image')
        self.assertEqual((os.stat(self.f.clean).st_ino, content_digest(self.f.clean)), clean_before)
        props = self.vprops(self.v)
        self.assertFalse(props['IsDirty'])
        self.assertFalse(props['Started'])
        # a snapshot volume: neither its clean nor its dirty image remains
        self.assertDBusError('Failed', self.start, self.snap, contains=('appvms/app/root',))
        self.assertEqual(temp_files(self.mnt), [])
        self.assertFalse(os.path.exists(self.sf.clean))
        self.assertFalse(os.path.exists(self.sf.dirty))
        self.assertFalse(self.vprop(self.snap, 'Started'))
        # without the seam everything works again
        self.restart_with_env(**{ERRNO_ENV: None})
        self.batch('StartVolumes', [self.v, self.snap])
        self.assertShares(self.f.dirty, self.f.clean)
        self.batch('StopVolumes', [self.v, self.snap])

    def test_eio_fails(self):
        self.hard_failure(errno.EIO)

    def test_enospc_fails(self):
        self.hard_failure(errno.ENOSPC)

    def test_eio_on_commit_fails_and_keeps_data(self):
        """Stop of an origin copies clean to a revision first: EIO there fails
        the Stop, and both images stay as they were."""
        self.start(self.v)
        write_chunks(self.f.dirty, random_chunks('new', (10 * MiB,)))
        new = content_digest(self.f.dirty)
        revs = self.vprop(self.v, 'Revisions')
        self.restart_with_env(**{ERRNO_ENV: errno.EIO})
        self.assertTrue(self.vprop(self.v, 'Started'), 'a restart of the service must not stop volumes')
        self.assertDBusError('Failed', self.stop, self.v, contains=('appvms/work/private',))
        self.assertEqual(temp_files(self.mnt), [])
        self.assertEqual(content_digest(self.f.clean), self.data, 'a failed Stop changed the clean image')
        self.assertEqual(content_digest(self.f.dirty), new, 'a failed Stop lost the running image')
        self.assertEqual(self.vprop(self.v, 'Revisions'), revs)
        self.assertTrue(self.vprop(self.v, 'IsDirty'))
        self.restart_with_env(**{ERRNO_ENV: None})
        self.stop(self.v)
        self.assertEqual(content_digest(self.f.clean), new)
        self.assertFalse(os.path.exists(self.f.dirty))

    def test_fallback_errnos_copy(self):
        for err in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.EBADF):
            with self.subTest(errno=errno.errorcode[err]):
                self.restart_with_env(**{ERRNO_ENV: err})
                self.start(self.v)
                self.assertEqual(content_digest(self.f.dirty), self.data)
                self.assertSparse(self.f.dirty, DATA, 'dirty made by the copy fallback')
                self.batch('StartVolumes', [self.snap])
                self.assertEqual(content_digest(self.sf.dirty), content_digest(self.tf.clean))
                self.assertSparse(self.sf.clean, DATA)
                self.assertSparse(self.sf.dirty, DATA)
                self.batch('StopVolumes', [self.v, self.snap])
                self.assertEqual(content_digest(self.f.clean), self.data)
                self.assertFalse(os.path.exists(self.f.dirty))
                self.assertEqual(temp_files(self.mnt), [])

    def test_probe_follows_the_seam(self):
        """The setup probe fails like FICLONE does: AddPool with the default
        setup_check fails on btrfs when FICLONE is made to fail."""
        self.restart_with_env(**{ERRNO_ENV: errno.EOPNOTSUPP})
        d = os.path.join(self.mnt, 'other')
        self.assertDBusError('Failed', self.add_reflink_pool, 'o', d, contains=NO_REFLINK_MSG.format(dir=d))
        self.assertFalse(os.path.exists(d))
        self.add_reflink_pool('o', d, setup_check='false')


if __name__ == '__main__':
    main()
