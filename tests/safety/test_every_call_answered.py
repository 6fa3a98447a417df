#!/usr/bin/python3
"""Every call is answered, and the service never lingers unable to answer.

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
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dbus'))
import storaged  # noqa: E402
from storaged import BUS_NAME, SERVICE  # noqa: E402

import dbusmock  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402


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
        log = open(os.path.join(tmp, 'service.log'), 'wb')
        self.addCleanup(log.close)
        proc = subprocess.Popen([SERVICE, '--bus', address, '--state-dir', os.path.join(tmp, 'state'),
                                 '--base-dir', os.path.join(tmp, 'base')],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def reap():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(reap)
        conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        deadline = time.monotonic() + storaged.STARTUP_TIMEOUT_S
        while not conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                                 'NameHasOwner', GLib.Variant('(s)', (BUS_NAME,)), GLib.VariantType('(b)'),
                                 Gio.DBusCallFlags.NONE, -1, None).unpack()[0]:
            self.assertIsNone(proc.poll(), 'the service exited before owning its name')
            self.assertLess(time.monotonic(), deadline, 'the service never owned its name')
            time.sleep(0.02)
        conn.close_sync(None)

        os.kill(bus_pid, signal.SIGKILL)
        bus_alive[0] = False
        try:
            rc = proc.wait(storaged.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.fail('the service is still running without its bus connection')
        with open(os.path.join(tmp, 'service.log'), 'rb') as f:
            out = f.read().decode('utf-8', 'replace')
        self.assertNotEqual(rc, 0, f'the service exited with status 0 after losing the bus; output:\n{out}')
        self.assertGreater(rc, 0, f'the service died of signal {-rc} instead of exiting; output:\n{out}')
        for marker in storaged.SANITIZER_MARKERS:
            self.assertNotIn(marker, out)


if __name__ == '__main__':
    storaged.main()
