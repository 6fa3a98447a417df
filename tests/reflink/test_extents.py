"""Extents really are shared (docs/drivers.md, "file-reflink"): on btrfs and XFS, after
Start of a 1 GiB origin with data its -dirty.img uses the very same physical
blocks as its clean image (FIEMAP, FIEMAP_EXTENT_SHARED); after Stop the new
revision shares with the clean image it was copied from; a snapshot volume's
clean image (and its dirty one) share with the source's clean image."""

import os

from reflinktest import VOLUME, GiB, MiB, ReflinkTestCase, content_digest, main, random_chunks, write_chunks

DATA_OFFSETS = (0, 100 * MiB, 512 * MiB, GiB - 4 * MiB)


class ExtentsTestBase(ReflinkTestCase):
    fs = None

    def setUp(self):
        super().setUp()
        self.D = os.path.join(self.mount(self.fs), 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=2)

    def origin_with_data(self, vm='work', name='private', template=False):
        """A 1 GiB origin whose clean image holds 4 MiB of data in 4 places."""
        v = self.origin('r', vm, name, size=GiB, template=template)
        vid = self.vprop(v, 'Vid')
        f = self.files(self.D, vid)
        self.start(v)
        self.assertEqual(self.vprop(v, 'Path'), f.dirty)
        write_chunks(f.dirty, random_chunks(vid, DATA_OFFSETS))
        self.stop(v)
        self.assertFalse(os.path.exists(f.dirty))
        return v, vid, f

    def test_origin_dirty_and_revisions_share(self):
        v, vid, f = self.origin_with_data()
        data = content_digest(f.clean)
        self.start(v)
        self.assertTrue(self.vprop(v, 'IsDirty'))
        self.assertEqual(content_digest(f.dirty), data)
        self.assertNotEqual(os.stat(f.dirty).st_ino, os.stat(f.clean).st_ino, 'dirty is the clean file itself')
        self.assertShares(f.dirty, f.clean, 'after Start, dirty vs clean')
        self.assertShares(f.clean, f.dirty, 'after Start, clean vs dirty')
        # the VM changes one MiB; the rest stays shared with the clean image
        write_chunks(f.dirty, random_chunks('change', (200 * MiB,)))
        self.stop(v)
        revs = self.assertRevisionsMatchFiles(v, self.D, vid)
        self.assertEqual(len(revs), 2, f'two stops with revisions_to_keep=2 keep two revisions: {revs}')
        newest = self.revision_files(self.D, vid)[revs[-1][0]][0]
        self.assertEqual(content_digest(newest), data, 'the newest revision is the clean image before the stop')
        self.assertShares(newest, f.clean, 'after Stop, newest revision vs the new clean image')
        # and a revision made from a revision-sharing clean image shares too
        self.start(v)
        self.assertShares(f.dirty, f.clean, 'second Start, dirty vs clean')
        self.stop(v)
        revs2 = self.assertRevisionsMatchFiles(v, self.D, vid)
        self.assertShares(self.revision_files(self.D, vid)[revs2[-1][0]][0], f.clean,
                          'second Stop, newest revision vs clean')

    def test_snapshot_shares_with_source(self):
        tpl, tvid, tf = self.origin_with_data(vm='tpl', name='root', template=True)
        self.assertEqual(tvid, 'vm-templates/tpl/root')
        snap = self.snapshot('r', 'app', 'root', tvid, size=GiB)
        sf = self.files(self.D, 'appvms/app/root')
        self.start(snap)
        self.assertEqual(content_digest(sf.clean), content_digest(tf.clean))
        self.assertEqual(content_digest(sf.dirty), content_digest(tf.clean))
        self.assertShares(sf.clean, tf.clean, "snapshot's clean vs its source's clean")
        self.assertShares(sf.dirty, tf.clean, "snapshot's dirty vs its source's clean")
        self.assertEqual(self.vprop(snap, 'Path'), sf.dirty)
        self.stop(snap)
        for p in (sf.clean, sf.dirty):
            self.assertFalse(os.path.exists(p), f'{p} is still there after Stop of a snapshot volume')
        # the template's data did not move
        self.assertFalse(os.path.exists(tf.dirty))

    def test_snapshot_outdated_after_template_commit(self):
        """A running snapshot whose template commits newer data is outdated
        (its clean copy is older than the source's clean image); the next
        Start shares with the new template data."""
        tpl, tvid, tf = self.origin_with_data(vm='tpl', name='root', template=True)
        snap = self.snapshot('r', 'app', 'root', tvid, size=GiB)
        sf = self.files(self.D, 'appvms/app/root')
        self.start(snap)
        self.assertFalse(self.vprop(snap, 'IsOutdated'))
        self.start(tpl)
        write_chunks(tf.dirty, random_chunks('update', (50 * MiB,)))
        self.stop(tpl)
        self.wait_prop(snap, 'IsOutdated', True, refresh_pool='r')
        self.stop(snap)
        self.start(snap)
        self.assertFalse(self.vprop(snap, 'IsOutdated'))
        self.assertEqual(content_digest(sf.dirty), content_digest(tf.clean))
        self.assertShares(sf.dirty, tf.clean)
        self.stop(snap)

    def test_template_stop_outdates_running_snapshot(self):
        """The Stop of a template commits its root: when the Stop replies, its
        running snapshot already says IsOutdated, and its PropertiesChanged
        came before the reply (docs/api.md, "Freshness": an operation re-reads
        the volumes it changes, dependants included, before replying)."""
        tpl, tvid, tf = self.origin_with_data(vm='tpl', name='root', template=True)
        snap = self.snapshot('r', 'app', 'root', tvid, size=GiB)
        self.start(snap)
        self.assertFalse(self.vprop(snap, 'IsOutdated'))
        self.start(tpl)
        write_chunks(tf.dirty, random_chunks('update', (50 * MiB,)))
        self.sync()
        m = self.mark()
        self.stop(tpl)
        self.drain()
        changed, _ = self.properties_changed(m, snap, VOLUME)
        self.assertTrue(self.vprop(snap, 'IsOutdated'),
                        'the running snapshot is not IsOutdated when the Stop of its template replies')
        self.assertIs(changed.get('IsOutdated'), True,
                      f'no PropertiesChanged(IsOutdated) of the snapshot before the reply of Stop: {changed}')
        self.stop(snap)

    def test_import_volume_in_pool_shares(self):
        """ImportVolume inside the pool is a reflink too (in-pool CoW)."""
        src, svid, sf = self.origin_with_data(vm='src', name='private')
        dst = self.origin('r', 'dst', 'private', size=GiB // 2)
        df = self.files(self.D, 'appvms/dst/private')
        self.call(dst, 'org.qubes.Storage1.Volume', 'ImportVolume', 'oa{sv}', (src, {}), '')
        self.assertEqual(content_digest(df.clean), content_digest(sf.clean))
        self.assertEqual(self.vprop(dst, 'Size'), GiB, 'size follows the source (#4821)')
        self.assertShares(df.clean, sf.clean, 'ImportVolume in the same pool')


class ExtentsBtrfs(ExtentsTestBase):
    fs = 'btrfs'


class ExtentsXfs(ExtentsTestBase):
    fs = 'xfs'


del ExtentsTestBase

if __name__ == '__main__':
    main()
