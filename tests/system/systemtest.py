"""Common helpers of the system tests of qubes-storaged (tests/system).

These tests look at the service as the system sees it: who may call what
(polkit, through the python-dbusmock polkitd template or the real polkitd),
what the bus policy lets a non-root process do, D-Bus activation from the
activation file and exit on idle.

Everything runs on private buses started here (dbus-daemon with a config of
the test's own); the machine's buses, polkitd and files are never touched.
The tests run as root (they start dbus-daemon, the service and polkitd, and
switch to uid 65534 with setpriv for the non-root caller). Nothing skips: a
missing facility is a failure.

The binary is $QUBES_STORAGED (default: <repo>/build/qubes-storaged-test), the
source tree $QUBES_STORAGED_SRC (default: the tree this file is in).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import gi

gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: the support package
from support.names import path_encode, pool_path, volume_path  # noqa: E402,F401
from support.bus import BUS_CONFIG_HEAD, PERMISSIVE_POLICY, Bus, bus_config  # noqa: E402,F401
from support.calls import DBusCallError as CallError, split_gerror as gerror_split  # noqa: E402
from support import service as support_service  # noqa: E402
from support import nobody, tree  # noqa: E402
from support.nobody import NOBODY_GID, NOBODY_UID, PYTHON  # noqa: E402,F401
from support.service import SANITIZER_MARKERS  # noqa: E402,F401

SRCDIR = os.path.abspath(os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE)))
SERVICE = support_service.default_binary()
CLIENT = os.path.join(HERE, 'client.py')
SUPPORT = os.path.join(os.path.dirname(HERE), 'support')

BUS_NAME = 'org.qubes.Storage1'
ROOT = '/org/qubes/Storage1'
MANAGER = 'org.qubes.Storage1.Manager'
POOL = 'org.qubes.Storage1.Pool'
VOLUME = 'org.qubes.Storage1.Volume'
OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager'
PROPERTIES = 'org.freedesktop.DBus.Properties'
INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable'
NOT_AUTHORIZED = 'org.qubes.Storage1.Error.NotAuthorized'

MANAGE_POOLS = 'org.qubes.storage1.manage-pools'
MANAGE_VOLUMES = 'org.qubes.storage1.manage-volumes'
START_STOP = 'org.qubes.storage1.start-stop'

# Deadlock guards for waits and calls, never assertions about speed.
CALL_TIMEOUT_MS = 120 * 1000
WAIT_TIMEOUT_S = 60

MiB = 1 << 20



def check_environment(test):
    """The facilities every system test needs: fail loudly when one is missing."""
    test.assertEqual(os.geteuid(), 0, 'the system tests run as root (dbus-daemon, setpriv, polkitd)')
    test.assertTrue(os.access(SERVICE, os.X_OK), f'no service binary at {SERVICE} (set QUBES_STORAGED)')
    for tool in ('dbus-daemon', 'setpriv'):
        test.assertIsNotNone(shutil.which(tool), f'{tool} is not installed')
    test.assertTrue(os.access(PYTHON, os.X_OK), f'{PYTHON} is missing')


def wait_until(predicate, what, timeout=WAIT_TIMEOUT_S, interval=0.05):
    """Polls predicate() until it is true; fails naming `what` after a
    generous timeout (a hang guard, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(interval)


# ---------------------------------------------------------------- files

def make_world(prefix):
    """A temporary directory every uid can traverse (the bus socket lives
    there; the non-root client must reach it), with state/, base/, pools/."""
    top = tempfile.mkdtemp(prefix=prefix)
    os.chmod(top, 0o755)
    for d in ('state', 'base', 'pools'):
        os.mkdir(os.path.join(top, d))
    return top


def tree_snapshot(root):
    """Every entry under root with type, mode, owner, size, allocation, mtime
    and a content hash of small files: what a change would show."""
    return tree.snapshot(root, owner=True, hash_limit=8 * MiB)


snapshot_diff = tree.diff


# ---------------------------------------------------------------- buses

# The default context of Debian's /usr/share/dbus-1/system.conf: everyone
# may connect; owning names and sending method calls need a hole punched by
# a service's own policy file (ours: org.qubes.Storage1.conf).
SYSTEM_POLICY = '''
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
'''


# ---------------------------------------------------------------- calls

def call(conn, path, iface, method, sig=None, args=(), dest=BUS_NAME, flags=Gio.DBusCallFlags.NONE,
         timeout=CALL_TIMEOUT_MS):
    """A method call from this (root) process: the unpacked reply tuple, or
    CallError(name, message)."""
    params = GLib.Variant(sig, tuple(args)) if sig else None
    try:
        r = conn.call_sync(dest, path, iface, method, params, None, flags, timeout, None)
    except GLib.Error as e:
        raise CallError(*gerror_split(e)) from None
    return r.unpack() if r is not None else ()


def v(sig, value):
    return GLib.Variant(sig, value)


# Pool properties that follow the filesystem a file pool is on: the tests'
# pools share it with the rest of the machine, whose use of it changes.
HOST_FS_PROPERTIES = ('Usage', 'UsageDetails')


def all_objects(conn):
    """Every object of the service with every property (ObjectManager), as
    a plain dict: what a client could read; except the pools' Usage and
    UsageDetails (HOST_FS_PROPERTIES), which other processes change."""
    (objs,) = call(conn, ROOT, OBJECT_MANAGER, 'GetManagedObjects')
    for ifaces in objs.values():
        for name in HOST_FS_PROPERTIES:
            ifaces.get(POOL, {}).pop(name, None)
    return objs


def get_property(conn, path, iface, name):
    (val,) = call(conn, path, PROPERTIES, 'Get', '(ss)', (iface, name))
    return val


# ---------------------------------------------------------------- non-root client

class NonRoot:
    """Runs tests/system/client.py as uid/gid 65534 with no supplementary
    groups (setpriv). The client makes the calls it is given on a connection
    of its own and prints one JSON line per event."""

    def __init__(self, world, address):
        # The client must be readable by uid 65534: the source tree may not be.
        # It imports support.calls: a copy of the package goes beside it.
        self.script = os.path.join(world, 'client.py')
        if not os.path.exists(self.script):
            support = os.path.join(world, 'support')
            shutil.copytree(SUPPORT, support, ignore=shutil.ignore_patterns('__pycache__'))
            os.chmod(support, 0o755)
            for name in os.listdir(support):
                os.chmod(os.path.join(support, name), 0o644)
            shutil.copyfile(CLIENT, self.script)
            os.chmod(self.script, 0o644)
        self.address = address

    def argv(self, request):
        return nobody.python_argv(self.script, json.dumps(dict(request, address=self.address)))

    def start(self, request):
        """A client running in the background: a ClientProcess."""
        p = subprocess.Popen(self.argv(request), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=nobody.ENV, cwd='/')
        return ClientProcess(p)

    def run(self, request):
        """Runs a client to its end: the list of its JSON events."""
        p = subprocess.run(self.argv(request), capture_output=True, text=True, env=nobody.ENV, cwd='/',
                           timeout=CALL_TIMEOUT_MS / 1000 + 60)
        events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        if p.returncode != 0:
            raise AssertionError(f'the non-root client failed (rc {p.returncode}): {p.stderr}\n{p.stdout}')
        return events

    def call(self, path, iface, method, sig=None, args=None, interactive=False):
        """One call as uid 65534: (sender, result) where result is
        {'ok': value} or {'error': name, 'message': text}."""
        events = self.run({'calls': [call_request(path, iface, method, sig, args, interactive)]})
        return events[0]['sender'], events[1]

    def own(self, name):
        events = self.run({'own': name})
        return events[1]


def call_request(path, iface, method, sig=None, args=None, interactive=False, dest=BUS_NAME):
    """A call for client.py. args is GVariant text (GLib.Variant.print_)
    of the whole argument tuple."""
    return {'dest': dest, 'path': path, 'iface': iface, 'method': method, 'sig': sig,
            'args': args, 'interactive': interactive}


def gv_text(sig, value):
    """GVariant text of a value, for client.py."""
    return GLib.Variant(sig, value).print_(True)


class ClientProcess:
    def __init__(self, popen):
        self.popen = popen

    def next_event(self):
        line = self.popen.stdout.readline()
        if not line:
            self.popen.wait(30)
            raise AssertionError(f'the non-root client ended early (rc {self.popen.returncode}): '
                                 f'{self.popen.stderr.read()}')
        return json.loads(line)

    def running(self):
        return self.popen.poll() is None

    def finish(self):
        out, err = self.popen.communicate(timeout=CALL_TIMEOUT_MS / 1000 + 60)
        if self.popen.returncode != 0:
            raise AssertionError(f'the non-root client failed (rc {self.popen.returncode}): {err}')
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


# ---------------------------------------------------------------- the service

class Service(support_service.Service):
    """The built service started directly on a bus (not activated), with
    the world's state/ and base/ and its output in world/service.log."""

    def __init__(self, bus, world, extra_args=()):
        super().__init__(os.path.join(world, 'state'), os.path.join(world, 'base'), world,
                         env={'DBUS_SYSTEM_BUS_ADDRESS': bus.address}, extra_args=extra_args, binary=SERVICE,
                         log_name='service.log')
        self.env.pop('STATE_DIRECTORY', None)
        self.world = world
        self.start()
        self.wait_owned(bus.conn, WAIT_TIMEOUT_S)

    def read_log(self):
        return self.output()

    def stop(self):
        """SIGTERM and wait: the exit status; a sanitizer report in the log fails."""
        rc = super().stop(WAIT_TIMEOUT_S)
        log = self.read_log()
        if support_service.sanitizer_report(log):
            raise AssertionError(f'sanitizer report in the service log:\n{log}')
        return rc


class ServiceWorld:
    """Per test: a world (make_world), the service on the class's bus
    (self.bus) with SERVICE_ARGS, a root connection and the non-root caller."""

    WORLD_PREFIX = 'qsd-'
    SERVICE_ARGS = ()

    def open_world(self):
        check_environment(self)
        self.world = make_world(self.WORLD_PREFIX)
        self.service = Service(self.bus, self.world, self.SERVICE_ARGS)
        self.conn = self.bus.connect()
        self.nonroot = NonRoot(self.world, self.bus.address)

    def close_world(self):
        """Stops the service (its log on stderr when it did not exit with
        0) and removes the world."""
        self.conn.close_sync(None)
        rc = self.service.stop()
        if rc not in (0, None):
            print(self.service.read_log(), file=sys.stderr)
        remove_world(self.world)


def service_pids(marker):
    """Pids of running service processes whose command line mentions
    marker (a test's own temporary directory): the instances a test started,
    directly or through activation."""
    pids = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/cmdline', 'rb') as f:
                argv = f.read().split(b'\0')
            with open(f'/proc/{d}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state == 'Z':
            continue
        if argv and argv[0].decode(errors='replace') == SERVICE and any(marker.encode() in a for a in argv):
            pids.append(int(d))
    return pids


def proc_uid(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('Uid:'):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f'no Uid line for {pid}')


def proc_argv(pid):
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
        return [a.decode() for a in f.read().split(b'\0') if a]


def remove_world(world):
    shutil.rmtree(world, ignore_errors=True)


def main():
    unittest.main(verbosity=2)


if __name__ == '__main__':
    sys.exit('this is a helper module; run the test_*.py files')
