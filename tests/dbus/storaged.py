"""Common helpers for the D-Bus tests of qubes-storaged.

Every test gets a private system bus (python-dbusmock, one per test class), a
fresh temporary state and base directory and its own instance of the built
service, started as

    qubes-storaged --bus system --state-dir <tmp>/state --base-dir <tmp>/base

The binary is $QUBES_STORAGED, or build/qubes-storaged-test (the test build) in the source tree.
Calls go through Gio (GDBus) so that a{sv} variants and fd passing work.
Nothing here skips: a missing facility is a failure.
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

import dbusmock
import gi

gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRCDIR, 'tests'))
from support.names import path_encode, pool_path, volume_path  # noqa: E402,F401
from support.calls import DBusCallError, split_gerror as _split_gerror  # noqa: E402,F401
from support.bus import name_has_owner  # noqa: E402
from support import tree  # noqa: E402
from support.service import (SANITIZER_MARKERS, STARTUP_TIMEOUT_S, STOP_TIMEOUT_S, Service,  # noqa: E402,F401
                             ServiceError, default_binary, sanitizer_report, wait_released)

SERVICE = default_binary()

BUS_NAME = 'org.qubes.Storage1'
ROOT = '/org/qubes/Storage1'
MANAGER = 'org.qubes.Storage1.Manager'
POOL = 'org.qubes.Storage1.Pool'
VOLUME = 'org.qubes.Storage1.Volume'
OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager'
PROPERTIES = 'org.freedesktop.DBus.Properties'
INTROSPECTABLE = 'org.freedesktop.DBus.Introspectable'
ERROR_PREFIX = 'org.qubes.Storage1.Error.'

ERROR_NAMES = ('Failed', 'NotAuthorized', 'InvalidArgument', 'UnknownDriver', 'NoSuchPool', 'NoSuchVolume',
               'NoSuchRevision', 'AlreadyExists', 'PoolInUse', 'VolumeBusy', 'ImportInProgress',
               'NoImportInProgress', 'ImportFailed', 'ShrinkRefused', 'ReadOnly', 'MissingImage',
               'NotSupported', 'Cancelled', 'PoolFull', 'LimitsExceeded')

# A deadlock guard for calls and waits, never an assertion about speed.
CALL_TIMEOUT_MS = 120 * 1000
WAIT_TIMEOUT_S = 60

MiB = 1 << 20
GiB = 1 << 30

FICLONE = 0x40049409


def ficlone_works(directory):
    """The same probe the service makes: FICLONE between two files in dir."""
    import fcntl
    src = tempfile.NamedTemporaryFile(dir=directory, delete=False)
    dst_name = src.name + '.clone'
    try:
        src.write(b'x' * 4096)
        src.flush()
        with open(dst_name, 'wb') as dst:
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                return True
            except OSError:
                return False
    finally:
        src.close()
        os.unlink(src.name)
        if os.path.exists(dst_name):
            os.unlink(dst_name)


def allocated(path):
    """Bytes allocated to a file (st_blocks * 512), 0 when it does not exist."""
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def tree_snapshot(root, exclude=()):
    """What a user could see in a directory tree (support.tree.snapshot)."""
    return tree.snapshot(root, exclude)


snapshot_diff = tree.diff


def opts(**kw):
    """a{sv} options: Python bool → b, int → i, str → s, GLib.Variant as is."""
    return {k: _auto_variant(v) for k, v in kw.items()}


def _auto_variant(v):
    if isinstance(v, GLib.Variant):
        return v
    if isinstance(v, bool):
        return GLib.Variant('b', v)
    if isinstance(v, int):
        return GLib.Variant('i', v)
    if isinstance(v, str):
        return GLib.Variant('s', v)
    raise TypeError(f'no automatic variant type for {v!r}')


VOLUME_CONFIG_TYPES = {
    'name': 's', 'vm': 's', 'template': 'b', 'vid': 's', 'size': 't', 'rw': 'b', 'snap_on_start': 'b',
    'save_on_stop': 'b', 'source': 's', 'revisions_to_keep': 'i', 'ephemeral': 'b',
}


def vconf(**kw):
    """CreateVolume config with the API's types (a str value stays a string,
    e.g. size='1048576'; a GLib.Variant is passed as is)."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, GLib.Variant):
            out[k] = v
        elif isinstance(v, str):
            out[k] = GLib.Variant('s', v)
        elif k in VOLUME_CONFIG_TYPES:
            out[k] = GLib.Variant(VOLUME_CONFIG_TYPES[k], v)
        else:
            out[k] = _auto_variant(v)
    return out


class StoragedTestCase(dbusmock.DBusTestCase):
    """Base class: private system bus per class, fresh dirs and service per test."""

    # extra environment for the service (e.g. the slow-operation seam)
    service_env = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_system_bus()
        cls.bus_address = os.environ['DBUS_SYSTEM_BUS_ADDRESS']

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix='storaged-dbus-test-')
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.state_dir = os.path.join(self.tmp, 'state')
        self.base_dir = os.path.join(self.tmp, 'base')
        self.pools_dir = os.path.join(self.tmp, 'pools')
        self.log_dir = os.path.join(self.tmp, 'logs')
        for d in (self.base_dir, self.pools_dir, self.log_dir):
            os.makedirs(d)
        self.prepare()

        self.ctx = GLib.MainContext.default()
        self.bus = Gio.DBusConnection.new_for_address_sync(
            self.bus_address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.addCleanup(self._close_bus)
        self.signals = []
        self._sub = self.bus.signal_subscribe(None, None, None, None, None, Gio.DBusSignalFlags.NONE,
                                              self._on_signal, None)

        self.service = Service(self.state_dir, self.base_dir, self.log_dir, env=self.service_env)
        self.addCleanup(self._stop_service_at_end)
        self.start_service()

    def prepare(self):
        """Hook: runs before the service starts (dirs exist, bus not yet used)."""

    def _close_bus(self):
        self.bus.signal_unsubscribe(self._sub)
        self.drain()
        self.bus.close_sync(None)

    def _stop_service_at_end(self):
        self.stop_service()

    # ---- service lifecycle -------------------------------------------------

    def start_service(self):
        self.owner = self.service.launch(self.bus)

    def stop_service(self):
        """SIGTERM the service, wait, and check its output for sanitizer reports."""
        if self.service.proc is None:
            return
        self.service.stop_checked()
        # the bus must have released the name before anyone starts another one
        wait_released(self.bus, BUS_NAME, WAIT_TIMEOUT_S)

    def _name_has_owner(self):
        return name_has_owner(self.bus, BUS_NAME)

    def restart_service(self):
        self.stop_service()
        self.start_service()

    # ---- main loop, signals ----------------------------------------------

    def _on_signal(self, conn, sender, path, iface, member, params, user_data):
        self.signals.append((sender, path, iface, member, params.unpack()))

    def drain(self):
        """Dispatch everything already received (signals, async replies)."""
        while self.ctx.pending():
            self.ctx.iteration(False)

    def sync(self):
        """A round trip to the service, then dispatch: every signal the service
        sent before answering has been recorded afterwards."""
        self.bus.call_sync(BUS_NAME, ROOT, 'org.freedesktop.DBus.Peer', 'Ping', None, None,
                           Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
        self.drain()

    def wait_until(self, cond, what, timeout=WAIT_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        self.drain()
        while not cond():
            if time.monotonic() > deadline:
                self.fail(f'timed out after {timeout}s waiting for {what}; signals seen: '
                          f'{self.signals[-20:]}\nservice output:\n{self.service.output()}')
            src = GLib.timeout_source_new(50)
            src.set_callback(lambda *a: False)
            src.attach(self.ctx)
            self.ctx.iteration(True)
            src.destroy()

    def mark(self):
        """Index into self.signals, to look only at later signals."""
        self.drain()
        return len(self.signals)

    def service_signals(self, since=0, member=None, path=None, iface=None):
        out = []
        for (sender, p, i, m, args) in self.signals[since:]:
            if sender == 'org.freedesktop.DBus':
                continue
            if member is not None and m != member:
                continue
            if path is not None and p != path:
                continue
            if iface is not None and i != iface:
                continue
            out.append((p, i, m, args))
        return out

    def wait_signal(self, since, member, path=None, iface=None, match=None, what=None):
        """Waits for a service signal after mark `since` and returns its args."""
        found = []

        def cond():
            for (p, i, m, args) in self.service_signals(since, member, path, iface):
                if match is None or match(args):
                    found.append(args)
                    return True
            return False
        self.wait_until(cond, what or f'signal {iface}.{member} on {path}')
        return found[0]

    def properties_changed(self, since, path, iface):
        """Merged changed properties (and invalidated names) of PropertiesChanged
        signals for iface on path after mark `since`."""
        changed, invalidated = {}, set()
        for (_, _, _, args) in self.service_signals(since, 'PropertiesChanged', path, PROPERTIES):
            if args[0] != iface:
                continue
            changed.update(args[1])
            invalidated.update(args[2])
        return changed, invalidated

    def client_model(self, since, path, iface):
        """What a client that listens sees of an object: the properties of
        its InterfacesAdded (after mark `since`) updated by every later
        PropertiesChanged. None before InterfacesAdded."""
        model = None
        for (p, i, m, args) in self.service_signals(since):
            if m == 'InterfacesAdded' and i == 'org.freedesktop.DBus.ObjectManager' and args[0] == path \
                    and iface in args[1]:
                model = dict(args[1][iface])
            elif model is not None and m == 'PropertiesChanged' and p == path and args[0] == iface:
                model.update(args[1])
                for n in args[2]:
                    model.pop(n, None)
            elif m == 'InterfacesRemoved' and args[0] == path and iface in args[1]:
                model = None
        return model

    def assertClientModel(self, since, path, iface):
        """A listening client's view of the object matches GetAll (waiting
        for PropertiesChanged that may follow the reply)."""
        state = {}

        def cond():
            state['model'] = self.client_model(since, path, iface)
            state['props'] = self.get_all(path, iface)
            return state['model'] == state['props']
        try:
            self.wait_until(cond, f'InterfacesAdded + PropertiesChanged of {path} to match GetAll', timeout=10)
        except AssertionError:
            model, props = state['model'] or {}, state['props']
            diff = [f'  {k}: signals say {model.get(k)!r}, GetAll says {props.get(k)!r}'
                    for k in sorted(set(model) | set(props)) if model.get(k) != props.get(k)]
            self.fail(f'a client listening to signals sees {path} differently from GetAll:\n' + '\n'.join(diff))

    def wait_prop(self, path, iface, name, value):
        """Waits until Get(name) answers value (for values the service
        refreshes in the background, e.g. a new pool's Size)."""
        got = []

        def cond():
            got[:] = [self.get_prop(path, iface, name)]
            return got[0] == value
        self.wait_until(cond, f'{iface}.{name} of {path} to become {value!r} (last: {got})', timeout=30)

    def wait_property_changed(self, since, path, iface, name, value):
        def cond():
            changed, invalidated = self.properties_changed(since, path, iface)
            return changed.get(name) == value or name in invalidated
        self.wait_until(cond, f'PropertiesChanged {iface}.{name} = {value!r} on {path}')

    # ---- calls ---------------------------------------------------------------

    def call(self, path, iface, method, sig=None, args=(), reply=None, timeout=CALL_TIMEOUT_MS, fd_list=None):
        """Synchronous call. sig is the input signature without parentheses,
        reply the expected reply signature (checked by GDBus). Returns the
        unpacked reply: None for '', the value for one out argument, a tuple
        for more. Raises DBusCallError for error replies."""
        params = GLib.Variant(f'({sig})', tuple(args)) if sig else None
        rtype = GLib.VariantType(f'({reply})') if reply is not None else None
        try:
            if fd_list is not None:
                res, out_fds = self.bus.call_with_unix_fd_list_sync(
                    BUS_NAME, path, iface, method, params, rtype, Gio.DBusCallFlags.NONE, timeout, fd_list, None)
            else:
                res = self.bus.call_sync(BUS_NAME, path, iface, method, params, rtype, Gio.DBusCallFlags.NONE,
                                         timeout, None)
        except GLib.Error as e:
            name, message = _split_gerror(e)
            if name is None:
                raise AssertionError(f'{method} on {path} failed locally: {e.message}') from None
            raise DBusCallError(name, message, e) from None
        values = res.unpack() if res is not None else ()
        if len(values) == 0:
            return None
        if len(values) == 1:
            return values[0]
        return values

    def call_async(self, path, iface, method, sig=None, args=(), reply=None, on_done=None,
                   timeout=CALL_TIMEOUT_MS):
        """Asynchronous call. Returns a dict that gets 'done' (True), 'result'
        or 'error' (DBusCallError) once the reply has been dispatched;
        on_done(state) runs then."""
        params = GLib.Variant(f'({sig})', tuple(args)) if sig else None
        rtype = GLib.VariantType(f'({reply})') if reply is not None else None
        state = {'done': False}

        def cb(conn, res, _):
            try:
                v = conn.call_finish(res)
                vals = v.unpack() if v is not None else ()
                state['result'] = None if len(vals) == 0 else vals[0] if len(vals) == 1 else vals
            except GLib.Error as e:
                name, message = _split_gerror(e)
                state['error'] = DBusCallError(name, message, e)
            state['done'] = True
            if on_done:
                on_done(state)
        self.bus.call(BUS_NAME, path, iface, method, params, rtype, Gio.DBusCallFlags.NONE, timeout, None, cb,
                      None)
        return state

    def get_prop(self, path, iface, name):
        return self.call(path, PROPERTIES, 'Get', 'ss', (iface, name), 'v')

    def get_all(self, path, iface):
        return self.call(path, PROPERTIES, 'GetAll', 's', (iface,), 'a{sv}')

    def introspect(self, path):
        return self.call(path, INTROSPECTABLE, 'Introspect', reply='s')

    def managed_objects(self):
        return self.call(ROOT, OBJECT_MANAGER, 'GetManagedObjects', reply='a{oa{sa{sv}}}')

    # Manager
    def list_pools(self):
        return self.call(ROOT, MANAGER, 'ListPools', reply='a(so)')

    def list_drivers(self):
        return self.call(ROOT, MANAGER, 'ListDrivers', reply='a(sas)')

    def get_pool(self, name):
        return self.call(ROOT, MANAGER, 'GetPool', 's', (name,), 'o')

    def add_pool(self, name, driver, config, options=None):
        return self.call(ROOT, MANAGER, 'AddPool', 'ssa{ss}a{sv}', (name, driver, config, options or {}), 'o')

    def add_file_pool(self, name, revisions_to_keep=None, dir_path=None):
        config = {'dir_path': dir_path or os.path.join(self.pools_dir, name)}
        if revisions_to_keep is not None:
            config['revisions_to_keep'] = str(revisions_to_keep)
        return self.add_pool(name, 'file', config)

    def remove_pool(self, name, options=None):
        return self.call(ROOT, MANAGER, 'RemovePool', 'sa{sv}', (name, options or {}), '')

    def batch(self, method, paths, options=None):
        return self.call(ROOT, MANAGER, method, 'aoa{sv}', (list(paths), options or {}), '')

    # Pool
    def list_volumes(self, pool):
        return self.call(pool_path(pool), POOL, 'ListVolumes', reply='a(so)')

    def get_volume(self, pool, vid):
        return self.call(pool_path(pool), POOL, 'GetVolume', 's', (vid,), 'o')

    def create_volume(self, pool, config, options=None):
        """config: a dict from vconf() (or plain values, converted by vconf)."""
        if not all(isinstance(v, GLib.Variant) for v in config.values()):
            config = vconf(**config)
        return self.call(pool_path(pool), POOL, 'CreateVolume', 'a{sv}a{sv}', (config, options or {}), 'o')

    def pool_set_revisions_to_keep(self, pool, n, options=None):
        return self.call(pool_path(pool), POOL, 'SetRevisionsToKeep', 'ia{sv}', (n, options or {}), '')

    def refresh_usage(self, pool, options=None):
        return self.call(pool_path(pool), POOL, 'RefreshUsage', 'a{sv}', (options or {},), '')

    # Volume
    def vcall(self, vpath, method, sig='a{sv}', args=None, reply=''):
        if args is None:
            args = ({},)
        return self.call(vpath, VOLUME, method, sig, args, reply)

    def start(self, vpath, options=None):
        return self.vcall(vpath, 'Start', args=(options or {},))

    def stop(self, vpath, options=None):
        return self.vcall(vpath, 'Stop', args=(options or {},))

    def verify(self, vpath, options=None):
        return self.vcall(vpath, 'Verify', args=(options or {},), reply='b')

    def remove(self, vpath, options=None):
        return self.vcall(vpath, 'Remove', args=(options or {},))

    def resize(self, vpath, size, options=None):
        return self.vcall(vpath, 'Resize', 'ta{sv}', (size, options or {}))

    def revert(self, vpath, revision, options=None):
        return self.vcall(vpath, 'Revert', 'sa{sv}', (revision, options or {}))

    def set_rw(self, vpath, rw, options=None):
        return self.vcall(vpath, 'SetRw', 'ba{sv}', (rw, options or {}))

    def set_revisions_to_keep(self, vpath, n, options=None):
        return self.vcall(vpath, 'SetRevisionsToKeep', 'ia{sv}', (n, options or {}))

    def vprops(self, vpath):
        return self.get_all(vpath, VOLUME)

    def vprop(self, vpath, name):
        return self.get_prop(vpath, VOLUME, name)

    def pprops(self, pool):
        return self.get_all(pool_path(pool), POOL)

    # ---- assertions ----------------------------------------------------------

    def assertDBusError(self, name, fn, /, *args, contains=(), **kw):
        """fn(*args, **kw) must fail with org.qubes.Storage1.Error.<name> (or
        any of the names in a tuple; a name with dots is taken as is), and
        its message must contain every item of `contains`: a string, or a
        tuple of strings of which at least one must appear (e.g. the pool or
        the vid). Returns the DBusCallError."""
        e = self._expect_error(name, fn, *args, **kw)
        self._check_message(e, contains)
        return e

    def _expect_error(self, name, fn, /, *args, **kw):
        names = (name,) if isinstance(name, str) else tuple(name)
        full = [n if '.' in n else ERROR_PREFIX + n for n in names]
        try:
            result = fn(*args, **kw)
        except DBusCallError as e:
            self.assertIn(e.name, full, f'expected error {" or ".join(full)}, got {e.name}: {e.message}')
            return e
        self.fail(f'expected error {" or ".join(full)}, but the call succeeded and returned {result!r}')

    def _check_message(self, e, contains):
        for c in ((contains,) if isinstance(contains, str) else contains):
            alternatives = (c,) if isinstance(c, str) else tuple(c)
            if not any(str(a) in e.message for a in alternatives):
                self.fail(f'error message of {e.name} does not name {" or ".join(map(repr, alternatives))}: '
                          f'{e.message!r}')

    def assertConfig(self, config, name, driver, expected):
        """Pool.Config: the driver parameters and revisions_to_keep as
        `expected` says; besides them only 'name' and 'driver' (the
        admin.pool.Info data), and then with the pool's values."""
        rest = dict(config)
        if 'name' in rest:
            self.assertEqual(rest.pop('name'), name, f'Config of {name}: name')
        if 'driver' in rest:
            self.assertEqual(rest.pop('driver'), driver, f'Config of {name}: driver')
        self.assertEqual(rest, expected, f'Config of pool {name}')

    def snapshot_all(self):
        return {'tree': tree_snapshot(self.tmp, exclude=('logs',))}

    @staticmethod
    def without_state_mtimes(snap):
        """A snapshot where state records count by content only."""
        tree = {}
        for k, v in snap['tree'].items():
            if k.startswith('state' + os.sep) and v[0] == 'file':
                v = v[:4] + (None,) + v[5:]
            tree[k] = v
        return {'tree': tree}

    def assertUnchanged(self, before, what=''):
        after = self.snapshot_all()
        if before != after:
            self.fail(f'{what}: files changed on disk or in the state dir:\n'
                      + snapshot_diff(before['tree'], after['tree']))

    def assertRejected(self, name, fn, /, *args, contains=(), **kw):
        """Like assertDBusError, and nothing changed under the test dir
        (base dir, pool dirs, state dir)."""
        before = self.snapshot_all()
        e = self._expect_error(name, fn, *args, **kw)
        self.assertUnchanged(before, f'after rejected call ({e.name}: {e.message})')
        self._check_message(e, contains)
        return e

    def state_records(self):
        out = set()
        for dirpath, _, files in os.walk(self.state_dir):
            for f in files:
                out.add(os.path.relpath(os.path.join(dirpath, f), self.state_dir))
        return out


def main():
    unittest.main(verbosity=2)


if __name__ == '__main__':
    sys.exit('this is a helper module; run the test_*.py files')
