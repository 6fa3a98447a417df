"""Crash recovery of file-reflink volumes on btrfs (a crash loses nothing committed:
docs/crash-safety.md).

The service is SIGKILLed while a worker is held at a test-seam pause
(QUBES_STORAGED_TEST_PAUSE): in a commit just before the rename
(reflink-commit-before-rename), in a snapshot's Start after its clean copy and
before its dirty one (reflink-start-before-dirty); or while a volume runs, or
while an import streams. After a restart the clean image is whole and holds
either the old or the new data, no temp file remains, a running image is
reused, a stale -import.img is thrown away, and Start/Stop work again."""

import os

from reflinktest import (BUS_NAME, VOLUME, DBusCallError, GiB, Gio, GLib, MiB, ReflinkTestCase, content_digest,
                         main, random_chunks, storaged, temp_files, write_chunks)

PAUSE = 'QUBES_STORAGED_TEST_PAUSE'
HOLD_MS = 120000


def identity(path):
    st = os.stat(path)
    return (st.st_ino, st.st_size, content_digest(path))


class CrashTest(ReflinkTestCase):

    def setUp(self):
        super().setUp()
        self.mnt = self.mount('btrfs')
        self.D = os.path.join(self.mnt, 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=2)

    def origin_with(self, keep, tag='old', vm='work'):
        v = self.origin('r', vm, 'private', size=GiB, revisions_to_keep=keep)
        f = self.files(self.D, f'appvms/{vm}/private')
        self.start(v)
        write_chunks(f.dirty, random_chunks(tag, (0, 256 * MiB, GiB - MiB)))
        self.stop(v)
        return v, f

    def restart_clean(self):
        """Start the service again, without any pause."""
        self.service.env.pop(PAUSE, None)
        self.start_service()

    def assertRecovered(self, v, f, vid):
        left = temp_files(self.mnt) + ([f.imp] if os.path.exists(f.imp) else [])
        self.assertEqual(left, [], 'temp files or -import.img left behind')
        revs = self.assertRevisionsMatchFiles(v, self.D, vid)
        keep = self.vprop(v, 'RevisionsToKeep')
        self.assertLessEqual(len(revs), keep, f'more revisions than revisions_to_keep={keep}: {revs}')

    def kill_in_commit_of_stop(self, keep):
        vid = 'appvms/work/private'
        v, f = self.origin_with(keep)
        old = content_digest(f.clean)
        self.start(v)
        write_chunks(f.dirty, random_chunks('new', (0, 512 * MiB)))
        new = content_digest(f.dirty)
        dirty_ino = os.stat(f.dirty).st_ino
        revs_before = set(self.revision_files(self.D, vid))
        self.restart_with_env(**{PAUSE: f'reflink-commit-before-rename:{HOLD_MS}'})
        call = self.call_async(v, VOLUME, 'Stop', 'a{sv}', ({},), '')

        def revision_made():
            return keep == 0 or set(self.revision_files(self.D, vid)) - revs_before
        self.wait_paused('reflink-commit-before-rename', revision_made)
        self.kill_service()
        self.assertFalse(call['done'] and 'error' not in call, 'Stop replied although the service was held')
        self.restart_clean()

        # the clean image is whole: old or new, full size, never a mix
        self.assertEqual(os.stat(f.clean).st_size, GiB)
        self.assertIn(content_digest(f.clean), (old, new), 'clean image is neither the old nor the new data')
        self.assertEqual(temp_files(self.mnt), [], 'temp files left by the crash')
        self.assertRevisionsMatchFiles(v, self.D, vid)
        # Start again: the running image is reused (nothing lost)
        self.start(v)
        self.assertTrue(self.vprop(v, 'Started'))
        self.assertEqual(content_digest(f.dirty), new, 'Start after the crash lost the running data')
        if content_digest(f.clean) == old:
            self.assertEqual(os.stat(f.dirty).st_ino, dirty_ino, 'the running image was not reused')
        self.stop(v)
        self.assertFalse(os.path.exists(f.dirty))
        self.assertEqual(content_digest(f.clean), new)
        self.assertRecovered(v, f, vid)
        # and it works normally afterwards
        self.start(v)
        self.assertShares(f.dirty, f.clean)
        self.stop(v)
        self.assertRecovered(v, f, vid)

    def test_kill_in_commit_keep_0(self):
        self.kill_in_commit_of_stop(0)

    def test_kill_in_commit_keep_1(self):
        self.kill_in_commit_of_stop(1)

    def test_kill_in_commit_keep_2(self):
        self.kill_in_commit_of_stop(2)

    def test_kill_in_commit_of_import(self):
        """ImportEnd commits the same way: a kill before its rename leaves
        the old clean image, and the next Start throws the import away."""
        vid = 'appvms/work/private'
        v, f = self.origin_with(1)
        old = identity(f.clean)
        (_, path), fds = self.call_fds(v, VOLUME, 'ImportBegin', 'ta{sv}', (GiB, {}), 'hs')
        for x in fds:
            for off, data in random_chunks('imported', (0, 100 * MiB)):
                os.pwrite(x, data, off)
            os.close(x)
        imported = content_digest(path)
        self.restart_with_env(**{PAUSE: f'reflink-commit-before-rename:{HOLD_MS}'})
        # the staged import is not known to the new process: stage again
        self.assertDBusError('NoImportInProgress', self.call, v, VOLUME, 'ImportEnd', 'bsa{sv}', (True, '', {}), '')
        (_, path), fds = self.call_fds(v, VOLUME, 'ImportBegin', 'ta{sv}', (GiB, {}), 'hs')
        for x in fds:
            for off, data in random_chunks('imported', (0, 100 * MiB)):
                os.pwrite(x, data, off)
            os.close(x)
        self.call_async(v, VOLUME, 'ImportEnd', 'bsa{sv}', (True, '', {}), '')
        self.wait_paused('reflink-commit-before-rename')
        self.kill_service()
        self.restart_clean()
        self.assertIn(content_digest(f.clean), (old[2], imported))
        self.assertEqual(os.stat(f.clean).st_size, GiB)
        self.assertEqual(temp_files(self.mnt), [])
        self.assertFalse(os.path.exists(f.dirty), 'an import made a dirty image')
        before = content_digest(f.clean)
        self.start(v)
        self.assertFalse(os.path.exists(f.imp), 'Start kept the stale -import.img')
        self.assertEqual(content_digest(f.dirty), before)
        self.stop(v)
        self.assertRecovered(v, f, vid)

    def test_kill_while_running(self):
        """A crash while the volume runs, with leftovers of a crash inside an
        operation (temp files, a stale -import.img): Start reuses the running
        image; after Stop nothing but the images remains."""
        vid = 'appvms/work/private'
        v, f = self.origin_with(2)
        self.start(v)
        write_chunks(f.dirty, random_chunks('running', (64 * MiB,)))
        running = identity(f.dirty)
        leftovers = [f.imp, f.clean + '~Ab12Cd', f.dirty + '~Zz34Yy', f.imp + '~Qq56Rr']
        for p in leftovers:
            with open(p, 'wb') as fh:
                fh.write(b'left over by a crash')
        self.kill_service()
        self.restart_clean()
        self.assertTrue(self.vprop(v, 'IsDirty'))
        self.start(v)
        self.assertEqual(identity(f.dirty), running, 'Start after a crash did not reuse the running image')
        self.stop(v)
        self.assertEqual(content_digest(f.clean), running[2])
        self.assertFalse(os.path.exists(f.dirty))
        self.assertRecovered(v, f, vid)
        self.assertEqual([p for p in leftovers if os.path.exists(p)], [], 'crash leftovers survived Start and Stop')

    def test_kill_during_stream_import(self):
        """Rule 26: a crash in the middle of an import leaves clean (and the
        absent dirty) untouched; the next Start deletes -import.img."""
        vid = 'appvms/work/private'
        v, f = self.origin_with(1)
        clean = identity(f.clean)
        revs = self.vprop(v, 'Revisions')
        r, w = os.pipe()
        fdlist = Gio.UnixFDList.new()
        fdlist.append(r)
        os.close(r)
        state = {'done': False}

        def cb(conn, res, _):
            try:
                conn.call_with_unix_fd_list_finish(res)
            except GLib.Error as e:
                state['error'] = DBusCallError(*storaged._split_gerror(e), e)
            state['done'] = True
        self.bus.call_with_unix_fd_list(BUS_NAME, v, VOLUME, 'Import', GLib.Variant('(hta{sv})', (0, 0, {})),
                                        None, Gio.DBusCallFlags.NONE, 120000, fdlist, None, cb, None)
        try:
            for _, data in random_chunks('partial', range(0, 32 * MiB, MiB)):
                os.write(w, data)
            self.wait_until(lambda: os.path.exists(f.imp) and os.stat(f.imp).st_blocks > 0, 'import to begin')
            self.kill_service()
        finally:
            os.close(w)
        self.restart_clean()
        self.assertEqual(identity(f.clean), clean, 'a crashed import changed the clean image')
        self.assertFalse(os.path.exists(f.dirty))
        self.assertEqual(self.vprop(v, 'Revisions'), revs)
        self.assertEqual(temp_files(self.mnt), [])
        self.start(v)
        self.assertFalse(os.path.exists(f.imp), 'Start kept the -import.img of the crashed import')
        self.assertEqual(content_digest(f.dirty), clean[2])
        self.stop(v)
        self.assertRecovered(v, f, vid)

    def test_kill_with_export_open(self):
        """An Export's reflink copy (<name>.img@export-XXXXXX) that the crash
        kept from its ExportEnd does not stay forever: after the restart,
        ExportEnd of its path or the next Start/Stop removes it."""
        vid = 'appvms/work/private'
        v, f = self.origin_with(1)
        (_, path), fds = self.call_fds(v, VOLUME, 'Export', 'a{sv}', ({},), 'hs')
        for x in fds:
            os.close(x)
        self.assertTrue(os.path.basename(path).startswith('private.img@export-'), path)
        self.assertShares(path, f.clean)
        self.kill_service()
        self.restart_clean()
        try:
            self.call(v, VOLUME, 'ExportEnd', 'sa{sv}', (path, {}), '')
        except DBusCallError:
            pass  # the new process does not know the export: then Start/Stop must clean up
        self.start(v)
        self.stop(v)
        self.assertFalse(os.path.exists(path), f'the export copy {path} of the crashed service is never removed')
        self.assertRecovered(v, f, vid)

    def test_kill_in_snapshot_start(self):
        """reflink-start-before-dirty: the snapshot's clean copy is made, the
        dirty one not yet. After the restart (and a template update) Start
        makes both afresh from the template's current data; leftovers of the
        interrupted copies are removed."""
        tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        tf = self.files(self.D, 'vm-templates/tpl/root')
        self.start(tpl)
        write_chunks(tf.dirty, random_chunks('tpl1', (0, 300 * MiB)))
        self.stop(tpl)
        snap = self.snapshot('r', 'app', 'root', 'vm-templates/tpl/root')
        sf = self.files(self.D, 'appvms/app/root')
        self.restart_with_env(**{PAUSE: f'reflink-start-before-dirty:{HOLD_MS}'})
        self.call_async(snap, VOLUME, 'Start', 'a{sv}', ({},), '')
        self.wait_paused('reflink-start-before-dirty', lambda: os.path.exists(sf.clean))
        self.kill_service()
        self.assertFalse(os.path.exists(sf.dirty))
        # what a crash inside the copies would leave
        leftovers = [sf.clean + '~Ab12Cd', sf.dirty + '~Zz34Yy']
        for p in leftovers:
            with open(p, 'wb') as fh:
                fh.write(b'left over by a crash')
        self.restart_clean()
        # a started file-reflink volume is one with a running image, and the
        # kill came before it was made: the interrupted Start did not happen
        # (no state record says otherwise), and the next Start makes it all
        self.assertFalse(self.vprop(snap, 'Started'))
        # the template moves on while the snapshot is down
        self.start(tpl)
        write_chunks(tf.dirty, random_chunks('tpl2', (0, 700 * MiB)))
        self.stop(tpl)
        self.start(snap)
        self.assertEqual(temp_files(self.mnt), [], 'Start kept temp files of the interrupted Start')
        self.assertEqual(content_digest(sf.dirty), content_digest(tf.clean), 'Start reused stale snapshot data')
        self.assertEqual(content_digest(sf.clean), content_digest(tf.clean))
        self.assertShares(sf.dirty, tf.clean)
        self.assertFalse(self.vprop(snap, 'IsOutdated'))
        self.stop(snap)
        self.assertFalse(os.path.exists(sf.dirty))
        self.assertFalse(os.path.exists(sf.clean))
        self.assertEqual(temp_files(self.mnt), [])


if __name__ == '__main__':
    main()
