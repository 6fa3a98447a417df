#!/usr/bin/python3
"""What a caller holds is tied to the caller.

A client process calls ImportBegin and Export and then exits or is killed:
its staged import is discarded (the staging it was handed disappears, the
volume's data is what it was, a new import can begin) and its export ends
(ExportEnded is emitted, the volume may change again). While a client holds
a staged import or an open export, the service does not exit on idle.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dbus'))
import storaged  # noqa: E402
from storaged import BUS_NAME, MiB, VOLUME, DBusCallError  # noqa: E402

from gi.repository import Gio, GLib  # noqa: E402

# A client of its own: takes what it is told to (import:<path> writes a
# block through the fd; export:<path>), prints each path it got, then waits
# for "exit" on stdin (or to be killed).
CLIENT = r'''
import os, sys
from gi.repository import Gio, GLib
bus = Gio.DBusConnection.new_for_address_sync(
    os.environ['DBUS_SYSTEM_BUS_ADDRESS'],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
fds = []
for arg in sys.argv[1:]:
    what, path = arg.split(':', 1)
    method, args = ('ImportBegin', GLib.Variant('(ta{sv})', (0, {}))) if what == 'import' else \
        ('Export', GLib.Variant('(a{sv})', ({},)))
    res, out = bus.call_with_unix_fd_list_sync('org.qubes.Storage1', path, 'org.qubes.Storage1.Volume', method,
                                               args, GLib.VariantType('(hs)'), Gio.DBusCallFlags.NONE, 120000,
                                               None, None)
    idx, got = res.unpack()
    fd = out.steal_fds()[idx]
    if what == 'import':
        os.pwrite(fd, b'I' * 4096, 0)
    fds.append(fd)
    print(got, flush=True)
sys.stdin.readline()
'''


class Client:
    def __init__(self, test, *holdings):
        self.proc = subprocess.Popen(['/usr/bin/python3', '-c', CLIENT] + list(holdings), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=dict(os.environ))
        test.addCleanup(self.kill)
        self.paths = []
        for h in holdings:
            line = self.proc.stdout.readline().decode().strip()
            if not line:
                self.proc.wait()
                test.fail(f'the client could not take {h} (status {self.proc.returncode})')
            self.paths.append(line)

    def exit(self):
        self.proc.stdin.write(b'exit\n')
        self.proc.stdin.flush()
        self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


class HoldingsTest(storaged.StoragedTestCase):

    def origin(self, pool, name):
        if pool not in [p for p, _ in self.list_pools()]:
            self.add_file_pool(pool)
        return self.create_volume(pool, dict(name=name, vm='work', size=4 * MiB, rw=True, save_on_stop=True,
                                             snap_on_start=False))

    def committed(self, vpath):
        with open(self.vprop(vpath, 'Path'), 'rb') as f:
            return f.read(4096)

    def check_released(self, client, imp, exp, since):
        staging, view = client.paths
        self.wait_until(lambda: not os.path.exists(staging), f'the staging {staging} of the departed caller to go')
        self.wait_signal(since, 'ExportEnded', path=exp, what=f'ExportEnded of {exp}')
        self.assertDBusError('NoImportInProgress', self.vcall, imp, 'ImportEnd', 'bsa{sv}', (True, '', {}))
        self.assertEqual(self.committed(imp), b'\0' * 4096, 'the departed caller\'s import reached the volume')
        # both volumes are free again: a new import, a start
        res, out = self.bus.call_with_unix_fd_list_sync(
            BUS_NAME, imp, VOLUME, 'ImportBegin', GLib.Variant('(ta{sv})', (0, {})), GLib.VariantType('(hs)'),
            Gio.DBusCallFlags.NONE, storaged.CALL_TIMEOUT_MS, None, None)
        for fd in out.steal_fds():
            os.close(fd)
        self.assertDBusError('ImportFailed', self.vcall, imp, 'ImportEnd', 'bsa{sv}', (False, 'test', {}))
        self.start(exp)
        self.stop(exp)

    def test_caller_exits(self):
        imp, exp = self.origin('p', 'private'), self.origin('p', 'root')
        since = self.mark()
        client = Client(self, f'import:{imp}', f'export:{exp}')
        client.exit()
        self.check_released(client, imp, exp, since)

    def test_caller_killed(self):
        imp, exp = self.origin('p', 'private'), self.origin('p', 'root')
        since = self.mark()
        client = Client(self, f'import:{imp}', f'export:{exp}')
        # held: the volume is busy for everyone else
        self.assertDBusError('VolumeBusy', self.start, exp)
        client.kill()
        self.check_released(client, imp, exp, since)


class NoIdleExitWhileHeldTest(storaged.StoragedTestCase):
    """--exit-idle 1: the service stays while a client holds something, and
    goes once the holder has left."""

    IDLE_S = 1

    def start_service(self):
        self.service.extra_args = ['--exit-idle', str(self.IDLE_S)]
        super().start_service()

    def test_no_idle_exit_while_held(self):
        self.add_file_pool('p')
        imp = self.create_volume('p', dict(name='private', vm='work', size=4 * MiB, rw=True, save_on_stop=True,
                                           snap_on_start=False))
        exp = self.create_volume('p', dict(name='root', vm='work', size=4 * MiB, rw=True, save_on_stop=True,
                                           snap_on_start=False))
        for holding in (f'import:{imp}', f'export:{exp}'):
            client = Client(self, holding)
            # several idle periods without any call: the holding keeps it
            time.sleep(4 * self.IDLE_S)
            self.assertTrue(self.service.running(),
                            f'the service exited on idle while a caller held {holding}:\n{self.service.output()}')
            self.assertTrue(self._name_has_owner(), f'the service gave up its name while {holding} was held')
            client.exit()
            self.wait_until(lambda: self.released(imp, exp), 'the release')
        # nothing held: now it goes
        self.wait_until(lambda: not self.service.running(), 'the exit on idle')
        rc = self.service.stop()
        self.assertEqual(rc, 0, self.service.output())

    def released(self, imp, exp):
        try:
            self.vcall(imp, 'ImportEnd', 'bsa{sv}', (True, '', {}))
        except DBusCallError as e:
            return e.name.endswith('NoImportInProgress') and not self.export_open(exp)
        self.fail('ImportEnd committed the departed caller\'s import')

    def export_open(self, exp):
        try:
            self.start(exp)
        except DBusCallError as e:
            if e.name.endswith('VolumeBusy'):
                return True
            raise
        self.stop(exp)
        return False


if __name__ == '__main__':
    storaged.main()
