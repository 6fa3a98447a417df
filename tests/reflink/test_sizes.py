"""Create, size, resize and import of file-reflink volumes on btrfs.

Rule 5: CreateVolume first deletes every image of the vid (clean, dirty,
import, revisions, temp files); the new clean image has the configured size
and there are no revisions.
Rules 14 and 3: Size is the size of dirty, else of clean, else the nominal
size; a manual truncate shows at once (after a re-read), reading it never
changes the nominal size, and a volatile volume's Stop stores its last size.
Rule 15: resizing a stopped volatile or snapshot volume makes no file.
Resize shrinks only with allow_shrink (ShrinkRefused without).
Rule 26: an import writes only to <name>-import.img until it is committed."""

import os

from reflinktest import (BUS_NAME, VOLUME, DBusCallError, GiB, Gio, GLib, MiB, ReflinkTestCase, allocated,
                         content_digest, list_files, main, random_chunks, storaged, temp_files, write_chunks)

MiB4 = 4 * MiB


def stat_key(path):
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns, content_digest(path))


class SizesTest(ReflinkTestCase):

    def setUp(self):
        super().setUp()
        self.mnt = self.mount('btrfs')
        self.D = os.path.join(self.mnt, 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=1)

    # ---- create replaces leftovers ---------------------------------------------------------------

    def plant(self, vid, extra_names=()):
        """Leftovers of an earlier volume with this vid (and unrelated files
        that must survive)."""
        f = self.files(self.D, vid)
        os.makedirs(f.dir, exist_ok=True)
        n = f.name
        doomed = [f'{n}.img', f'{n}-dirty.img', f'{n}-import.img', f'{n}.img.1@2020-01-01T00:00:00Z',
                  f'{n}.img.7@2021-02-03T04:05:06Z', f'{n}.img~a1B2c3', f'{n}-dirty.img~zzzzzz',
                  f'{n}-import.img~Qq09xy', f'{n}.img.8@2021-02-03T04:05:07Z~Xy12ab']
        keep = [f'{n}2.img', f'{n}x-dirty.img', f'other{n}.img', 'notes.txt'] + list(extra_names)
        for name in doomed + keep:
            with open(os.path.join(f.dir, name), 'wb') as fh:
                fh.truncate(5 * MiB)
                fh.write(b'\xff' * MiB)
        return doomed, keep

    def test_create_wipes_leftovers(self):
        cases = [('origin', 'appvms/o/private'), ('volatile', 'appvms/o/volatile'), ('snapshot', 'appvms/o/root'),
                 ('template origin', 'vm-templates/t/root')]
        tpl = self.origin('r', 'src', 'root', size=MiB, template=True)
        for kind, vid in cases:
            with self.subTest(kind=kind):
                doomed, keep = self.plant(vid)
                f = self.files(self.D, vid)
                vm, name = vid.split('/')[1:]
                if kind.endswith('origin'):
                    v = self.origin('r', vm, name, size=GiB, template=vid.startswith('vm-templates'))
                elif kind == 'volatile':
                    v = self.volatile('r', vm, name, size=GiB)
                else:
                    v = self.snapshot('r', vm, name, 'vm-templates/src/root', size=GiB)
                left = sorted(set(os.listdir(f.dir)) & set(doomed))
                expect_left = [f'{f.name}.img'] if kind.endswith('origin') else []
                self.assertEqual(left, expect_left, f'CreateVolume ({kind}) left leftovers of {vid}')
                for k in keep:
                    self.assertTrue(os.path.exists(os.path.join(f.dir, k)), f'CreateVolume ({kind}) removed {k}')
                props = self.vprops(v)
                self.assertEqual(props['Revisions'], [])
                self.assertFalse(props['IsDirty'])
                self.assertEqual(props['Size'], GiB)
                if kind.endswith('origin'):
                    self.assertEqual(os.stat(f.clean).st_size, GiB, 'new clean image has the configured size')
                    self.assertEqual(allocated(f.clean), 0, 'new clean image is empty (not the leftover)')
                    self.start(v)
                    self.assertEqual(allocated(f.dirty), 0, 'Start used the leftover data')
                    self.stop(v)
                for k in keep:
                    os.unlink(os.path.join(f.dir, k))
        self.assertEqual(tpl, self.get_volume('r', 'vm-templates/src/root'))

    def test_start_and_remove_delete_leftovers(self):
        """Rules 26, 27: Start of a stopped volume deletes temp files and a
        stale -import.img (clean untouched); Remove deletes every file of the
        volume (revisions, staging, temp files) and its empty VM directory,
        and nothing of other volumes."""
        v = self.origin('r', 'work', 'private', size=GiB)
        other = self.origin('r', 'work', 'private2', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        self.start(v)
        write_chunks(f.dirty, random_chunks('data', (0,)))
        self.stop(v)
        self.start(v)
        self.stop(v)
        clean = stat_key(f.clean)
        temps = [f.clean + '~Ab12Cd', f.dirty + '~Zz34Yy', f.imp + '~Qq56Rr', f.imp]
        for p in temps:
            with open(p, 'wb') as fh:
                fh.write(b'left over by a crash')
        self.start(v)
        self.assertEqual([p for p in temps if os.path.exists(p)], [], 'Start kept crash leftovers')
        self.assertEqual(stat_key(f.clean), clean)
        self.assertEqual(content_digest(f.dirty), clean[3])
        self.stop(v)
        self.assertEqual(len(self.revision_files(self.D, 'appvms/work/private')), 1)
        for p in temps:
            with open(p, 'wb') as fh:
                fh.write(b'left over by a crash')
        self.remove(v)
        self.assertEqual(list_files(f.dir), ['private2.img'], 'Remove left files of the volume behind')
        self.remove(other)
        self.assertFalse(os.path.exists(f.dir), 'Remove left the empty VM directory')
        self.assertTrue(os.path.isdir(os.path.join(self.D, 'appvms')))

    def test_path_property(self):
        """API.md Path: the image a started VM uses (file-reflink: -dirty.img);
        for a stopped volume, where its committed data lives (the clean
        image of an origin)."""
        v = self.origin('r', 'work', 'private', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        self.start(v)
        self.assertEqual(self.vprop(v, 'Path'), f.dirty)
        self.assertEqual(tuple(self.vprop(v, 'BlockDevice')), (f.dirty, '', 'disk', True))
        self.stop(v)
        self.assertEqual(self.vprop(v, 'Path'), f.clean, 'Path of a stopped origin should be its committed image')

    # ---- sizes follow the storage ------------------------------------------------------------

    def test_origin_size_follows_images(self):
        v = self.origin('r', 'work', 'private', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        self.assertEqual(self.vprop(v, 'Size'), GiB)
        # a manual truncate of the clean image (stopped)
        os.truncate(f.clean, GiB + GiB // 2)
        self.wait_prop(v, 'Size', GiB + GiB // 2, refresh_pool='r')
        self.start(v)
        self.assertEqual(os.stat(f.dirty).st_size, GiB + GiB // 2)
        self.assertEqual(self.vprop(v, 'Size'), GiB + GiB // 2)
        # truncate of the running image wins over the clean one
        os.truncate(f.dirty, 2 * GiB)
        self.wait_prop(v, 'Size', 2 * GiB, refresh_pool='r')
        self.assertEqual(os.stat(f.clean).st_size, GiB + GiB // 2)
        self.stop(v)
        self.assertEqual(os.stat(f.clean).st_size, 2 * GiB)
        self.assertEqual(self.vprop(v, 'Size'), 2 * GiB)
        self.restart_service()
        self.assertEqual(self.vprop(v, 'Size'), 2 * GiB)

    def test_reading_size_keeps_nominal(self):
        """Rule 3: Size read from a file never becomes the nominal size: with
        the images gone, the configured size shows again."""
        v = self.origin('r', 'work', 'private', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        os.truncate(f.clean, 3 * GiB)
        self.wait_prop(v, 'Size', 3 * GiB, refresh_pool='r')
        self.restart_service()
        self.assertEqual(self.vprop(v, 'Size'), 3 * GiB)
        os.unlink(f.clean)
        self.wait_prop(v, 'Size', GiB, refresh_pool='r')
        self.restart_service()
        self.assertEqual(self.vprop(v, 'Size'), GiB)

    def test_volatile_stop_stores_last_size(self):
        v = self.volatile('r', 'work', size=GiB)
        f = self.files(self.D, 'appvms/work/volatile')
        self.assertEqual(self.vprop(v, 'Size'), GiB)
        self.start(v)
        self.assertEqual(os.stat(f.dirty).st_size, GiB)
        os.truncate(f.dirty, 3 * GiB)
        self.wait_prop(v, 'Size', 3 * GiB, refresh_pool='r')
        self.stop(v)
        self.assertFalse(os.path.exists(f.dirty))
        self.assertFalse(os.path.exists(f.clean))
        self.assertEqual(self.vprop(v, 'Size'), 3 * GiB, 'a volatile Stop stores the size of its last image')
        self.restart_service()
        self.assertEqual(self.vprop(v, 'Size'), 3 * GiB, 'the stored size survives a restart')
        self.start(v)
        self.assertEqual(os.stat(f.dirty).st_size, 3 * GiB)
        self.assertEqual(allocated(f.dirty), 0)
        self.stop(v)

    def test_snapshot_size(self):
        tpl = self.origin('r', 'tpl', 'root', size=2 * GiB, template=True)
        snap = self.snapshot('r', 'app', 'root', 'vm-templates/tpl/root', size=GiB)
        f = self.files(self.D, 'appvms/app/root')
        self.assertEqual(self.vprop(snap, 'Size'), GiB, 'no image: the nominal size')
        self.start(snap)
        self.assertEqual(self.vprop(snap, 'Size'), 2 * GiB, 'running: the size of its dirty image')
        os.truncate(f.dirty, 3 * GiB)
        self.wait_prop(snap, 'Size', 3 * GiB, refresh_pool='r')
        self.stop(snap)
        self.assertEqual(self.vprop(snap, 'Size'), GiB, 'stopped snapshot: its nominal size again')
        self.assertEqual(self.vprop(tpl, 'Size'), 2 * GiB)

    # ---- resize ---------------------------------------------------------

    def test_resize_without_image_makes_no_file(self):
        vol = self.volatile('r', 'work', size=GiB)
        tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        snap = self.snapshot('r', 'work', 'root', 'vm-templates/tpl/root', size=GiB)
        d = os.path.join(self.D, 'appvms', 'work')
        before = list_files(d) if os.path.isdir(d) else []
        self.assertEqual(before, [])
        for v, name in ((vol, 'volatile'), (snap, 'root')):
            since = self.mark()
            self.resize(v, 2 * GiB)
            self.assertEqual(list_files(d) if os.path.isdir(d) else [], [],
                             f'Resize of the stopped {name} volume made a file')
            self.assertEqual(self.vprop(v, 'Size'), 2 * GiB)
            self.assertEqual(tuple(self.wait_signal(since, 'SizeChanged', path=v)), (GiB, 2 * GiB))
        self.restart_service()
        self.assertEqual(self.vprop(vol, 'Size'), 2 * GiB)
        self.start(vol)
        self.assertEqual(os.stat(os.path.join(d, 'volatile-dirty.img')).st_size, 2 * GiB,
                         'the next Start makes the volatile image at the new size')
        self.stop(vol)
        self.assertEqual(self.vprop(tpl, 'Size'), GiB)

    def test_resize_shrink(self):
        v = self.origin('r', 'work', 'private', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        self.start(v)
        write_chunks(f.dirty, random_chunks('low', (0,)) + random_chunks('high', (900 * MiB,)))
        self.stop(v)
        with open(f.clean, 'rb') as fh:
            low = fh.read(MiB)
        for options in ({}, {'allow_shrink': GLib.Variant('b', False)}):
            self.assertRejected('ShrinkRefused', self.resize, v, GiB // 2, options, contains=('appvms/work/private',))
        since = self.mark()
        self.resize(v, GiB // 2, {'allow_shrink': GLib.Variant('b', True)})
        self.assertEqual(os.stat(f.clean).st_size, GiB // 2)
        self.assertEqual(self.vprop(v, 'Size'), GiB // 2)
        self.assertEqual(tuple(self.wait_signal(since, 'SizeChanged', path=v)), (GiB, GiB // 2))
        with open(f.clean, 'rb') as fh:
            self.assertEqual(fh.read(MiB), low, 'shrinking lost data below the new size')
        # grow again: what was cut off stays gone
        self.resize(v, GiB)
        with open(f.clean, 'rb') as fh:
            fh.seek(900 * MiB)
            self.assertEqual(fh.read(MiB), bytes(MiB))
        # while running: the running image shrinks, the clean one does not
        self.start(v)
        self.assertRejected('ShrinkRefused', self.resize, v, GiB // 4, contains=('appvms/work/private',))
        self.resize(v, GiB // 4, {'allow_shrink': GLib.Variant('b', True)})
        self.assertEqual(os.stat(f.dirty).st_size, GiB // 4)
        self.assertEqual(os.stat(f.clean).st_size, GiB)
        self.assertEqual(self.vprop(v, 'Size'), GiB // 4)
        self.stop(v)
        self.assertEqual(os.stat(f.clean).st_size, GiB // 4)
        # equal size: nothing happens
        since = self.mark()
        key = stat_key(f.clean)
        self.resize(v, GiB // 4)
        self.sync()
        self.assertEqual(self.service_signals(since, 'SizeChanged'), [])
        self.assertEqual(stat_key(f.clean), key)

    # ---- sizes of origins with data ---------------------------------------------------------------

    def origin_with_data(self):
        v = self.origin('r', 'work', 'private', size=64 * MiB)
        f = self.files(self.D, 'appvms/work/private')
        self.start(v)
        write_chunks(f.dirty, random_chunks('old', (0, 32 * MiB)))
        self.stop(v)
        return v, f

    def others(self, f):
        """Every file of the VM dir but the import image, with its identity."""
        return {n: stat_key(os.path.join(f.dir, n)) for n in os.listdir(f.dir) if n != os.path.basename(f.imp)}

    def test_import_begin_end_writes_only_import_img(self):
        v, f = self.origin_with_data()
        old = content_digest(f.clean)
        revs = self.vprop(v, 'Revisions')
        before = self.others(f)
        (fd_index, path), fds = self.call_fds(v, VOLUME, 'ImportBegin', 'ta{sv}', (96 * MiB, {}), 'hs')
        fd = fds[fd_index]
        try:
            self.assertEqual(path, f.imp)
            self.assertEqual(os.stat(f.imp).st_size, 96 * MiB)
            self.assertEqual(allocated(f.imp), 0)
            for off, data in random_chunks('new', (0, 80 * MiB)):
                os.pwrite(fd, data, off)
            os.fsync(fd)
        finally:
            for x in fds:
                os.close(x)
        new = content_digest(f.imp)
        self.assertEqual(self.others(f), before, 'ImportBegin and writing the import touched other files')
        self.assertEqual(self.vprop(v, 'Revisions'), revs)
        self.assertFalse(os.path.exists(f.dirty))
        self.call(v, VOLUME, 'ImportEnd', 'bsa{sv}', (True, '', {}), '')
        self.assertFalse(os.path.exists(f.imp))
        self.assertEqual(content_digest(f.clean), new)
        self.assertEqual(self.vprop(v, 'Size'), 96 * MiB)
        revs = self.assertRevisionsMatchFiles(v, self.D, 'appvms/work/private')
        self.assertEqual(len(revs), 1)
        self.assertEqual(content_digest(self.revision_files(self.D, 'appvms/work/private')[revs[0][0]][0]), old)
        self.assertEqual(temp_files(self.D), [])

    def test_import_end_failure_discards(self):
        v, f = self.origin_with_data()
        before = self.others(f)
        (_, path), fds = self.call_fds(v, VOLUME, 'ImportBegin', 'ta{sv}', (0, {}), 'hs')
        for x in fds:
            os.write(x, b'garbage' * 1000)
            os.close(x)
        self.assertEqual(os.stat(path).st_size, 64 * MiB, 'ImportBegin(0) stages the current size')
        self.assertDBusError('ImportFailed', self.call, v, VOLUME, 'ImportEnd', 'bsa{sv}', (False, 'oops', {}), '',
                             contains=('Data import failed: oops',))
        self.assertFalse(os.path.exists(f.imp))
        self.assertEqual(self.others(f), before)

    def test_import_stream_writes_only_import_img(self):
        v, f = self.origin_with_data()
        before = self.others(f)
        size = 64 * MiB
        chunks = random_chunks('stream', range(0, size, MiB))
        r, w = os.pipe()
        state = {'done': False}
        fdlist = Gio.UnixFDList.new()
        fdlist.append(r)
        os.close(r)

        def cb(conn, res, _):
            try:
                conn.call_with_unix_fd_list_finish(res)
            except GLib.Error as e:
                name, message = storaged._split_gerror(e)
                state['error'] = DBusCallError(name, message, e)
            state['done'] = True
        self.bus.call_with_unix_fd_list(BUS_NAME, v, VOLUME, 'Import', GLib.Variant('(hta{sv})', (0, size, {})),
                                        None, Gio.DBusCallFlags.NONE, 120000, fdlist, None, cb, None)
        try:
            for _, data in chunks[:size // MiB // 2]:
                os.write(w, data)
            # half the data is in: the service waits for the rest
            self.wait_until(lambda: os.path.exists(f.imp) and allocated(f.imp) > 0, 'the import image to fill')
            self.assertFalse(state['done'], f'Import finished with half of the data: {state}')
            self.assertEqual(self.others(f), before, 'a running import touched files other than -import.img')
            self.assertFalse(os.path.exists(f.dirty))
            for _, data in chunks[size // MiB // 2:]:
                os.write(w, data)
        finally:
            os.close(w)
        self.wait_until(lambda: state['done'], 'Import to finish')
        self.assertNotIn('error', state)
        expect = os.path.join(self.tmp, 'expect.img')
        with open(expect, 'wb') as fh:
            for _, data in chunks:
                fh.write(data)
        self.assertEqual(content_digest(f.clean), content_digest(expect))
        self.assertFalse(os.path.exists(f.imp))

    def test_import_short_fails_unchanged(self):
        v, f = self.origin_with_data()
        before = self.others(f)
        r, w = os.pipe()
        os.write(w, b'x' * 4096)
        os.close(w)
        try:
            e = self.assertDBusError('ImportFailed', self.call_fds, v, VOLUME, 'Import', 'hta{sv}', (0, 0, {}), '',
                                     fds=(r,))
        finally:
            os.close(r)
        self.assertIn('not enough data (copied 4096 bytes, expected 67108864 bytes)', e.message)
        self.assertFalse(os.path.exists(f.imp))
        self.assertEqual(self.others(f), before)


if __name__ == '__main__':
    main()
