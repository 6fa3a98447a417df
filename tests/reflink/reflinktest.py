"""Helpers for the file-reflink tests of qubes-storaged on real filesystems.

The tests talk to the built service over a private system bus (the
StoragedTestCase of tests/dbus/storaged.py) and look at the images on
filesystems they make themselves: btrfs and XFS (reflink=1) on loop devices
for the reflink path, tmpfs and ext4 (loop) for the copy fallback.

Nothing here skips. A missing tool, no root, no loop device: the test fails
and says why.
"""

import collections
import datetime
import fcntl
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'dbus'))

import storaged  # noqa: E402
from storaged import (BUS_NAME, GLib, Gio, MiB, GiB, StoragedTestCase, DBusCallError, opts,  # noqa: E402,F401
                      pool_path, volume_path, vconf, VOLUME, POOL, ROOT, MANAGER, CALL_TIMEOUT_MS)
from support.loopfs import LoopFs as Filesystem  # noqa: E402  (storaged put tests/ on sys.path)

__all__ = ['BUS_NAME', 'GLib', 'Gio', 'MiB', 'GiB', 'KiB', 'StoragedTestCase', 'DBusCallError', 'opts', 'pool_path',
           'volume_path', 'vconf', 'VOLUME', 'POOL', 'ROOT', 'MANAGER', 'CALL_TIMEOUT_MS', 'storaged',
           'NO_REFLINK_MSG', 'REV_FILE_RE', 'Filesystem', 'fiemap', 'block_map', 'content_digest', 'write_chunks',
           'random_chunks', 'allocated', 'temp_files', 'list_files', 'ReflinkTestCase', 'main']

KiB = 1 << 10
BLOCK = 4096

SBIN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'
TOOLS = ('truncate', 'mkfs.btrfs', 'mkfs.xfs', 'mkfs.ext4', 'mount', 'umount', 'losetup', 'findmnt')

# The message of a failing setup check (the reference's wording, kept for clients), without the dir.
NO_REFLINK_MSG = ("The filesystem for '{dir}' does not support reflinks. If you can live with VM startup delays "
                  "and wasted disk space, pass the \"setup_check=False\" option.")

REV_FILE_RE = re.compile(r'^(?P<name>.+)\.img\.(?P<n>[0-9]+)@(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:'
                         r'[0-9]{2})Z$')
ISO_Z_RE = re.compile(r'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$')


def fail(msg):
    raise AssertionError(msg)


def run(argv, what=None, check=True, **kw):
    env = dict(os.environ)
    env['PATH'] = SBIN_PATH + ':' + env.get('PATH', '')
    env['LC_ALL'] = 'C'
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)
    if check and p.returncode != 0:
        fail(f'{what or argv[0]} failed (exit {p.returncode}): {" ".join(argv)}\n'
             f'stdout: {p.stdout.decode(errors="replace")}\nstderr: {p.stderr.decode(errors="replace")}')
    return p


def require_environment():
    """Root, the tools and the kernel pieces every test here needs."""
    if os.geteuid() != 0:
        fail('the reflink tests must run as root: they make loop-mounted btrfs, XFS and ext4 filesystems')
    missing = [t for t in TOOLS if not shutil.which(t, path=SBIN_PATH)]
    if missing:
        fail(f'tools missing for the reflink tests: {", ".join(missing)} '
             f'(apt-get install btrfs-progs xfsprogs e2fsprogs util-linux mount)')
    if not os.path.exists('/dev/loop-control'):
        fail('/dev/loop-control is missing: the kernel has no loop device support (modprobe loop)')


# ---- FIEMAP ------------------------------------------------------------------

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DELALLOC = 0x4
FIEMAP_EXTENT_UNWRITTEN = 0x800
FIEMAP_EXTENT_SHARED = 0x2000
_FIEMAP_HDR = struct.Struct('=QQIIII')
_FIEMAP_EXT = struct.Struct('=QQQQQIIII')

Extent = collections.namedtuple('Extent', 'logical physical length flags')


def fiemap(path):
    """The file's extents (FS_IOC_FIEMAP with FIEMAP_FLAG_SYNC)."""
    out = []
    start = 0
    count = 512
    with open(path, 'rb') as f:
        while True:
            buf = bytearray(_FIEMAP_HDR.pack(start, (1 << 64) - 1 - start, FIEMAP_FLAG_SYNC, 0, count, 0))
            buf += bytes(_FIEMAP_EXT.size * count)
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf, True)
            mapped = _FIEMAP_HDR.unpack_from(buf, 0)[3]
            last = False
            for i in range(mapped):
                lo, ph, ln, _, _, fl, _, _, _ = _FIEMAP_EXT.unpack_from(buf, _FIEMAP_HDR.size + i * _FIEMAP_EXT.size)
                out.append(Extent(lo, ph, ln, fl))
                last = bool(fl & FIEMAP_EXTENT_LAST)
            if mapped == 0 or last:
                return out
            start = out[-1].logical + out[-1].length


def data_extents(path):
    return [e for e in fiemap(path) if not e.flags & FIEMAP_EXTENT_UNWRITTEN]


def block_map(path):
    """logical 4 KiB block → (physical block, shared) of every written block."""
    m = {}
    for e in data_extents(path):
        if e.flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC):
            fail(f'{path}: extent {e} has no known physical location after FIEMAP_FLAG_SYNC')
        shared = bool(e.flags & FIEMAP_EXTENT_SHARED)
        for off in range(0, e.length, BLOCK):
            m[(e.logical + off) // BLOCK] = ((e.physical + off) // BLOCK, shared)
    return m


def describe_extents(path, limit=12):
    ex = fiemap(path)
    lines = [f'    logical {e.logical:#x} physical {e.physical:#x} length {e.length:#x} flags {e.flags:#x}'
             for e in ex[:limit]]
    if len(ex) > limit:
        lines.append(f'    ... {len(ex) - limit} more')
    return f'  {path}: {len(ex)} extents\n' + '\n'.join(lines)


# ---- file content ------------------------------------------------------------

def content_digest(path):
    """A digest of what the file reads as (size and every non-zero 4 KiB block
    with its offset), computed over the data regions only, so that a hole and
    written zeros compare equal and a sparse 1 GiB image is hashed quickly."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        h.update(b'size %d\n' % size)
        zero = bytes(BLOCK)
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            off = data - data % BLOCK
            while off < min(hole, size):
                chunk = os.pread(fd, min(MiB, hole - off), off)
                if not chunk:
                    break
                for i in range(0, len(chunk), BLOCK):
                    b = chunk[i:i + BLOCK]
                    if b != zero[:len(b)]:
                        h.update(b'%d:' % (off + i))
                        h.update(b)
                off += len(chunk)
            pos = max(hole, off)
    return h.hexdigest()


def write_chunks(path, chunks):
    """Writes (offset, bytes) pairs into an existing image (as a VM would)
    and flushes them."""
    with open(path, 'r+b') as f:
        for off, data in chunks:
            os.pwrite(f.fileno(), data, off)
        os.fsync(f.fileno())


def random_chunks(seed, offsets, length=MiB):
    """Deterministic pseudo-random data for each offset."""
    out = []
    for i, off in enumerate(offsets):
        block = hashlib.sha256(f'{seed}:{i}'.encode()).digest()
        out.append((off, (block * (length // len(block) + 1))[:length]))
    return out


def allocated(path):
    return os.stat(path).st_blocks * 512


def temp_files(directory):
    """Files of the atomic helpers (<name>~XXXXXX) anywhere under directory."""
    out = []
    for dirpath, _, files in os.walk(directory):
        out.extend(os.path.join(dirpath, f) for f in files if '~' in f)
    return sorted(out)


def list_files(directory):
    out = []
    for dirpath, _, files in os.walk(directory):
        out.extend(os.path.relpath(os.path.join(dirpath, f), directory) for f in files)
    return sorted(out)


def proc_sleeping_threads(pid):
    """Threads of pid that sit in nanosleep/clock_nanosleep (x86_64 35/230,
    aarch64 101/115): where a test-seam pause holds a worker."""
    sleeping = {'x86_64': {'35', '230'}, 'aarch64': {'101', '115'}}.get(os.uname().machine, {'35', '230'})
    out = []
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/syscall') as f:
                nr = f.read().split()[0]
        except (OSError, IndexError):
            continue
        if nr in sleeping:
            out.append(tid)
    return out


class ReflinkTestCase(StoragedTestCase):
    """A StoragedTestCase with filesystems, reflink pools and volumes."""

    @classmethod
    def setUpClass(cls):
        require_environment()
        super().setUpClass()

    # ---- filesystems ---------------------------------------------------------

    def mount(self, kind, size=2 * GiB, name=None):
        """Makes and mounts a filesystem for this test; unmounted and detached
        at the end of the test (after the service has stopped)."""
        fs = Filesystem(kind, self.tmp, size, name)
        self.addCleanup(fs.cleanup)
        fs.make()
        return fs.mountpoint

    def snapshot_all(self):
        """As StoragedTestCase's, without the filesystem image files (their
        blocks change whenever the filesystem commits)."""
        images = tuple(f for f in os.listdir(self.tmp) if f.startswith('fs-') and f.endswith('.img'))
        return {'tree': storaged.tree_snapshot(self.tmp, exclude=('logs',) + images)}

    # ---- service -------------------------------------------------------------

    def restart_with_env(self, **env):
        """Restarts the service with these environment changes (None removes)."""
        self.stop_service()
        for k, v in env.items():
            if v is None:
                self.service.env.pop(k, None)
            else:
                self.service.env[k] = str(v)
        self.start_service()

    def kill_service(self):
        """SIGKILL, as a crash: no clean-up in the service."""
        self.assertIsNotNone(self.service.proc, 'service is not running')
        self.service.kill(signal.SIGKILL, 60)
        storaged.wait_released(self.bus, BUS_NAME, 60)

    def wait_paused(self, what, cond=None, timeout=60):
        """Waits until a worker of the service sleeps at a test-seam pause (and
        cond() holds, when given)."""
        pid = self.service.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if self.service.proc.poll() is not None:
                fail(f'service exited while waiting for {what}:\n{self.service.output()}')
            if proc_sleeping_threads(pid) and (cond is None or cond()):
                return
            if time.monotonic() > deadline:
                fail(f'timed out after {timeout}s waiting for the service to pause at {what}; output:\n'
                     f'{self.service.output()}')
            time.sleep(0.05)

    # ---- pools and volumes ---------------------------------------------------

    def add_reflink_pool(self, name, dir_path, revisions_to_keep=None, setup_check=None):
        config = {'dir_path': dir_path}
        if revisions_to_keep is not None:
            config['revisions_to_keep'] = str(revisions_to_keep)
        if setup_check is not None:
            config['setup_check'] = setup_check
        return self.add_pool(name, 'file-reflink', config)

    def origin(self, pool, vm, name, size=GiB, template=False, revisions_to_keep=None, rw=True):
        cfg = dict(name=name, vm=vm, size=size, rw=rw, save_on_stop=True)
        if template:
            cfg['template'] = True
        if revisions_to_keep is not None:
            cfg['revisions_to_keep'] = revisions_to_keep
        return self.create_volume(pool, cfg)

    def snapshot(self, pool, vm, name, source, size=GiB, rw=True):
        return self.create_volume(pool, dict(name=name, vm=vm, size=size, rw=rw, snap_on_start=True, source=source))

    def volatile(self, pool, vm, name='volatile', size=GiB, rw=True):
        return self.create_volume(pool, dict(name=name, vm=vm, size=size, rw=rw))

    @staticmethod
    def files(pool_dir, vid):
        """The image paths of a vid in a pool directory."""
        base = os.path.join(pool_dir, vid)
        return collections.namedtuple('Files', 'base clean dirty imp dir name')(
            base, base + '.img', base + '-dirty.img', base + '-import.img', os.path.dirname(base),
            os.path.basename(base))

    @staticmethod
    def revision_files(pool_dir, vid):
        """{id: (path, timestamp)} of the revision files of vid, by the layout
        <name>.img.<N>@<ISO>Z."""
        base = os.path.join(pool_dir, vid)
        d, name = os.path.dirname(base), os.path.basename(base)
        out = {}
        if not os.path.isdir(d):
            return out
        for f in os.listdir(d):
            m = REV_FILE_RE.match(f)
            if m and m.group('name') == name:
                out[m.group('n')] = (os.path.join(d, f), m.group('ts') + 'Z')
        return out

    def assertRevisionsMatchFiles(self, vpath, pool_dir, vid):
        """Revisions property == the revision files on disk, oldest first."""
        revs = self.vprop(vpath, 'Revisions')
        files = self.revision_files(pool_dir, vid)
        expect = sorted(((n, ts) for n, (_, ts) in files.items()), key=lambda r: int(r[0]))
        self.assertEqual([tuple(r) for r in revs], expect,
                         f'Revisions of {vid} do not match the revision files {sorted(files)}')
        for _, ts in revs:
            self.assertRegex(ts, ISO_Z_RE, f'revision timestamp of {vid} is not ISO-8601 UTC')
        return [tuple(r) for r in revs]

    def assertShares(self, a, b, what=''):
        """Every written block of a is shared (FIEMAP_EXTENT_SHARED) and is the
        very same physical block as the block at the same offset of b."""
        ma, mb = block_map(a), block_map(b)
        if not ma:
            self.fail(f'{what}: {a} has no data extents to share\n{describe_extents(a)}')
        not_shared = [k for k, (_, s) in ma.items() if not s]
        different = [k for k, (p, _) in ma.items() if mb.get(k, (None,))[0] != p]
        if not_shared or different:
            self.fail(f'{what}: {a} does not share its extents with {b}: {len(not_shared)} of {len(ma)} blocks '
                      f'not flagged shared, {len(different)} blocks at other physical places\n'
                      f'{describe_extents(a)}\n{describe_extents(b)}')

    def assertNotShared(self, a, b, what=''):
        """No written block of a is at the same physical place as in b."""
        ma, mb = block_map(a), block_map(b)
        physical_b = {p for p, _ in mb.values()}
        same = [k for k, (p, _) in ma.items() if p in physical_b]
        if same:
            self.fail(f'{what}: {a} shares {len(same)} blocks with {b}\n{describe_extents(a)}\n'
                      f'{describe_extents(b)}')

    def assertNoTempFiles(self, directory, what=''):
        left = temp_files(directory)
        self.assertEqual(left, [], f'{what}: temp files left behind')

    def assertSparse(self, path, data_bytes, what=''):
        """path allocates at most the data written (plus 1 MiB of metadata
        slack): the holes stayed holes."""
        alloc = allocated(path)
        self.assertLessEqual(alloc, data_bytes + MiB,
                             f'{what}: {path} allocates {alloc} bytes for {data_bytes} bytes of data: '
                             f'holes were filled')

    def wait_prop(self, vpath, name, value, refresh_pool=None, timeout=30):
        """Waits until a volume property has value (asking the pool to
        re-read its storage first, when given)."""
        if refresh_pool:
            self.refresh_usage(refresh_pool)
        state = {}

        def cond():
            state['v'] = self.vprop(vpath, name)
            return state['v'] == value
        try:
            self.wait_until(cond, f'{name} of {vpath} == {value!r}', timeout=timeout)
        except AssertionError:
            self.fail(f'{name} of {vpath} is {state.get("v")!r}, expected {value!r}')

    def call_fds(self, path, iface, method, sig, args, reply, fds=()):
        """A call passing fds (a Gio.UnixFDList) that returns (values, [fds])."""
        fdlist = Gio.UnixFDList.new()
        for fd in fds:
            fdlist.append(fd)
        try:
            res, out = self.bus.call_with_unix_fd_list_sync(
                BUS_NAME, path, iface, method, GLib.Variant(f'({sig})', tuple(args)),
                GLib.VariantType(f'({reply})'), Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, fdlist, None)
        except GLib.Error as e:
            name, message = storaged._split_gerror(e)
            if name is None:
                raise AssertionError(f'{method} on {path} failed locally: {e.message}') from None
            raise DBusCallError(name, message, e) from None
        return res.unpack(), (out.steal_fds() if out is not None else [])


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def main():
    import unittest
    unittest.main(verbosity=2)
