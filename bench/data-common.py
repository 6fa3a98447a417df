"""Shared pieces of bench/import and bench/responsiveness (loaded by path:
the name has a dash so that it is not mistaken for a bench).

A private dbus-daemon, one service instance with a temporary state and base
directory, loop-mounted filesystems made from sparse image files (a loop device
from `losetup -f --show`, never a fixed /dev/loopN), Volume.Import with fd
passing through Gio, and a cleanup that undoes everything (also on SIGINT or
SIGTERM).
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from support.names import path_encode, pool_path, volume_path  # noqa: E402,F401
from support import loopfs  # noqa: E402
from support.bus import PERMISSIVE_POLICY, Bus  # noqa: E402
from support.service import Service, ServiceError  # noqa: E402

NAME = "org.qubes.Storage1"
ROOT_PATH = "/org/qubes/Storage1"
MANAGER = "org.qubes.Storage1.Manager"
POOL = "org.qubes.Storage1.Pool"
VOLUME = "org.qubes.Storage1.Volume"
PROPERTIES = "org.freedesktop.DBus.Properties"
MiB = 1 << 20
GiB = 1 << 30
LONG_MS = 3600 * 1000


class BenchError(Exception):
    pass


def run(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.decode(errors='replace').strip()}")
    return p.stdout.decode(errors="replace")


def allocated(path):
    return os.stat(path).st_blocks * 512


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values):
    return statistics.median(values)


def fmt_bytes(n):
    return f"{n / MiB:,.1f} MiB"


class LoopFs(loopfs.LoopFs):
    """A btrfs or XFS of support.loopfs: its failures are BenchErrors, a failed
    cleanup a warning."""

    MKFS = {k: loopfs.LoopFs.MKFS[k] for k in ("btrfs", "xfs")}

    def __init__(self, fstype, size, workdir):
        super().__init__(fstype, workdir, size)

    def setup(self):
        try:
            return self.make()
        except loopfs.LoopFsError as e:
            raise BenchError(str(e)) from None

    def cleanup(self):
        try:
            super().cleanup()
        except loopfs.LoopFsError as e:
            print(f"warning: {e}", file=sys.stderr)


class Env:
    """The private bus, the service and everything to clean up."""

    def __init__(self, prog, binary=None, keep=False):
        self.prog = prog
        self.binary = binary or os.environ.get("QUBES_STORAGED") or os.path.join(ROOT, "build", "qubes-storaged")
        if not os.access(self.binary, os.X_OK):
            raise BenchError(f"service binary {self.binary} is missing (build it: ninja -C build)")
        if os.geteuid() != 0:
            raise BenchError("run as root (loop devices and mounts)")
        self.tmp = tempfile.mkdtemp(prefix=f"storaged-{os.path.basename(prog)}-")
        self.keep = keep
        self.filesystems = []
        self.bus = None
        self.service = None
        self.conn = None
        self.children = []
        self._old_handlers = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[s] = signal.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def log(self, msg):
        print(f"{self.prog}: {msg}", file=sys.stderr, flush=True)

    def loop_fs(self, fstype, size):
        fs = LoopFs(fstype, size, self.tmp)
        self.filesystems.append(fs)
        return fs.setup()

    # ---- bus and service ----
    def start(self, service_env=None):
        try:
            self.bus = Bus(self.tmp, PERMISSIVE_POLICY)
            self.address = self.bus.address
            self.conn = self.connect()
            state, base = os.path.join(self.tmp, "state"), os.path.join(self.tmp, "base")
            os.makedirs(state)
            os.makedirs(base)
            self.service = Service(state, base, self.tmp, binary=self.binary, log_name="service.log",
                                   env=dict(DBUS_SYSTEM_BUS_ADDRESS=self.address, **(service_env or {})))
            self.service.launch(self.conn, timeout=30)
        except AssertionError as e:  # support.bus and support.service fail so
            raise BenchError(str(e)) from None

    @property
    def proc(self):
        return self.service.proc if self.service is not None else None

    def service_output(self):
        return self.service.output() if self.service is not None else ""

    def connect(self):
        return Gio.DBusConnection.new_for_address_sync(
            self.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)

    def call(self, path, iface, method, sig=None, args=(), reply=None, conn=None):
        params = GLib.Variant(f"({sig})", tuple(args)) if sig else None
        try:
            v = (conn or self.conn).call_sync(NAME, path, iface, method, params,
                                              GLib.VariantType(f"({reply})") if reply is not None else None,
                                              Gio.DBusCallFlags.NONE, LONG_MS, None)
        except GLib.Error as e:
            raise BenchError(f"{method} on {path}: {e.message}") from None
        return v.unpack() if v is not None else ()

    def add_pool(self, name, driver, dir_path, revisions_to_keep=0):
        return self.call(ROOT_PATH, MANAGER, "AddPool", "ssa{ss}a{sv}",
                         (name, driver, {"dir_path": dir_path, "revisions_to_keep": str(revisions_to_keep)}, {}),
                         "o")[0]

    def create_origin(self, pool, vm, size):
        cfg = {"name": GLib.Variant("s", "private"), "vm": GLib.Variant("s", vm), "size": GLib.Variant("t", size),
               "rw": GLib.Variant("b", True), "save_on_stop": GLib.Variant("b", True)}
        return self.call(pool_path(pool), POOL, "CreateVolume", "a{sv}a{sv}", (cfg, {}), "o")[0]

    def get_usage(self, pool, conn=None):
        return self.call(pool_path(pool), PROPERTIES, "Get", "ss", (POOL, "Usage"), "v", conn=conn)[0]

    def import_async(self, vpath, fd, size, done):
        """Volume.Import(fd, size) without waiting; done(error or None, t)."""
        fdl = Gio.UnixFDList.new()
        fdl.append(fd)

        def cb(conn, res, _):
            try:
                conn.call_with_unix_fd_list_finish(res)
                done(None, time.perf_counter())
            except GLib.Error as e:
                done(e.message, time.perf_counter())
        self.conn.call_with_unix_fd_list(NAME, vpath, VOLUME, "Import", GLib.Variant("(hta{sv})", (0, size, {})),
                                         GLib.VariantType("()"), Gio.DBusCallFlags.NONE, LONG_MS, fdl, None, cb, None)

    def import_sync(self, vpath, fd, size):
        fdl = Gio.UnixFDList.new()
        fdl.append(fd)
        try:
            self.conn.call_with_unix_fd_list_sync(NAME, vpath, VOLUME, "Import",
                                                  GLib.Variant("(hta{sv})", (0, size, {})), GLib.VariantType("()"),
                                                  Gio.DBusCallFlags.NONE, LONG_MS, fdl, None)
        except GLib.Error as e:
            raise BenchError(f"Import into {vpath}: {e.message}") from None

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.children.append(p)
        return p

    # ---- cleanup ----
    def cleanup(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
            p.wait()
        if self.service is not None:
            try:
                self.service.stop(60)
            except ServiceError as e:
                print(f"warning: {e}", file=sys.stderr)
        if self.conn is not None:
            try:
                self.conn.close_sync(None)
            except GLib.Error:
                pass
            self.conn = None
        if self.bus is not None:
            self.bus.stop()
            self.bus = None
        for fs in reversed(self.filesystems):
            fs.cleanup()
        self.filesystems = []
        if self.keep:
            self.log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        for s, h in self._old_handlers.items():
            signal.signal(s, h)


def run_bench(prog, body, args):
    """Runs body(env) with cleanup; exit 0 unless the setup or a call fails."""
    env = None
    try:
        env = Env(prog, args.binary, args.keep)
        body(env)
        return 0
    except BenchError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        if env is not None and env.proc is not None:
            out = env.service_output()
            if out:
                print(f"{prog}: service output:\n{out}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"{prog}: interrupted ({e})", file=sys.stderr)
        return 130
    finally:
        if env is not None:
            env.cleanup()
