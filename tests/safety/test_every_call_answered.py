#!/usr/bin/python3
"""Every call is answered, and the service never lingers unable to answer.

- RefreshUsage waiting on a pool that is then removed answers NoSuchPool
  (the refresh is held in flight by an LD_PRELOAD shim, statvfs-gate.so,
  that blocks statvfs() of the pool's directory until the test lets go).
- SIGTERM cancels a running job (an Import from a pipe nobody writes
  answers Cancelled), refuses new calls with Failed "qubes-storaged is
  stopping" while reads are still answered, lets the work in flight finish
  and answer, and exits 0.
- Losing the bus connection (the bus daemon dies) makes the service exit
  with a failure status, so that the service manager restarts it, instead of
  staying alive without its name.
"""
import os
import signal
import subprocess
import sys
import tempfile
import shutil
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dbus'))
import storaged  # noqa: E402
from storaged import BUS_NAME, MiB, POOL, ROOT, SERVICE, VOLUME, pool_path  # noqa: E402

import dbusmock  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402


GATE_LIB = os.environ.get('QS_STATVFS_GATE_LIB') or os.path.join(storaged.SRCDIR, 'build', 'tests', 'safety',
                                                                 'statvfs-gate.so')


def preload_for(binary):
    """LD_PRELOAD with the gate; a sanitizer runtime the binary links must come first."""
    if not os.path.exists(GATE_LIB):
        raise AssertionError(f'test helper {GATE_LIB} is missing (build it, or set QS_STATVFS_GATE_LIB)')
    libs = []
    out = subprocess.run(['ldd', binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].startswith('libasan') and '=>' in parts:
            libs.append(parts[parts.index('=>') + 1])
    return ':'.join(libs + [GATE_LIB])


class GatedTestCase(storaged.StoragedTestCase):
    """The service runs with statvfs of <pools>/gated held while <tmp>/gate exists."""

    def prepare(self):
        self.gate = os.path.join(self.tmp, 'gate')
        self.gated_dir = os.path.join(self.pools_dir, 'gated')
        self.service_env = {'LD_PRELOAD': preload_for(SERVICE), 'QS_STATVFS_GATE_DIR': self.gated_dir,
                            'QS_STATVFS_GATE': self.gate}

    def close_gate(self):
        with open(self.gate, 'w'):
            pass
        self.addCleanup(self.open_gate)

    def open_gate(self):
        if os.path.exists(self.gate):
            os.unlink(self.gate)

    def wait_held(self):
        self.wait_until(lambda: os.path.exists(self.gate + '.entered'), 'a statvfs of the pool to be held')


class RefreshUsageRemovedPoolTest(GatedTestCase):

    def test_refresh_usage_of_removed_pool_answers(self):
        self.add_file_pool('gated', dir_path=self.gated_dir)
        self.close_gate()
        first = self.call_async(pool_path('gated'), POOL, 'RefreshUsage', 'a{sv}', ({},), '')
        self.wait_held()
        # a second one waits for the refresh after the running one
        second = self.call_async(pool_path('gated'), POOL, 'RefreshUsage', 'a{sv}', ({},), '')
        self.sync()
        self.remove_pool('gated')
        self.assertNotIn('gated', [p for p, _ in self.list_pools()])
        self.open_gate()
        self.wait_until(lambda: first['done'] and second['done'], 'both RefreshUsage calls to be answered')
        for st in (first, second):
            self.assertIn('error', st, 'RefreshUsage of a removed pool succeeded')
            self.assertEqual(st['error'].name, storaged.ERROR_PREFIX + 'NoSuchPool', st['error'].message)
            self.assertIn('gated', st['error'].message)
        # and the service is healthy: a new pool of that name refreshes
        self.add_file_pool('gated', dir_path=self.gated_dir)
        self.refresh_usage('gated')


class StopTest(GatedTestCase):

    def test_sigterm_cancels_refuses_and_exits_zero(self):
        self.add_file_pool('gated', dir_path=self.gated_dir)
        v = self.create_volume('gated', dict(name='private', vm='work', size=4 * MiB, rw=True, save_on_stop=True,
                                             snap_on_start=False))
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        since = self.mark()
        fdl = Gio.UnixFDList.new()
        fdl.append(r)
        os.close(r)
        state = {'done': False}

        def done(conn, res, _):
            try:
                conn.call_with_unix_fd_list_finish(res)
                state['result'] = True
            except GLib.Error as e:
                state['error'] = storaged.DBusCallError(*storaged._split_gerror(e), e)
            state['done'] = True
        self.bus.call_with_unix_fd_list(BUS_NAME, v, VOLUME, 'Import', GLib.Variant('(hta{sv})', (0, 4 * MiB, {})),
                                        None, Gio.DBusCallFlags.NONE, storaged.CALL_TIMEOUT_MS, fdl, None, done, None)
        job = self.wait_signal(since, 'InterfacesAdded', match=lambda a: a[0].startswith(ROOT + '/job/'),
                               what='the Import job')[0]
        # work in flight that SIGTERM must wait for: a refresh held at statvfs
        self.close_gate()
        refresh = self.call_async(pool_path('gated'), POOL, 'RefreshUsage', 'a{sv}', ({},), '')
        self.wait_held()

        self.service.proc.send_signal(signal.SIGTERM)
        self.wait_until(lambda: state['done'], 'the running Import to end after SIGTERM')
        self.assertIn('error', state, 'the Import from a silent pipe succeeded')
        self.assertEqual(state['error'].name, storaged.ERROR_PREFIX + 'Cancelled', state['error'].message)
        self.wait_signal(since, 'Completed', path=job, what='Completed of the cancelled job')
        # stopping: a new mutating call is refused by name, a read is answered
        e = self.assertDBusError('Failed', self.create_volume, 'gated',
                                 dict(name='root', vm='work', size=MiB, rw=True, save_on_stop=True,
                                      snap_on_start=False))
        self.assertIn('qubes-storaged is stopping', e.message)
        self.assertEqual(self.vprop(v, 'Vid'), 'appvms/work/private')
        self.assertTrue(self.service.running(), 'the service exited with work in flight')
        self.assertFalse(refresh['done'])
        # let the work in flight go: it is answered, then the service exits 0
        self.open_gate()
        self.wait_until(lambda: refresh['done'], 'the RefreshUsage in flight to be answered')
        self.assertNotIn('error', refresh, refresh.get('error') and refresh['error'].message)
        try:
            self.service.proc.wait(storaged.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.fail('the service did not exit after its work in flight was done')
        self.stop_service()  # checks: status 0, no sanitizer report, the name released


class BusLossTest(unittest.TestCase):
    """A bus of its own, killed under the running service."""

    def test_lost_bus_connection_exits_nonzero(self):
        tmp = tempfile.mkdtemp(prefix='storaged-safety-')
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        bus_pid, address = dbusmock.DBusTestCase.start_dbus()
        bus_alive = [True]

        def stop_bus():
            if bus_alive[0]:
                dbusmock.DBusTestCase.stop_dbus(bus_pid)
        self.addCleanup(stop_bus)
        svc = storaged.Service(os.path.join(tmp, 'state'), os.path.join(tmp, 'base'), tmp, bus=address)
        self.addCleanup(svc.kill)
        conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        svc.launch(conn)
        conn.close_sync(None)

        os.kill(bus_pid, signal.SIGKILL)
        bus_alive[0] = False
        try:
            rc = svc.reap(storaged.STOP_TIMEOUT_S)
        except storaged.ServiceError:
            self.fail('the service is still running without its bus connection')
        out = svc.output()
        self.assertNotEqual(rc, 0, f'the service exited with status 0 after losing the bus; output:\n{out}')
        self.assertGreater(rc, 0, f'the service died of signal {-rc} instead of exiting; output:\n{out}')
        for marker in storaged.SANITIZER_MARKERS:
            self.assertNotIn(marker, out)


if __name__ == '__main__':
    storaged.main()
