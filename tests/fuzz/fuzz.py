#!/usr/bin/python3
"""Fuzz every method of every interface with random and hostile arguments.

The methods and their signatures come from introspection/*.xml (plus the
standard Properties methods), so a new method is fuzzed without changing this
file. Arguments are drawn per D-Bus type: random, empty, huge and unicode
strings, names and vids with '..', '/', symlinks to a directory outside every
pool, object paths of real and made-up objects, boundary integers and sizes,
fds of every kind (pipes with data or at EOF, either end, directories, a
regular file outside the pools, /dev/null, sockets, an fd index that was never
sent), and a{sv}/a{ss} dictionaries with the real keys carrying values of the
right and of wrong types (invalid UTF-8 as 'ay', nested variants, arrays).

Run it against the sanitizer build (build-asan, -Db_sanitize=address,undefined).
It checks:

  no crash        the service is alive throughout and exits 0 on SIGTERM
  no report       no AddressSanitizer/LeakSanitizer/UBSan report in its output
  answered        every call gets a reply or a named error: org.qubes.Storage1.Error.*
                  or a standard org.freedesktop.DBus.Error.*
  no stray files  nothing is created outside the directories of the pools that
                  exist and the state directory (a directory 'outside' that
                  symlinks point to stays untouched)

Without options: the fixed-seed slice (meson test --suite fuzz). With --full
--seed N --calls N: a campaign of that size. Both print counts per method and
outcome. See tests/fuzz/README.md.
"""

import argparse
import collections
import glob
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'dbus'))

import dbusmock  # noqa: E402
import storaged  # noqa: E402
from support.bus import iterate  # noqa: E402
from storaged import BUS_NAME, ROOT, MANAGER, POOL, VOLUME, MiB, Gio, GLib, Service, pool_path  # noqa: E402

CALL_TIMEOUT_MS = 90 * 1000   # a deadlock guard (ASan is slow), not a speed check
IN_FLIGHT = 8
STANDARD = {
    'org.freedesktop.DBus.Properties': [('Get', [('interface_name', 's'), ('property_name', 's')]),
                                        ('GetAll', [('interface_name', 's')]),
                                        ('Set', [('interface_name', 's'), ('property_name', 's'), ('value', 'v')])],
    'org.freedesktop.DBus.Introspectable': [('Introspect', [])],
    'org.freedesktop.DBus.ObjectManager': [('GetManagedObjects', [])],
    'org.freedesktop.DBus.Peer': [('Ping', [])],
}
# keys the service reads from a{sv} and a{ss} arguments (config, options)
DICT_KEYS = ['name', 'vm', 'template', 'vid', 'size', 'rw', 'snap_on_start', 'save_on_stop', 'source',
             'revisions_to_keep', 'ephemeral', 'auth.no_user_interaction', 'allow_shrink', 'dir_path',
             'setup_check', 'volume_group', 'thin_pool', 'ephemeral_volatile', 'force', 'job']
HUGE = [0, 1, 511, 512, 4096, MiB, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 53,
        2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 512, 2 ** 64 - 1]
INTS = [0, 1, -1, 2, 3, 100, 2 ** 31 - 1, -2 ** 31, 2 ** 30]


def fail(msg):
    raise AssertionError(msg)


def load_methods():
    """{interface: [(method, [in arg types])]} from introspection/*.xml."""
    out = {}
    files = sorted(glob.glob(os.path.join(SRC, 'introspection', '*.xml')))
    if not files:
        fail(f'no introspection/*.xml under {SRC}')
    for path in files:
        for iface in ET.parse(path).getroot().iter('interface'):
            ms = []
            for m in iface.iter('method'):
                ms.append((m.get('name'), [(a.get('name') or '', a.get('type')) for a in m.iter('arg')
                                           if a.get('direction', 'in') == 'in']))
            out[iface.get('name')] = ms
            PROPERTIES[iface.get('name')] = [pr.get('name') for pr in iface.iter('property')]
    for iface, ms in STANDARD.items():
        out[iface] = [(m, [a if isinstance(a, tuple) else ('', a) for a in types]) for m, types in ms]
    return out


PROPERTIES = {}


def split_types(sig):
    """'a{sv}s(ii)' -> ['a{sv}', 's', '(ii)']."""
    out, i = [], 0
    while i < len(sig):
        j = i
        while sig[j] == 'a':
            j += 1
        if sig[j] in '({':
            depth, k = 0, j
            while True:
                depth += sig[k] in '({'
                depth -= sig[k] in ')}'
                k += 1
                if depth == 0:
                    break
            j = k
        else:
            j += 1
        out.append(sig[i:j])
        i = j
    return out


class Gen:
    """Random and hostile values of D-Bus types."""

    def __init__(self, rnd, world):
        self.r = rnd
        self.w = world
        self.plausible = 0.5

    def string(self):
        r, w = self.r, self.w
        k = r.randrange(20)
        if k == 0:
            return ''
        if k == 1:
            return 'x' * r.choice([256, 4096, 65536, 1 << 20])
        if k == 2:
            codes = (r.randrange(1, 0x2FFFF) for _ in range(r.randrange(1, 40)))
            return ''.join(chr(c) for c in codes if not 0xD800 <= c < 0xE000)
        if k == 3:
            return r.choice(['..', '.', '/', '//', '../../outside', 'appvms/../../outside/x', 'appvms/x/..',
                             'appvms/vm1/../../../outside/p', 'link/x', 'appvms/link/x', '/etc/passwd',
                             'vm-kernels/6.1/modules', 'appvms/vm1/private-dirty', 'appvms/vm1/private-import',
                             'appvms/vm1/private~AAAAAA', 'appvms//private', 'appvms/vm1/', 'a' * 32, '-', '-x',
                             'appvms/vm1/private.img', 'vm-templates/t/root', 'appvms/x/y/z'])
        if k == 4:
            return os.path.join(w.tmp, r.choice(['outside', 'outside/new', 'pools/link', 'pools/link/y',
                                                 'pools/new' + str(r.randrange(4)), 'state', 'base', 'pools',
                                                 'pools/f', 'base/appvms', 'pools/../outside']))
        if k == 5:
            return r.choice(['/', '/proc', '/proc/self', '/dev/null', '/nonexistent/dir', '.', ''])
        if k == 6:
            return r.choice(w.pool_names() or ['f'])
        if k == 7:
            return r.choice(w.vids or ['appvms/vm1/private'])
        if k == 8:
            return r.choice(['file', 'file-reflink', 'lvm_thin', 'linux-kernel', 'nosuch', 'FILE'])
        if k == 9:
            return r.choice(['true', 'false', 'True', '0', '1', '-1', '99999999999999999999', '1e3', ' 1', '0x10'])
        if k == 10:
            return f'appvms/{self.name()}/{self.name()}'
        if k == 11:
            return self.name()
        if k == 12:
            return r.choice(['old', '1', '0', '-1', '2026-01-01T00:00:00Z', '1@x'])
        return ''.join(r.choice('abcdefghijklmnopqrstuvwxyz0123456789-_./~@ %') for _ in range(r.randrange(1, 24)))

    def name(self):
        r = self.r
        return r.choice(['vm1', 'vm2', 'private', 'root', 'volatile', 'x', 'private-cow', 'private-dirty',
                         'private-import', 'root-import', 'a.b', 'A', '1x', 'x' * 31, 'x' * 32, '-x', 'x~y'])

    def objpath(self):
        r, w = self.r, self.w
        k = r.randrange(8)
        if k < 3 and w.volume_paths:
            return r.choice(sorted(w.volume_paths))
        if k < 5:
            return r.choice([ROOT] + [pool_path(p) for p in w.pool_names()] + sorted(w.job_paths))
        if k == 5:
            return r.choice(['/', '/org', ROOT + '/pool', ROOT + '/pool/_', ROOT + '/pool/f/volume',
                             ROOT + '/pool/f/volume/x', ROOT + '/job/1', ROOT + '/job/999999'])
        return ROOT + '/' + '/'.join(''.join(r.choice('abc_019') for _ in range(r.randrange(1, 8)))
                                     for _ in range(r.randrange(1, 4)))

    def fd(self, fds):
        """Appends an fd to fds and returns its index (or a bad index)."""
        r, w = self.r, self.w
        k = r.randrange(10)
        if k == 0:
            return r.choice([len(fds) + 3, 2 ** 31 - 1])  # never sent
        if k in (1, 2):
            a, b = os.pipe()
            if r.random() < 0.7:
                os.write(b, os.urandom(r.choice([0, 1, 4096, 65536])))
            os.close(b)
            fd = a
        elif k == 3:
            a, b = os.pipe()
            os.close(a)
            fd = b
        elif k == 4:
            fd = os.open(r.choice([w.outside, w.tmp, '/']), os.O_RDONLY | os.O_DIRECTORY)
        elif k == 5:
            fd = os.open('/dev/null', r.choice([os.O_RDONLY, os.O_RDWR]))
        elif k == 6:
            fd = os.open(w.secret, os.O_RDONLY)
        elif k == 7:
            s1, s2 = socket.socketpair()
            fd = os.dup(s1.fileno())
            s1.close()
            s2.close()
        elif k == 8:
            fd = os.memfd_create('fuzz')
            os.write(fd, os.urandom(r.choice([0, 512, 8192])))
            os.lseek(fd, 0, os.SEEK_SET)
        else:
            fd = os.open(w.secret, os.O_RDONLY)
        fds.append(fd)
        return len(fds) - 1

    def variant(self, key, depth):
        r = self.r
        k = r.randrange(12)
        if k == 0:
            return GLib.Variant('ay', bytes(r.randrange(256) for _ in range(r.randrange(0, 16))) + b'\xff\xfe')
        if k == 1 and depth < 3:
            return GLib.Variant('v', self.variant(key, depth + 1))
        if k == 2:
            return GLib.Variant('as', [self.string() for _ in range(r.randrange(3))])
        if k == 3:
            return GLib.Variant('a{sv}', {self.string(): GLib.Variant('i', 1)})
        t = r.choice('sbtuixnqdoy')
        return GLib.Variant(t, self.value(t, [], depth + 1))

    def value(self, t, fds, depth=0):
        r = self.r
        if t == 's':
            return self.string()
        if t == 'o':
            return self.objpath()
        if t == 'g':
            return r.choice(['', 's', 'a{sv}'])
        if t == 'b':
            return r.random() < 0.5
        if t == 'y':
            return r.randrange(256)
        if t in 'tx':
            v = r.choice(HUGE + [r.randrange(2 ** 64)])
            return v if t == 't' else v - 2 ** 63 if v >= 2 ** 63 else v
        if t in 'uq':
            return r.randrange(2 ** (32 if t == 'u' else 16))
        if t in 'in':
            v = r.choice(INTS + [r.randrange(-2 ** 31, 2 ** 31)])
            return max(min(v, 2 ** 15 - 1), -2 ** 15) if t == 'n' else v
        if t == 'd':
            return r.choice([0.0, -1.0, 1e308, float('inf'), float('nan')])
        if t == 'h':
            return self.fd(fds)
        if t == 'v':
            return self.variant('', depth)
        if t == 'a{sv}':
            n = r.choice([0, 0, 1, 2, 3, 5, 8, 200])
            d = {}
            for _ in range(n):
                key = r.choice(DICT_KEYS) if r.random() < 0.8 else self.string()
                d[key] = self.dict_value(key, depth)
            return d
        if t == 'a{ss}':
            n = r.choice([0, 1, 2, 3, 100])
            return {(r.choice(DICT_KEYS) if r.random() < 0.8 else self.string()): self.string() for _ in range(n)}
        if t.startswith('a'):
            n = r.choice([0, 1, 2, 5, 50, 5000]) if depth == 0 else r.randrange(3)
            return [self.value(t[1:], fds, depth + 1) for _ in range(n)]
        if t.startswith('('):
            return tuple(self.value(x, fds, depth + 1) for x in split_types(t[1:-1]))
        fail(f'no generator for D-Bus type {t!r}')

    def arg(self, iface, method, name, t, fds):
        """A value for one argument: hostile most of the time, plausible
        often enough that the calls get past argument checks."""
        r = self.r
        plausible = r.random() < self.plausible
        if plausible:
            if name == 'options':
                return {} if r.random() < 0.8 else {'auth.no_user_interaction': GLib.Variant('b', True)}
            if name == 'config' and t == 'a{sv}':
                cfg = {'name': GLib.Variant('s', self.name()), 'vm': GLib.Variant('s', self.name()),
                       'size': GLib.Variant('t', r.choice([MiB, 2 * MiB, 4 * MiB]))}
                for k, v in (('rw', 'b'), ('save_on_stop', 'b'), ('snap_on_start', 'b'), ('template', 'b')):
                    if r.random() < 0.5:
                        cfg[k] = GLib.Variant(v, r.random() < 0.5)
                if r.random() < 0.3:
                    cfg['source'] = GLib.Variant('s', r.choice(self.w.vids or ['appvms/vm1/private']))
                if r.random() < 0.2:
                    cfg['revisions_to_keep'] = GLib.Variant('i', r.choice([0, 1, 2, -1]))
                if r.random() < 0.2:
                    cfg['vid'] = GLib.Variant('s', self.string())
                return cfg
            if name == 'config' and t == 'a{ss}':
                cfg = {'dir_path': os.path.join(self.w.pools_dir, r.choice(['n1', 'n2', 'f', 'link', 'linkroot',
                                                                           'n1/../n2', 'n3/x']))}
                if r.random() < 0.3:
                    cfg['revisions_to_keep'] = r.choice(['0', '1', '3', '-1', 'x'])
                return cfg
            if name == 'driver':
                return r.choice(['file', 'file-reflink', 'linux-kernel', 'lvm_thin'])
            if method == 'AddPool' and name == 'name':
                return r.choice(['n1', 'n2', 'n3', 'f'])
            if name in ('name', 'vid') and t == 's':
                return r.choice((self.w.pool_names() if iface == MANAGER else self.w.vids) or ['x'] + ['n1', 'n2'])
            if name == 'interface_name':
                return r.choice(sorted(PROPERTIES))
            if name == 'property_name':
                return r.choice(sorted({p for ps in PROPERTIES.values() for p in ps}))
            if t == 't':
                return r.choice([0, MiB, 2 * MiB, 3 * MiB, 8 * MiB, 16 * MiB])
            if t == 'i':
                return r.choice([0, 1, 2, 3])
            if t == 'ao':
                return r.sample(sorted(self.w.volume_paths), min(len(self.w.volume_paths), r.randrange(1, 4)))
        return self.value(t, fds)

    def dict_value(self, key, depth):
        """Mostly the right type for the key, sometimes any type."""
        r = self.r
        right = storaged.VOLUME_CONFIG_TYPES.get(key) or {'auth.no_user_interaction': 'b', 'allow_shrink': 'b'}.get(
            key)
        if right and r.random() < 0.6:
            if right == 's' and key in ('vid', 'source'):
                return GLib.Variant('s', self.string() if r.random() < 0.5 else r.choice(self.w.vids or ['x']))
            if right == 't':
                return GLib.Variant('t', r.choice([MiB, 2 * MiB, 0, 1, 512, 2 ** 40, 2 ** 63, 2 ** 64 - 1]))
            return GLib.Variant(right, self.value(right, []))
        return self.variant(key, depth)


class World:
    """The service, the bus, the sandbox and what the service publishes."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='storaged-fuzz-')
        self.state = os.path.join(self.tmp, 'state')
        self.base = os.path.join(self.tmp, 'base')
        self.pools_dir = os.path.join(self.tmp, 'pools')
        self.outside = os.path.join(self.tmp, 'outside')
        self.logs = os.path.join(self.tmp, 'logs')
        for d in (self.base, self.pools_dir, self.outside, self.logs,
                  os.path.join(self.base, 'vm-kernels', '6.1')):
            os.makedirs(d, exist_ok=True)
        for f in ('vmlinuz', 'initramfs'):
            with open(os.path.join(self.base, 'vm-kernels', '6.1', f), 'wb') as fh:
                fh.write(b'kernel')
        self.secret = os.path.join(self.outside, 'secret')
        with open(self.secret, 'wb') as fh:
            fh.write(b'not a volume\n' * 100)
        os.symlink(self.outside, os.path.join(self.pools_dir, 'link'))
        os.symlink('/', os.path.join(self.pools_dir, 'linkroot'))
        self.pool_dirs = {}      # name -> dir_path of the pools that exist
        self.ever_pool_dirs = set()
        self.vids = []
        self.volume_paths = set()
        self.job_paths = set()
        self.bus_pid, self.address = dbusmock.DBusTestCase.start_dbus()
        self.bus_dead = False
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.ctx = GLib.MainContext.default()
        self.conn.signal_subscribe(None, None, None, None, None, Gio.DBusSignalFlags.NONE, self.on_signal, None)
        env = {'DBUS_SYSTEM_BUS_ADDRESS': self.address}
        env.setdefault('ASAN_OPTIONS', os.environ.get('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=1'))
        env.setdefault('UBSAN_OPTIONS', os.environ.get('UBSAN_OPTIONS', 'print_stacktrace=1:halt_on_error=1'))
        self.svc = Service(self.state, self.base, self.logs, env=env)
        self.outside_before = storaged.tree_snapshot(self.outside)

    def pool_names(self):
        return sorted(self.pool_dirs)

    def on_signal(self, conn, sender, path, iface, member, params, _):
        if member == 'InterfacesAdded':
            p, ifaces = params.unpack()
            if VOLUME in ifaces:
                self.volume_paths.add(p)
            if 'org.qubes.Storage1.Job' in ifaces:
                self.job_paths.add(p)
        elif member == 'InterfacesRemoved':
            p, _ = params.unpack()
            self.volume_paths.discard(p)
            self.job_paths.discard(p)

    def start(self):
        self.svc.launch(self.conn)

    def call(self, path, iface, method, sig, args, reply):
        v = self.conn.call_sync(BUS_NAME, path, iface, method, GLib.Variant(f'({sig})', args) if sig else None,
                                GLib.VariantType(f'({reply})'), Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
        return v.unpack()

    def refresh(self):
        """Learns the pools (and their dirs) and volumes; makes the fixture
        pool and volumes again when the fuzz removed them."""
        pools = self.call(ROOT, MANAGER, 'ListPools', '', (), 'a(so)')[0]
        self.pool_dirs = {}
        self.volume_paths = set()
        for name, p in pools:
            cfg = self.call(p, 'org.freedesktop.DBus.Properties', 'Get', 'ss', (POOL, 'Config'), 'v')[0]
            self.pool_dirs[name] = cfg.get('dir_path')
            if cfg.get('dir_path'):
                self.ever_pool_dirs.add(os.path.realpath(cfg['dir_path']))
            for vid, vp in self.call(p, POOL, 'ListVolumes', '', (), 'a(so)')[0]:
                self.volume_paths.add(vp)
                if vid not in self.vids:
                    self.vids.append(vid)
        if 'f' not in self.pool_dirs:
            try:
                self.call(ROOT, MANAGER, 'AddPool', 'ssa{ss}a{sv}',
                          ('f', 'file', {'dir_path': os.path.join(self.pools_dir, 'f')}, {}), 'o')
            except GLib.Error:
                return
            self.pool_dirs['f'] = os.path.join(self.pools_dir, 'f')
            self.ever_pool_dirs.add(os.path.realpath(self.pool_dirs['f']))
        for vm, name, kw in (('vm1', 'private', {'save_on_stop': True}), ('vm1', 'volatile', {}),
                             ('vm2', 'root', {'snap_on_start': True, 'source': 'appvms/vm1/private'})):
            cfg = storaged.vconf(name=name, vm=vm, size=MiB, rw=True, **kw)
            try:
                vp = self.call(pool_path('f'), POOL, 'CreateVolume', 'a{sv}a{sv}', (cfg, {}), 'o')[0]
                self.volume_paths.add(vp)
            except GLib.Error:
                pass
        for vid in ('appvms/vm1/private', 'appvms/vm1/volatile', 'appvms/vm2/root'):
            if vid not in self.vids:
                self.vids.append(vid)

    def check_alive(self):
        if not self.svc.running():
            fail(f'the service died (status {self.svc.proc.returncode}):\n' + self.svc.output()[-6000:])
        out = self.svc.output()
        marker = storaged.sanitizer_report(out)
        if marker:
            fail(f'sanitizer report ({marker}) in the service output:\n' + out[-6000:])

    def stray_files(self):
        """Files and dirs under the sandbox that no pool dir or the state dir holds."""
        allowed = [os.path.realpath(d) for d in self.ever_pool_dirs] + [self.state, self.base]
        out = []
        for dirpath, dirnames, filenames in os.walk(self.tmp):
            if dirpath == self.tmp:
                dirnames[:] = [d for d in dirnames if d not in ('logs',)]
            real = os.path.realpath(dirpath)
            if any(real == a or real.startswith(a + os.sep) for a in allowed):
                dirnames[:] = []
                continue
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                rp = os.path.realpath(p)
                # a pool directory, what it holds, or a parent made for it
                if any(rp == a or rp.startswith(a + os.sep) or a.startswith(rp + os.sep) for a in allowed) \
                        or os.path.islink(p):
                    continue
                if dirpath == self.tmp and n in ('outside', 'pools', 'logs'):
                    continue
                if dirpath == self.pools_dir and n in ('link', 'linkroot'):
                    continue
                if real == self.outside and n == 'secret':
                    continue
                out.append(os.path.relpath(p, self.tmp))
        return sorted(out)

    def close(self, keep):
        try:
            if self.svc.proc is not None:
                self.svc.stop()
        finally:
            if not self.bus_dead:
                self.conn.close_sync(None)
                dbusmock.DBusTestCase.stop_dbus(self.bus_pid)
            if keep:
                print(f'sandbox kept: {self.tmp}')
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)


NAMED_PREFIXES = ('org.qubes.Storage1.Error.', 'org.freedesktop.DBus.Error.')


def classify(err):
    """'ok', an error name, or None when the error is no named D-Bus error."""
    if err is None:
        return 'ok'
    if Gio.DBusError.is_remote_error(err):
        name = Gio.DBusError.get_remote_error(err)
        if name.startswith(NAMED_PREFIXES):
            return name
        return None
    return None


def run(args):
    rnd = random.Random(args.seed)
    methods = load_methods()
    world = World(args)
    gen = Gen(rnd, world)
    table = collections.defaultdict(collections.Counter)
    failures = []
    samples = collections.defaultdict(list)
    t0 = time.monotonic()
    keep = False
    try:
        world.start()
        world.refresh()
        targets = [(i, m, a) for i, ms in sorted(methods.items()) for m, a in ms]
        state = {'inflight': 0, 'sent': 0, 'answered': 0}
        pending = {}  # call number -> (sent at, method, path)

        def wait_answer():
            """Run the loop once; a call GDBus neither answered nor timed out
            well past CALL_TIMEOUT_MS is a failure named by its method."""
            iterate(world.ctx)
            now = time.monotonic()
            stuck = [(k, p) for t, k, p in pending.values() if now - t > 2 * CALL_TIMEOUT_MS / 1000]
            if stuck:
                fail(f'{len(stuck)} calls neither answered nor timed out after {2 * CALL_TIMEOUT_MS // 1000} s, '
                     f'such as {stuck[:5]}')

        def path_for(iface):
            k = rnd.random()
            if k < 0.1:
                return gen.objpath()
            if iface == MANAGER or iface.startswith('org.freedesktop.DBus.') and k < 0.3:
                return ROOT
            if iface == POOL or (iface.startswith('org.freedesktop.DBus.') and k < 0.5):
                return rnd.choice([pool_path(p) for p in world.pool_names()] or [ROOT])
            if iface == 'org.qubes.Storage1.Job':
                return rnd.choice(sorted(world.job_paths) or [ROOT + '/job/1'])
            return rnd.choice(sorted(world.volume_paths) or [ROOT])

        def send(n):
            iface, method, margs = rnd.choice(targets)
            types = [t for _, t in margs]
            gen.plausible = 0.9 if rnd.random() < 0.5 else 0.2
            path = path_for(iface)
            fds = []
            try:
                vals = tuple(gen.arg(iface, method, name, t, fds) for name, t in margs)
                params = GLib.Variant('(' + ''.join(types) + ')', vals) if types else None
            except (TypeError, OverflowError, ValueError) as e:
                for fd in fds:
                    os.close(fd)
                table[f'{iface.rsplit(".", 1)[1]}.{method}']['(not encodable)'] += 1
                if args.verbose:
                    print(f'not encodable: {method} {types}: {e}')
                return
            fdlist = Gio.UnixFDList.new()
            for fd in fds:
                fdlist.append(fd)
                os.close(fd)
            key = f'{iface.rsplit(".", 1)[1]}.{method}'
            state['inflight'] += 1
            state['sent'] += 1
            cid = state['sent']
            pending[cid] = (time.monotonic(), key, path)

            def done(conn, res, _, cid=cid):
                pending.pop(cid, None)
                state['inflight'] -= 1
                state['answered'] += 1
                err = None
                try:
                    _, out = conn.call_with_unix_fd_list_finish(res)
                    for fd in (out.steal_fds() if out is not None else []):
                        os.close(fd)
                except GLib.Error as e:
                    err = e
                if err is None and method == 'AddPool' and isinstance(vals[2], dict) and vals[2].get('dir_path'):
                    # a pool that may be gone before the next refresh
                    world.ever_pool_dirs.add(os.path.realpath(vals[2]['dir_path']))
                c = classify(err)
                if c is None:
                    table[key]['FAIL'] += 1
                    failures.append(f'{key} on {path}: not answered with a named error: {err.message}')
                elif c == 'org.freedesktop.DBus.Error.NoReply':
                    table[key]['FAIL'] += 1
                    failures.append(f'{key} on {path}: no reply ({err.message})')
                else:
                    if args.verbose and err is not None:
                        samples[key].append(f'{path}: {err.message[:160]}')
                    table[key][c.replace('org.qubes.Storage1.Error.', '').replace('org.freedesktop.DBus.Error.',
                                                                                  'DBus.')] += 1
            world.conn.call_with_unix_fd_list(BUS_NAME, path, iface, method, params, None, Gio.DBusCallFlags.NONE,
                                              CALL_TIMEOUT_MS, fdlist, None, done, None)

        n = 0
        while n < args.calls or state['inflight']:
            while n < args.calls and state['inflight'] < IN_FLIGHT:
                send(n)
                n += 1
                if n % 100 == 0:
                    while state['inflight']:
                        wait_answer()
                    world.check_alive()
                    world.refresh()
                    if args.verbose and n % 1000 == 0:
                        print(f'{n} calls, {time.monotonic() - t0:.0f} s', flush=True)
            wait_answer()
            if failures and not args.keep_going:
                break
        world.check_alive()
        world.refresh()
        stray = world.stray_files()
        if stray:
            failures.append(f'files created outside the pools and the state dir: {stray[:20]}')
        after = storaged.tree_snapshot(world.outside)
        if after != world.outside_before:
            failures.append('the directory outside every pool changed:\n'
                            + storaged.snapshot_diff(world.outside_before, after))
        try:
            # SIGTERM with calls in flight: each is still answered, and the
            # exit frees what they hold
            for _ in range(args.exit_burst):
                send(n)
            world.conn.flush_sync(None)
            time.sleep(0.05)
            proc = world.svc.proc
            if args.verbose:
                print(f'SIGTERM with {state["inflight"]} calls in flight at {time.monotonic() - t0:.1f} s', flush=True)
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + storaged.STOP_TIMEOUT_S
            while state['inflight'] and time.monotonic() < deadline:
                iterate(world.ctx, proc.poll() is None)
                if proc.poll() is not None:
                    world.ctx.iteration(False)
            rc = world.svc.stop()
            if args.verbose:
                print(f'exited {rc} at {time.monotonic() - t0:.1f} s', flush=True)
            out = world.svc.output()
            marker = storaged.sanitizer_report(out)
            if marker:
                failures.append(f'sanitizer report ({marker}) in the service output at exit:\n' + out[-8000:])
            if rc != 0:
                failures.append(f'the service exited with status {rc} after SIGTERM:\n' + out[-4000:])
            if args.bus_loss and not failures:
                failures.extend(bus_loss(world, args))
        except AssertionError as e:
            failures.append(str(e))
    except AssertionError as e:
        failures.append(str(e))
        keep = args.keep
    finally:
        world.close(keep)
    for key in sorted(samples):
        for line in samples[key][:4]:
            print(f'  {key}: {line}')
    print_table(table)
    total = sum(sum(c.values()) for c in table.values())
    print(f'\n{total} calls (seed {args.seed}) in {time.monotonic() - t0:.0f} s, {len(failures)} failures')
    for f in failures[:50]:
        print('FAILED: ' + f)
    return 1 if failures else 0


def bus_loss(world, args):
    """The bus dies under the service while calls run (two Imports from pipes
    nobody writes among them): it must exit with a failure status, and free
    what those calls held (no LeakSanitizer report)."""
    world.start()
    world.refresh()
    silent = []
    for i in range(2):
        cfg = storaged.vconf(name='private', vm=f'busloss{i}', size=MiB, rw=True, save_on_stop=True)
        vp = world.call(pool_path('f'), POOL, 'CreateVolume', 'a{sv}a{sv}', (cfg, {}), 'o')[0]
        r, w = os.pipe()
        silent.append(w)
        fdlist = Gio.UnixFDList.new()
        fdlist.append(r)
        os.close(r)
        world.conn.call_with_unix_fd_list(BUS_NAME, vp, VOLUME, 'Import', GLib.Variant('(hta{sv})', (0, MiB, {})),
                                          None, Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, fdlist, None, None, None)
    # and short calls (their replies are lost with the bus: not counted)
    for vp in sorted(world.volume_paths):
        for method, sig, a in (('Start', 'a{sv}', ({},)), ('Verify', 'a{sv}', ({},)), ('Stop', 'a{sv}', ({},))):
            world.conn.call(BUS_NAME, vp, VOLUME, method, GLib.Variant(f'({sig})', a), None, Gio.DBusCallFlags.NONE,
                            CALL_TIMEOUT_MS, None, None, None)
        world.conn.call(BUS_NAME, ROOT, MANAGER, 'StartVolumes', GLib.Variant('(aoa{sv})', ([vp], {})), None,
                        Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None, None, None)
    for p in world.pool_names():
        world.conn.call(BUS_NAME, pool_path(p), POOL, 'RefreshUsage', GLib.Variant('(a{sv})', ({},)), None,
                        Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None, None, None)
    world.conn.flush_sync(None)
    time.sleep(0.3)
    t_kill = time.monotonic()
    os.kill(world.bus_pid, signal.SIGKILL)
    world.bus_dead = True
    try:
        rc = world.svc.reap(storaged.STOP_TIMEOUT_S)
    except storaged.ServiceError:
        return ['the service still runs after losing its bus connection']
    finally:
        for w in silent:
            os.close(w)
    out = world.svc.output()
    if args.verbose:
        print(f'bus killed: the service exited {rc} after {time.monotonic() - t_kill:.1f} s', flush=True)
    problems = []
    if rc <= 0:
        problems.append(f'after losing the bus the service exited with status {rc}, not a failure status')
    marker = storaged.sanitizer_report(out)
    if marker:
        problems.append(f'sanitizer report ({marker}) at the exit after the bus was lost:\n' + out[-8000:])
    return problems


def print_table(table):
    cols = collections.Counter()
    for c in table.values():
        cols.update(c)
    order = ['ok'] + sorted(k for k in cols if k not in ('ok', 'FAIL')) + (['FAIL'] if 'FAIL' in cols else [])
    w = max([len(k) for k in table] + [8])
    short = {k: k[:14] for k in order}
    print('\n' + 'method'.ljust(w) + ''.join(short[k].rjust(15) for k in order) + 'total'.rjust(8))
    for row in sorted(table):
        c = table[row]
        print(row.ljust(w) + ''.join(str(c.get(k, 0)).rjust(15) for k in order) + str(sum(c.values())).rjust(8))
    print('all'.ljust(w) + ''.join(str(cols.get(k, 0)).rjust(15) for k in order) + str(sum(cols.values())).rjust(8))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--full', action='store_true', help='a campaign of --calls calls (default 20000)')
    ap.add_argument('--seed', type=int, default=9)
    ap.add_argument('--calls', type=int, default=None)
    ap.add_argument('--exit-burst', type=int, default=40, help='calls in flight when SIGTERM comes at the end')
    ap.add_argument('--no-bus-loss', dest='bus_loss', action='store_false',
                    help='skip the last phase (the bus killed under the service with calls running)')
    ap.add_argument('--keep-going', action='store_true', help='do not stop at the first failure')
    ap.add_argument('--keep', action='store_true', help='keep the sandbox of a failed run')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()
    if args.calls is None:
        args.calls = 20000 if args.full else 3000
    if args.full:
        args.keep_going = True
    if os.geteuid() != 0:
        fail('the fuzz runs as root (every call authorized, so that every code path is reached)')
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
