"""A private dbus-daemon (system type) for one test, suite or bench run:
its config written from a policy, started with --nofork (it stays our child
and is stopped by its pid) and --print-address, a Gio connection to it and
the bus driver's calls the tests need."""

import os
import subprocess

import gi

gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

# A deadlock guard for calls to the bus driver, never an assertion about speed.
CALL_TIMEOUT_MS = 120 * 1000

BUS_CONFIG_HEAD = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
'''

# A permissive system bus like python-dbusmock's start_system_bus(), plus
# <allow user="*"/>: dbusmock's own config has no user rule, so dbus-daemon
# only lets the uid that runs it (root) connect and the non-root caller
# would be disconnected during authentication.
PERMISSIVE_POLICY = '''
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
'''


def bus_config(socket, policy, servicedir=None, includes=()):
    text = BUS_CONFIG_HEAD.format(socket=socket)
    if servicedir:
        text += f'  <servicedir>{servicedir}</servicedir>\n'
    text += policy
    for inc in includes:
        text += f'  <include>{inc}</include>\n'
    return text + '</busconfig>\n'


def bus_driver_call(conn, method, sig=None, *args):
    """A call to the bus driver (org.freedesktop.DBus) on conn: the unpacked reply."""
    r = conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus', method,
                       GLib.Variant(sig, args) if sig else None, None, Gio.DBusCallFlags.NONE,
                       CALL_TIMEOUT_MS, None)
    return r.unpack()


def name_has_owner(conn, name):
    return bus_driver_call(conn, 'NameHasOwner', '(s)', name)[0]


def name_owner(conn, name):
    """The unique name owning name, or None when nobody owns it."""
    try:
        return bus_driver_call(conn, 'GetNameOwner', '(s)', name)[0]
    except GLib.Error as e:
        if Gio.DBusError.get_remote_error(e) == 'org.freedesktop.DBus.Error.NameHasNoOwner':
            return None
        raise


def owner_pid(conn, name):
    """The pid of the process owning name (a well-known or a unique name)."""
    return bus_driver_call(conn, 'GetConnectionUnixProcessID', '(s)', name)[0]


class Bus:
    """A private dbus-daemon (system type) with a given config."""

    def __init__(self, directory, policy, servicedir=None, includes=(), env=None):
        self.socket = os.path.join(directory, 'system_bus_socket')
        self.config = os.path.join(directory, 'bus.conf')
        with open(self.config, 'w') as f:
            f.write(bus_config(self.socket, policy, servicedir, includes))
        self.log_path = os.path.join(directory, 'dbus-daemon.log')
        self.log = open(self.log_path, 'w')
        # dbus-daemon's --nofork keeps it our child, so it is stopped by its pid.
        self.proc = subprocess.Popen(['dbus-daemon', '--nofork', '--nopidfile', '--config-file=' + self.config,
                                      '--print-address=1'], stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env=dict(env if env is not None else os.environ, LC_ALL='C'))
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.wait(10)
            raise AssertionError(f'dbus-daemon did not start: {self.read_log()}')
        self.address = f'unix:path={self.socket}'
        self._conn = None

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def connect(self):
        return Gio.DBusConnection.new_for_address_sync(
            self.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
            Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)

    @property
    def conn(self):
        if self._conn is None or self._conn.is_closed():
            self._conn = self.connect()
        return self._conn

    def dbus(self, method, sig=None, *args):
        return bus_driver_call(self.conn, method, sig, *args)

    def has_owner(self, name):
        return name_has_owner(self.conn, name)

    def owner_pid(self, name):
        return owner_pid(self.conn, name)

    def stop(self):
        if self._conn is not None and not self._conn.is_closed():
            self._conn.close_sync(None)
        self._conn = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


# A blocking main-context iteration waits at most this long. GDBus hands
# replies over from its worker thread; a wake-up that gets lost there (seen
# under ASan with thousands of calls in flight: the poll slept with no timer
# while every reply had arrived) then costs one tick instead of the run.
ITERATE_TICK_MS = 100


def iterate(ctx, may_block=True):
    """One iteration of ctx; when it may block, it wakes after ITERATE_TICK_MS."""
    if not may_block:
        return ctx.iteration(False)
    src = GLib.timeout_source_new(ITERATE_TICK_MS)
    src.set_callback(lambda *a: False)
    src.attach(ctx)
    try:
        return ctx.iteration(True)
    finally:
        src.destroy()
