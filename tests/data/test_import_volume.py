"""Volume.ImportVolume(o source): the destination takes the source's committed
data (a reflink clone inside a file-reflink pool, a sparse stream copy
otherwise), its size follows the source (128 MiB into 64 MiB gives
128 MiB), holes stay holes, the source's export is always ended (also
when the copy fails), and a destination that is not save_on_stop is left
alone. The operation runs as a Job 'volume-clone'.

Each class has a file-reflink pool `dp` on a loop-mounted btrfs or XFS and a
file pool `fp` in a temporary directory.
"""

import os
import subprocess

from datatest import (JOB, VOLUME, MiB, allocated, backend_classes, dir_files, holey, main, random_bytes, run,
                      sha256, sha256_file)

SRC_SIZE = 128 * MiB
DST_SIZE = 64 * MiB


def exports_in(D):
    return [f for f in dir_files(D) if '-export' in f]


class ImportVolumeMixin:

    def setUp(self):
        super().setUp()
        self.FD = self.make_pool('fp', 'file')
        self.dirs = {'dp': self.D, 'fp': self.FD}
        # 1 MiB of data every 8 MiB, holes between
        self.src_data = holey(SRC_SIZE, seed=1, every=128, data_blocks=16, offset_blocks=3)

    def make_source(self, pool, vm='src'):
        vpath, vid = self.origin(vm, size=SRC_SIZE, pool=pool)
        self.seed(vid, self.src_data, D=self.dirs[pool])
        return vpath, vid

    def make_dest(self, pool, vm='dst'):
        vpath, vid = self.origin(vm, size=DST_SIZE, pool=pool)
        self.seed(vid, holey(DST_SIZE, seed=2, every=4), D=self.dirs[pool])
        return vpath, vid

    def check_copy(self, src_pool, dst_pool, before_source_removed=None):
        spath, svid = self.make_source(src_pool)
        dpath, dvid = self.make_dest(dst_pool)
        SD, DD = self.dirs[src_pool], self.dirs[dst_pool]
        src_before = self.state(spath, svid, SD, own_files=True)
        since = self.mark()
        self.import_volume(dpath, spath)
        what = f'ImportVolume {src_pool} → {dst_pool}'

        # the size follows the source
        self.assertEqual(self.vprop(dpath, 'Size'), SRC_SIZE, f'{what}: Size of the destination')
        self.assertEqual(os.path.getsize(self.img(dvid, DD)), SRC_SIZE, f'{what}: size of the destination image')
        self.assertEqual(tuple(self.wait_signal(since, 'SizeChanged', dpath, VOLUME)), (DST_SIZE, SRC_SIZE))
        self.assertTrue(sha256_file(self.img(dvid, DD)) == sha256(self.src_data),
                        f'{what}: the destination does not hold the source data')
        # holes stay holes
        src_alloc, dst_alloc = allocated(self.img(svid, SD)), allocated(self.img(dvid, DD))
        limit = max(src_alloc, self.sparse_reference(self.src_data, DD))
        self.assertLessEqual(dst_alloc, limit, f'{what}: the destination allocates {dst_alloc} bytes, the source '
                             f'{src_alloc} (the same data written sparsely on the destination filesystem: {limit})')
        # the source is as it was, its export ended
        self.assertState(src_before, spath, svid, f'{what}: the source', D=SD, own_files=True)
        self.assertEqual(exports_in(SD), [], f'{what}: export copies left in the source pool')
        self.assertNoStaging(DD, what)
        self.assertNoStaging(SD, what)
        # the job
        jobs = self.jobs_added(since, dpath)
        self.assertEqual(len(jobs), 1, f'{what}: one Job announced for the destination')
        job, props = jobs[0]
        self.assertEqual(props['Operation'], 'volume-clone')
        self.assertIn(dpath, props['Objects'])
        self.assertEqual(props['Bytes'], SRC_SIZE)
        self.assertEqual(tuple(self.job_completed(since, job)), (True, ''))
        self.assertJobGone(job)
        if before_source_removed:
            before_source_removed(dvid)
        # nothing keeps the source busy
        self.start(spath)
        self.stop(spath)
        self.remove(spath)
        self.assertEqual(sha256_file(self.img(dvid, DD)), sha256(self.src_data), 'the copy outlives its source')
        return dpath, dvid

    def test_reflink_to_file(self):
        self.check_copy('dp', 'fp')

    def test_file_to_reflink(self):
        self.check_copy('fp', 'dp')

    def test_file_to_file(self):
        self.check_copy('fp', 'fp')

    def test_reflink_clone_in_pool(self):
        def shared(dvid):
            run(['sync', '-f', self.D])
            out = subprocess.run(['filefrag', '-v', self.img(dvid)], stdout=subprocess.PIPE,
                                 check=True).stdout.decode()
            extents = [ln for ln in out.splitlines() if ln.strip()[:1].isdigit()]
            self.assertTrue(extents and all('shared' in ln for ln in extents),
                            f'an in-pool ImportVolume on file-reflink must be a reflink clone:\n{out}')
        self.check_copy('dp', 'dp', before_source_removed=shared)

    def test_new_revision_in_reflink_destination(self):
        spath, svid = self.make_source('fp')
        dpath, dvid = self.make_dest('dp')
        old = self.content(dvid)
        self.import_volume(dpath, spath)
        self.assertEqual(len(self.vprop(dpath, 'Revisions')), 1, 'ImportVolume commits a revision')
        self.revert(dpath, '')
        self.assertEqual(sha256_file(self.img(dvid)), sha256(old))
        self.assertEqual(self.vprop(dpath, 'Size'), DST_SIZE)

    def check_committed_data_of_started_source(self, dst_pool):
        spath, svid = self.make_source('dp')
        dpath, dvid = self.make_dest(dst_pool)
        self.start(spath)
        dirty = self.vprop(spath, 'Path')
        with open(dirty, 'r+b') as f:
            f.write(random_bytes(2 * MiB, 3))
            f.flush()
            os.fsync(f.fileno())
        self.import_volume(dpath, spath)
        self.assertTrue(sha256_file(self.img(dvid, self.dirs[dst_pool])) == sha256(self.src_data),
                        'ImportVolume must copy the committed data, not the running image')
        self.assertEqual(exports_in(self.D), [])
        self.stop(spath)

    def test_committed_data_of_started_source_to_file(self):
        self.check_committed_data_of_started_source('fp')

    def test_committed_data_of_started_source_in_pool(self):
        self.check_committed_data_of_started_source('dp')

    def check_noop(self, dst_pool, kind):
        spath, svid = self.make_source('dp' if dst_pool == 'fp' else 'fp')
        DD = self.dirs[dst_pool]
        if kind == 'volatile':
            dpath, dvid = self.volatile('dst', size=DST_SIZE, pool=dst_pool)
        else:
            tpath, tvid = self.origin('tpl', size=DST_SIZE, pool=dst_pool)
            dpath = self.create_volume(dst_pool, dict(name='root', vm='dst', size=DST_SIZE, rw=True,
                                                      snap_on_start=True, source=tvid))
        before_files = {f: (s, sha256_file(os.path.join(DD, f))) for f, s in dir_files(DD).items()}
        size = self.vprop(dpath, 'Size')
        since = self.mark()
        self.import_volume(dpath, spath)
        after_files = {f: (s, sha256_file(os.path.join(DD, f))) for f, s in dir_files(DD).items()}
        self.assertEqual(after_files, before_files, f'ImportVolume into a {kind} volume must change no file')
        self.assertEqual(self.vprop(dpath, 'Size'), size, f'ImportVolume into a {kind} volume: Size')
        self.sync()
        self.assertEqual(self.service_signals(since, 'SizeChanged', dpath), [])
        for D in self.dirs.values():
            self.assertEqual(exports_in(D), [])

    def test_noop_into_volatile_file(self):
        self.check_noop('fp', 'volatile')

    def test_noop_into_volatile_reflink(self):
        self.check_noop('dp', 'volatile')

    def test_noop_into_snapshot_file(self):
        self.check_noop('fp', 'snapshot')

    def test_noop_into_snapshot_reflink(self):
        self.check_noop('dp', 'snapshot')

    def test_refusals(self):
        spath, svid = self.make_source('dp')
        dpath, dvid = self.make_dest('fp')
        before = self.state(dpath, dvid, self.FD)
        self.assertDBusError('NoSuchVolume', self.import_volume, dpath, '/org/qubes/Storage1/pool/dp/volume/nope')
        self.start(dpath)
        self.assertDBusError('VolumeBusy', self.import_volume, dpath, spath, contains=dvid)
        self.stop(dpath)
        self.assertEqual(exports_in(self.D), [])
        self.assertEqual(self.vprop(dpath, 'Size'), before['Size'])

    def test_failed_copy_ends_source_export(self):
        """Rule 1: the source's export ends even when the copy fails (here:
        the destination filesystem is full)."""
        small = os.path.join(self.tmp, 'small')
        os.mkdir(small)
        run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', small])
        self.addCleanup(run, ['umount', small])
        sd = os.path.join(small, 'pool')
        self.add_pool('tiny', 'file', {'dir_path': sd, 'revisions_to_keep': '1'})
        self.dirs['tiny'] = sd
        spath, svid = self.make_source('dp')
        dpath, dvid = self.origin('dst', size=MiB, pool='tiny')
        self.seed(dvid, random_bytes(MiB, 4), D=sd)
        before = self.state(dpath, dvid, sd)
        e = self.assertDBusError(('Failed', 'ImportFailed'), self.import_volume, dpath, spath, contains=dvid)
        self.assertState(before, dpath, dvid, f'failed ImportVolume ({e.name}: {e.message})', D=sd)
        self.assertNoStaging(sd, 'failed ImportVolume')
        self.assertEqual(exports_in(self.D), [], 'the source export must end when the copy fails')
        self.remove(spath)


class CancelImportVolumeMixin:
    """Cancelling an ImportVolume (the slow test seam holds the destination's
    operations, so Cancel lands before the copy): Cancelled, the destination
    unchanged, the source's export ended."""

    service_env = {'QUBES_STORAGED_TEST_SLOW_VID': 'appvms/slowdst/private', 'QUBES_STORAGED_TEST_SLOW_MS': '1500'}

    def test_cancel_ends_source_export(self):
        FD = self.make_pool('fp', 'file')
        spath, svid = self.origin('src', size=16 * MiB)
        self.seed(svid, random_bytes(16 * MiB, 5))
        dpath, dvid = self.origin('slowdst', size=4 * MiB, pool='fp')
        self.seed(dvid, random_bytes(4 * MiB, 6), D=FD)
        before = self.state(dpath, dvid, FD)
        since = self.mark()
        call = self.call_fds_async(dpath, VOLUME, 'ImportVolume', 'oa{sv}', (spath, {}))
        job, props = self.wait_job(since, dpath, 'the ImportVolume job')
        self.assertEqual(props['Operation'], 'volume-clone')
        self.call(job, JOB, 'Cancel', 'a{sv}', ({},), '')
        self.wait_until(lambda: call['done'], 'the reply to the cancelled ImportVolume')
        self.assertEqual(call.get('error') and call['error'].name, 'org.qubes.Storage1.Error.Cancelled',
                         f'reply: {call}')
        self.assertFalse(self.job_completed(since, job)[0])
        self.assertState(before, dpath, dvid, 'cancelled ImportVolume', D=FD)
        self.assertNoStaging(FD)
        self.assertEqual(exports_in(self.D), [], 'the source export must end when the copy is cancelled')
        self.remove(spath)


backend_classes(ImportVolumeMixin, globals(), backends=('btrfs', 'xfs'))
backend_classes(CancelImportVolumeMixin, globals(), backends=('btrfs',))

if __name__ == '__main__':
    main()
