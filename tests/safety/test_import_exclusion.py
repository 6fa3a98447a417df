#!/usr/bin/python3
"""A staged import and a running VM exclude each other.

Between ImportBegin and ImportEnd the volume's next committed data is being
written by a client; a VM started then would run on data that ImportEnd is
about to replace (and, with file-reflink, Start would reuse the staged
file). So Start (and StartVolumes) of a volume with a staged import is
refused with ImportInProgress and changes nothing; ImportBegin of a started
volume is refused with VolumeBusy; once the import is committed or
discarded the volume starts again and runs on what the import committed.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dbus'))
import storaged  # noqa: E402
from storaged import MiB, VOLUME, DBusCallError  # noqa: E402

from gi.repository import Gio, GLib  # noqa: E402


class ImportExclusionTest(storaged.StoragedTestCase):

    def import_begin(self, vpath, size):
        try:
            res, out = self.bus.call_with_unix_fd_list_sync(
                storaged.BUS_NAME, vpath, VOLUME, 'ImportBegin', GLib.Variant('(ta{sv})', (size, {})),
                GLib.VariantType('(hs)'), Gio.DBusCallFlags.NONE, storaged.CALL_TIMEOUT_MS, None, None)
        except GLib.Error as e:
            name, message = storaged._split_gerror(e)
            raise DBusCallError(name, message, e) from None
        idx, path = res.unpack()
        fd = out.steal_fds()[idx]
        return fd, path

    def running_image(self, vpath):
        """What the VM reads: the block device, or for the file driver's
        block-snapshot pair "image:cow" the image it reads through."""
        bdev = self.vprop(vpath, 'BlockDevice')[0]
        return bdev.split(':')[0] if bdev else self.vprop(vpath, 'Path')

    def make_origin(self, pool):
        self.add_file_pool(pool)
        return self.create_volume(pool, dict(name='private', vm='work', size=4 * MiB, rw=True,
                                             save_on_stop=True, snap_on_start=False))

    def staged(self, vpath, data):
        fd, path = self.import_begin(vpath, 4 * MiB)
        os.pwrite(fd, data, 0)
        os.close(fd)
        return path

    def test_start_refused_while_import_staged(self):
        v = self.make_origin('p1')
        self.staged(v, b'N' * 4096)
        before = self.snapshot_all()
        self.assertRejected('ImportInProgress', self.start, v, contains=('appvms/work/private',))
        self.assertFalse(self.vprop(v, 'Started'))
        self.assertUnchanged(before, 'a refused Start')
        # the batch verb follows the same rule
        self.assertRejected('ImportInProgress', self.batch, 'StartVolumes', [v])
        self.assertFalse(self.vprop(v, 'Started'))
        # commit, then the VM runs on what was imported
        self.vcall(v, 'ImportEnd', 'bsa{sv}', (True, '', {}))
        self.start(v)
        self.assertTrue(self.vprop(v, 'Started'))
        with open(self.running_image(v), 'rb') as f:
            self.assertEqual(f.read(4096), b'N' * 4096, 'the started volume runs on the imported data')
        # and the other way round: no import into a running volume
        self.assertRejected('VolumeBusy', self.import_begin, v, 4 * MiB)
        self.assertDBusError('NoImportInProgress', self.vcall, v, 'ImportEnd', 'bsa{sv}', (True, '', {}))
        self.stop(v)

    def test_discard_then_start(self):
        v = self.make_origin('p2')
        self.staged(v, b'X' * 4096)
        self.assertRejected('ImportInProgress', self.start, v)
        self.assertDBusError('ImportFailed', self.vcall, v, 'ImportEnd', 'bsa{sv}', (False, 'given up', {}))
        self.start(v)
        with open(self.running_image(v), 'rb') as f:
            self.assertEqual(f.read(4096), b'\0' * 4096, 'a discarded import reaches no image')
        self.stop(v)


if __name__ == '__main__':
    storaged.main()
