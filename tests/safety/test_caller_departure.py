#!/usr/bin/python3
"""A caller leaving the bus is learned without waiting for the bus.

The service learns that a caller left from the NameOwnerChanged signals it
watches from its start: it never asks the bus about a caller on its own loop
(no GetNameOwner, no AddMatch per caller) when that caller takes an import,
an export or a job, nor when the caller leaves — the one question it asks per
new caller is its uid (GetConnectionUnixUser, answered asynchronously). A bus
monitor sees every method call the service sends to the bus.

A caller that leaves while its ImportBegin or Export is still being answered
loses what it asked for as soon as the answer is ready: the staged import is
discarded (a new import can begin), the export ends (ExportEnded).
"""
import os
import sys
import subprocess
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dbus'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storaged  # noqa: E402
from storaged import BUS_NAME, MiB, VOLUME, DBusCallError  # noqa: E402
from test_caller_holdings import Client  # noqa: E402

from gi.repository import Gio, GLib  # noqa: E402

DBUS = 'org.freedesktop.DBus'
SENTINEL = 'CallerDepartureSentinel'


class Monitor:
    """Every message the service sends, as a bus monitor sees it."""

    def __init__(self, address, sender):
        self.lock = threading.Lock()
        self.messages = []
        self.conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        me = self.conn.get_unique_name()
        self.conn.add_filter(self._filter, me)
        self.conn.call_sync(DBUS, '/org/freedesktop/DBus', 'org.freedesktop.DBus.Monitoring', 'BecomeMonitor',
                            GLib.Variant('(asu)', ([f"sender='{sender}'"], 0)), None, Gio.DBusCallFlags.NONE,
                            storaged.CALL_TIMEOUT_MS, None)

    def _filter(self, conn, msg, incoming, me):
        if not incoming:
            return msg
        body = msg.get_body()
        with self.lock:
            self.messages.append((msg.get_message_type(), msg.get_destination(), msg.get_interface(),
                                  msg.get_member(), msg.get_error_name(), str(body) if body is not None else ''))
        # the answer to BecomeMonitor is ours; the rest is only watched
        if msg.get_message_type() in (Gio.DBusMessageType.METHOD_RETURN, Gio.DBusMessageType.ERROR) and \
                msg.get_destination() == me:
            return msg
        return None

    def seen(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        self.conn.close_sync(None)


class DepartureWithoutWaitingTest(storaged.StoragedTestCase):

    def volume(self, name):
        if 'p' not in [p for p, _ in self.list_pools()]:
            self.add_file_pool('p')
        return self.create_volume('p', dict(name=name, vm='work', size=4 * MiB, rw=True, save_on_stop=True,
                                            snap_on_start=False))

    def sync_monitor(self, monitor):
        """Everything the service sent before answering the sentinel call has
        reached the monitor once the monitor has seen that answer."""
        with self.assertRaises(DBusCallError):
            self.call(storaged.ROOT, 'org.freedesktop.DBus.Peer', SENTINEL)
        self.wait_until(lambda: any(t == Gio.DBusMessageType.ERROR and SENTINEL in body
                                    for (t, _, _, _, _, body) in monitor.seen()),
                        'the monitor to see the answer to the sentinel call')

    def test_no_bus_question_per_holder_or_job(self):
        imp, exp, src, dst = (self.volume(n) for n in ('private', 'root', 'volatile', 'kernel'))
        service = self.bus.call_sync(DBUS, '/org/freedesktop/DBus', DBUS, 'GetNameOwner',
                                     GLib.Variant('(s)', (BUS_NAME,)), GLib.VariantType('(s)'),
                                     Gio.DBusCallFlags.NONE, storaged.CALL_TIMEOUT_MS, None).unpack()[0]
        monitor = Monitor(self.bus_address, service)
        self.addCleanup(monitor.close)
        since = self.mark()
        # a job of this connection, holdings of a client that then leaves
        self.vcall(dst, 'ImportVolume', 'oa{sv}', (src, {}))
        client = Client(self, f'import:{imp}', f'export:{exp}')
        client.exit()
        staging = client.paths[0]
        self.wait_until(lambda: not os.path.exists(staging), f'the staging {staging} of the departed caller to go')
        self.wait_signal(since, 'ExportEnded', path=exp, what=f'ExportEnded of {exp}')
        self.sync_monitor(monitor)
        asked = [m for (t, dest, iface, m, _, _) in monitor.seen()
                 if t == Gio.DBusMessageType.METHOD_CALL and dest == DBUS]
        self.assertIn('GetConnectionUnixUser', asked, 'the monitor saw no uid question: it watched nothing')
        self.assertEqual(sorted(set(asked)), ['GetConnectionUnixUser'],
                         f'the service asked the bus more than the uids of its callers: {asked}')


class LeftWhileAnsweredTest(storaged.StoragedTestCase):
    """The caller's ImportBegin/Export is still running (the slow seam holds
    the operation) when the caller leaves."""

    service_env = {'QUBES_STORAGED_TEST_SLOW_VID': 'appvms/work/private', 'QUBES_STORAGED_TEST_SLOW_MS': '1500'}

    def leave_while_answered(self, vpath, method, args):
        # the call is sent and flushed, then the caller leaves without its answer
        code = (
            'import os\n'
            'from gi.repository import Gio, GLib\n'
            'bus = Gio.DBusConnection.new_for_address_sync(os.environ["DBUS_SYSTEM_BUS_ADDRESS"],'
            ' Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,'
            ' None, None)\n'
            f'bus.call("{BUS_NAME}", "{vpath}", "{VOLUME}", "{method}", GLib.Variant("{args[0]}", {args[1]!r}),'
            ' None, Gio.DBusCallFlags.NONE, -1, None, None, None)\n'
            'bus.flush_sync(None)\n')
        subprocess.run(['/usr/bin/python3', '-c', code], check=True, env=dict(os.environ))

    def volume(self):
        self.add_file_pool('p')
        return self.create_volume('p', dict(name='private', vm='work', size=4 * MiB, rw=True, save_on_stop=True,
                                            snap_on_start=False))

    def test_import_begin(self):
        vpath = self.volume()
        self.leave_while_answered(vpath, 'ImportBegin', ('(ta{sv})', (0, {})))
        got = {}

        def begun():
            try:
                res, out = self.bus.call_with_unix_fd_list_sync(
                    BUS_NAME, vpath, VOLUME, 'ImportBegin', GLib.Variant('(ta{sv})', (0, {})),
                    GLib.VariantType('(hs)'), Gio.DBusCallFlags.NONE, storaged.CALL_TIMEOUT_MS, None, None)
            except GLib.Error as e:
                if 'ImportInProgress' not in str(e):
                    raise
                return False
            got['fds'] = out.steal_fds()
            return True
        self.wait_until(begun, 'the staged import of the departed caller to be discarded')
        for fd in got['fds']:
            os.close(fd)
        self.assertDBusError('ImportFailed', self.vcall, vpath, 'ImportEnd', 'bsa{sv}', (False, 'test', {}))
        with open(self.vprop(vpath, 'Path'), 'rb') as f:
            self.assertEqual(f.read(4096), b'\0' * 4096, 'the volume changed')

    def test_export(self):
        vpath = self.volume()
        since = self.mark()
        self.leave_while_answered(vpath, 'Export', ('(a{sv})', ({},)))
        path = self.wait_signal(since, 'Exported', path=vpath, what='Exported of the departed caller')[0]
        self.wait_signal(since, 'ExportEnded', path=vpath, match=lambda a: a[0] == path,
                         what='ExportEnded of the departed caller\'s export')
        self.start(vpath)
        self.stop(vpath)


if __name__ == '__main__':
    storaged.main()
