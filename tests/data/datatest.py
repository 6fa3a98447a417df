"""Common pieces of the data-path tests (suite 'data').

Every test class runs against one pool backend:

  file    the `file` driver in a temporary directory (no reflinks: the
          stream-copy paths)
  btrfs   the `file-reflink` driver on a loop-mounted btrfs made by the class
  xfs     the `file-reflink` driver on a loop-mounted XFS (mkfs.xfs -m reflink=1)

The loop filesystems are made in setUpClass from a sparse image file, on a loop
device allocated with `losetup -f --show` (never a fixed /dev/loopN), and are
unmounted and detached in the class cleanup. Each test gets its own pool
directory on it and its own instance of the service (tests/dbus/storaged.py by
the D-Bus tests: private system bus, fresh state and base directory).

Nothing here skips: a missing tool or facility is a failure.
"""

import hashlib
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRCDIR = os.environ.get('QUBES_STORAGED_SRC') or \
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRCDIR, 'tests', 'dbus'))

import storaged  # noqa: E402
from support import loopfs  # noqa: E402  (storaged put tests/ on sys.path)
from storaged import (BUS_NAME, CALL_TIMEOUT_MS, ERROR_PREFIX, OBJECT_MANAGER, POOL, PROPERTIES, ROOT,  # noqa: E402,F401
                      VOLUME, DBusCallError, Gio, GLib, GiB, MiB, StoragedTestCase, allocated, pool_path, vconf,
                      volume_path)

JOB = 'org.qubes.Storage1.Job'
JOB_PATH_RE = re.compile(r'^/org/qubes/Storage1/job/[0-9]+$')
KiB = 1 << 10
BLOCK = 64 * KiB          # data and holes of the test patterns are aligned to this

BACKENDS = ('file', 'btrfs', 'xfs')


# ---- shell ------------------------------------------------------------------

def run(argv, **kw):
    """Runs a command; a failure raises AssertionError with its output."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise AssertionError(f'{" ".join(argv)} failed with status {p.returncode}:\n'
                             f'{p.stdout.decode(errors="replace")}{p.stderr.decode(errors="replace")}')
    return p.stdout.decode(errors='replace')


class LoopFs(loopfs.LoopFs):
    """A btrfs or XFS of support.loopfs in a temporary directory of its own,
    removed by cleanup()."""

    MKFS = {k: loopfs.LoopFs.MKFS[k] for k in ('btrfs', 'xfs')}

    def __init__(self, fstype, size=2 * GiB, workdir=None):
        if fstype not in self.MKFS:
            raise AssertionError(f'no loop filesystem of type {fstype}')
        self.workdir = tempfile.mkdtemp(prefix=f'storaged-data-{fstype}-', dir=workdir)
        super().__init__(fstype, self.workdir, size)

    def cleanup(self):
        try:
            super().cleanup()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---- data -------------------------------------------------------------------

def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def holey(size, seed, every=4, data_blocks=1, offset_blocks=0):
    """size bytes where, of each run of `every` BLOCK-sized blocks, the first
    `data_blocks` (after offset_blocks) are random and the rest zeros."""
    assert size % BLOCK == 0
    rnd = random.Random(seed)
    out = bytearray(size)
    for b in range(size // BLOCK):
        if (b - offset_blocks) % every < data_blocks:
            out[b * BLOCK:(b + 1) * BLOCK] = rnd.randbytes(BLOCK)
    return bytes(out)


def data_bytes(buf):
    """Bytes in BLOCK-sized blocks that are not all zeros."""
    zero = bytes(BLOCK)
    return sum(BLOCK for i in range(0, len(buf), BLOCK) if buf[i:i + BLOCK] != zero[:len(buf[i:i + BLOCK])])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_fd(fd):
    """Checksum of everything readable from fd, from offset 0 (pread)."""
    h = hashlib.sha256()
    off = 0
    while True:
        b = os.pread(fd, 4 * MiB, off)
        if not b:
            break
        h.update(b)
        off += len(b)
    return h.hexdigest(), off


def sha256(b):
    return hashlib.sha256(b).hexdigest()


class Feeder(threading.Thread):
    """Writes chunks into a pipe or socket from a thread, optionally slowly,
    and closes its end when done. Stops early when told to or when the
    reader is gone (EPIPE: recorded in .broken)."""

    def __init__(self, fd, chunks, delay=0.0, close=True, is_socket=False):
        super().__init__(daemon=True)
        self.fd = fd
        self.chunks = chunks
        self.delay = delay
        self.close_at_end = close
        self.is_socket = is_socket
        self.written = 0
        self.broken = False
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            for chunk in self.chunks:
                view = memoryview(chunk)
                while len(view) and not self.stop.is_set():
                    try:
                        n = os.write(self.fd, view)
                    except BlockingIOError:
                        time.sleep(0.005)
                        continue
                    view = view[n:]
                    self.written += n
                if self.stop.is_set():
                    break
                if self.delay:
                    self.stop.wait(self.delay)
        except (BrokenPipeError, ConnectionResetError):
            self.broken = True
        except OSError as e:
            self.error = e
        finally:
            if self.close_at_end:
                self.close()

    def close(self):
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def finish(self, timeout=60):
        self.stop.set()
        self.join(timeout)
        if self.is_alive():
            raise AssertionError('the pipe writer thread does not finish')
        self.close()


def chunked(buf, size=MiB):
    for i in range(0, len(buf), size):
        yield buf[i:i + size]


def zeros(n, size=MiB):
    z = bytes(min(n, size))
    while n > 0:
        yield z[:min(n, size)]
        n -= size


def endless(chunk):
    return itertools.repeat(chunk)


def dir_files(root):
    """Every file under root (relative path → size); for "nothing left behind"
    and "nothing changed" checks."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                out[os.path.relpath(p, root)] = os.lstat(p).st_size
            except FileNotFoundError:
                pass
    return out


# ---- the test case -------------------------------------------------------------

class DataTestCase(StoragedTestCase):
    """A pool `dp` of the class's backend, and helpers for moving data."""

    backend = None   # 'file', 'btrfs' or 'xfs'
    pool = 'dp'
    revisions_to_keep = 1
    loop_size = 2 * GiB
    _counter = itertools.count()

    @classmethod
    def setUpClass(cls):
        if cls.backend not in BACKENDS:
            raise AssertionError(f'{cls.__name__}: backend must be one of {BACKENDS}, not {cls.backend!r}')
        if os.geteuid() != 0:
            raise AssertionError('the data tests must run as root (loop devices, mounts)')
        super().setUpClass()
        cls.fs = None
        if cls.backend != 'file':
            cls.fs = LoopFs(cls.backend, size=cls.loop_size)
            cls.addClassCleanup(cls.fs.cleanup)
            cls.fs.setup()

    @property
    def driver(self):
        return 'file' if self.backend == 'file' else 'file-reflink'

    def setUp(self):
        super().setUp()
        self.D = self.make_pool(self.pool, self.backend)
        # signals are recorded from here on; a filter sees messages in the
        # order they arrive
        self.msglog = []
        self._filter_id = self.bus.add_filter(self._filter)
        self.addCleanup(self.bus.remove_filter, self._filter_id)

    def make_pool(self, name, backend, revisions_to_keep=None):
        """Adds a pool of the backend (file: under the test's temp dir;
        btrfs/xfs: on the class's loop filesystem, which must be that
        backend's). Returns its directory."""
        rtk = self.revisions_to_keep if revisions_to_keep is None else revisions_to_keep
        if backend == 'file':
            d = os.path.join(self.pools_dir, name)
            self.add_pool(name, 'file', {'dir_path': d, 'revisions_to_keep': str(rtk)})
            return d
        fs = self.fs if self.fs is not None and self.fs.fstype == backend else getattr(self, f'fs_{backend}', None)
        if fs is None:
            raise AssertionError(f'no {backend} filesystem for pool {name}')
        d = os.path.join(fs.mnt, f'{self._testMethodName}-{next(self._counter)}-{name}')
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        self.add_pool(name, 'file-reflink', {'dir_path': d, 'revisions_to_keep': str(rtk)})
        self.assertEqual(self.get_prop(pool_path(name), POOL, 'Driver'), 'file-reflink')
        return d

    def _filter(self, conn, message, incoming):
        if incoming:
            self.msglog.append((time.monotonic(), message.get_message_type(), message.get_path(),
                                message.get_member(), message.get_reply_serial(), message.get_error_name()))
        else:
            self.msglog.append((time.monotonic(), 'out', message.get_path(), message.get_member(),
                                message.get_serial(), None))
        return message

    # ---- volumes -------------------------------------------------------------

    @staticmethod
    def vid(vm, name='private'):
        return f'appvms/{vm}/{name}'

    def img(self, vid, D=None):
        return os.path.join(D or self.D, vid + '.img')

    def staging(self, vid, D=None):
        return os.path.join(D or self.D, vid + '-import.img')

    def origin(self, vm, size=4 * MiB, pool=None, **kw):
        """A save_on_stop volume; returns (object path, vid)."""
        path = self.create_volume(pool or self.pool, dict(name='private', vm=vm, size=size, rw=True,
                                                          save_on_stop=True, **kw))
        vid = self.vid(vm)
        self.assertEqual(path, volume_path(pool or self.pool, vid))
        return path, vid

    def volatile(self, vm, size=4 * MiB, pool=None):
        path = self.create_volume(pool or self.pool, dict(name='volatile', vm=vm, size=size, rw=True))
        return path, self.vid(vm, 'volatile')

    def seed(self, vid, content, D=None):
        """Writes content over the stopped volume's committed image (same
        size), behind the service's back, and flushes it."""
        p = self.img(vid, D)
        self.assertEqual(os.path.getsize(p), len(content), f'{p}: seeding needs the same size')
        with open(p, 'r+b') as f:
            self.write_all(f.fileno(), content)
            os.fsync(f.fileno())

    def write_all(self, fd, content):
        """Writes content at fd with pwrite, leaving blocks of zeros alone."""
        zero = bytes(BLOCK)
        for i in range(0, len(content), BLOCK):
            b = content[i:i + BLOCK]
            if b != zero[:len(b)]:
                self.assertEqual(os.pwrite(fd, b, i), len(b))

    def content(self, vid, D=None):
        with open(self.img(vid, D), 'rb') as f:
            return f.read()

    def state(self, vpath, vid, D=None, own_files=False):
        """What must not change when an import fails: size and revisions as
        the service says, the committed image's size and checksum, and the
        list of files of the pool (own_files: only the volume's own)."""
        D = D or self.D
        files = dir_files(D)
        if own_files:
            files = {f: s for f, s in files.items() if f.startswith(vid + '.') or f.startswith(vid + '-')}
        return {
            'Size': self.vprop(vpath, 'Size'),
            'Revisions': self.vprop(vpath, 'Revisions'),
            'image size': os.path.getsize(self.img(vid, D)),
            'image sha256': sha256_file(self.img(vid, D)),
            'files': files,
        }

    def assertState(self, before, vpath, vid, what, D=None, own_files=False):
        after = self.state(vpath, vid, D, own_files)
        diff = [f'  {k}: {before[k]!r} -> {after[k]!r}' for k in before if before[k] != after[k]]
        if diff:
            self.fail(f'{what}: the volume changed:\n' + '\n'.join(diff))

    def assertNoStaging(self, D=None, what=''):
        left = [f for f in dir_files(D or self.D) if '-import.img' in f]
        self.assertEqual(left, [], f'{what}: staging files left in the pool directory')

    def assertImage(self, vpath, vid, expected, what, D=None):
        """The committed image holds exactly `expected`, the service says so
        too (Size), and blocks of zeros are holes (allocation ≤ data)."""
        D = D or self.D
        p = self.img(vid, D)
        self.assertEqual(os.path.getsize(p), len(expected), f'{what}: size of {p}')
        self.assertTrue(sha256_file(p) == sha256(expected), f'{what}: content of {p} differs from the import')
        self.assertEqual(self.vprop(vpath, 'Size'), len(expected), f'{what}: Size property')
        own = [p] + ([os.path.join(D, vid + '-cow.img')] if self.backend == 'file' else [])
        self.assertEqual(self.vprop(vpath, 'Usage'), sum(allocated(f) for f in own),
                         f'{what}: Usage property vs the bytes allocated to {own}')
        ref = self.sparse_reference(expected, D)
        self.assertLessEqual(allocated(p), ref,
                             f'{what}: {p} allocates {allocated(p)} bytes where the same content written with '
                             f'holes for its zero blocks ({data_bytes(expected)} bytes of data in {BLOCK}-byte '
                             f'blocks) allocates {ref} on this filesystem: zero blocks were written')

    def sparse_reference(self, content, D=None):
        """Bytes allocated on the pool's filesystem by content written with a
        hole for every BLOCK of zeros (extent-tree blocks and the like
        included, as st_blocks counts them)."""
        p = os.path.join(D or self.D, f'.sparse-reference-{next(self._counter)}')
        try:
            with open(p, 'wb') as f:
                f.truncate(len(content))
                zero = bytes(BLOCK)
                for i in range(0, len(content), BLOCK):
                    b = content[i:i + BLOCK]
                    if b != zero[:len(b)]:
                        f.seek(i)
                        f.write(b)
                f.flush()
                os.fsync(f.fileno())
            return allocated(p)
        finally:
            os.unlink(p)

    # ---- calls with fds -------------------------------------------------------

    @staticmethod
    def fd_list(*fds):
        fdl = Gio.UnixFDList.new()
        for fd in fds:
            fdl.append(fd)    # duplicates fd: the caller keeps and closes its own
        return fdl

    def call_fds(self, path, iface, method, sig, args, reply, fds=(), timeout=CALL_TIMEOUT_MS):
        """Synchronous call passing fds (args hold their indexes as 'h').
        Returns (values tuple, list of received fds, owned by the caller)."""
        params = GLib.Variant(f'({sig})', tuple(args))
        try:
            res, out = self.bus.call_with_unix_fd_list_sync(
                BUS_NAME, path, iface, method, params, GLib.VariantType(f'({reply})'), Gio.DBusCallFlags.NONE,
                timeout, self.fd_list(*fds), None)
        except GLib.Error as e:
            name, message = storaged._split_gerror(e)
            if name is None:
                raise AssertionError(f'{method} on {path} failed locally: {e.message}') from None
            raise DBusCallError(name, message, e) from None
        received = out.steal_fds() if out is not None else []
        return res.unpack(), list(received)

    def call_fds_async(self, path, iface, method, sig, args, reply='', fds=(), timeout=CALL_TIMEOUT_MS):
        """Asynchronous version: returns a dict that gets 'done', and 'result'
        or 'error' (DBusCallError) when the reply is dispatched, and 't' (its
        monotonic time)."""
        params = GLib.Variant(f'({sig})', tuple(args))
        state = {'done': False}

        def cb(conn, res, _):
            try:
                v, out = conn.call_with_unix_fd_list_finish(res)
                state['result'] = v.unpack() if v is not None else ()
                if out is not None:
                    for fd in out.steal_fds():
                        os.close(fd)
            except GLib.Error as e:
                name, message = storaged._split_gerror(e)
                state['error'] = DBusCallError(name, message, e)
            state['done'] = True
            state['t'] = time.monotonic()
        self.bus.call_with_unix_fd_list(BUS_NAME, path, iface, method, params, GLib.VariantType(f'({reply})'),
                                        Gio.DBusCallFlags.NONE, timeout, self.fd_list(*fds), None, cb, None)
        return state

    def do_import(self, vpath, fd, size, options=None):
        """Volume.Import(fd, size); fd stays ours."""
        self.call_fds(vpath, VOLUME, 'Import', 'hta{sv}', (0, size, options or {}), '', fds=(fd,))

    def import_async(self, vpath, fd, size, options=None):
        return self.call_fds_async(vpath, VOLUME, 'Import', 'hta{sv}', (0, size, options or {}), '', fds=(fd,))

    def import_begin(self, vpath, size, options=None):
        """ImportBegin(size) → (fd, path); the fd is ours to close."""
        (idx, path), fds = self.call_fds(vpath, VOLUME, 'ImportBegin', 'ta{sv}', (size, options or {}), 'hs')
        self.assertEqual(len(fds), 1, 'ImportBegin must return one fd')
        self.assertEqual(idx, 0)
        return fds[0], path

    def import_end(self, vpath, success, message='', options=None):
        return self.vcall(vpath, 'ImportEnd', 'bsa{sv}', (success, message, options or {}))

    def import_volume(self, vpath, source, options=None):
        return self.vcall(vpath, 'ImportVolume', 'oa{sv}', (source, options or {}))

    def export(self, vpath, options=None):
        """Export() → (fd, path)."""
        (idx, path), fds = self.call_fds(vpath, VOLUME, 'Export', 'a{sv}', (options or {},), 'hs')
        self.assertEqual(len(fds), 1, 'Export must return one fd')
        return fds[0], path

    def export_end(self, vpath, path, options=None):
        return self.vcall(vpath, 'ExportEnd', 'sa{sv}', (path, options or {}))

    # ---- sources ---------------------------------------------------------------

    def pipe_source(self, chunks, delay=0.0):
        """A pipe fed by a Feeder thread; returns (read fd, feeder)."""
        r, w = os.pipe()
        feeder = Feeder(w, chunks, delay)
        feeder.start()
        self.addCleanup(self._end_feeder, feeder)
        return r, feeder

    def socket_source(self, chunks, delay=0.0):
        a, b = socket.socketpair()
        fd_w = b.detach()
        feeder = Feeder(fd_w, chunks, delay, is_socket=True)
        feeder.start()
        self.addCleanup(self._end_feeder, feeder)
        return a.detach(), feeder

    def file_source(self, content):
        p = os.path.join(self.tmp, f'source-{next(self._counter)}.bin')
        with open(p, 'wb') as f:
            f.write(content)
        return os.open(p, os.O_RDONLY | os.O_CLOEXEC)

    def _end_feeder(self, feeder):
        feeder.finish()

    def import_from(self, kind, vpath, content, size, extra=b''):
        """Imports content+extra declared as `size` through a pipe, socket or
        regular file; raises DBusCallError on an error reply."""
        data = content + extra
        if kind == 'file':
            fd = self.file_source(data)
            try:
                return self.do_import(vpath, fd, size)
            finally:
                os.close(fd)
        if kind == 'pipe':
            fd, feeder = self.pipe_source(chunked(data))
        elif kind == 'socket':
            fd, feeder = self.socket_source(chunked(data))
        else:
            raise AssertionError(kind)
        try:
            return self.do_import(vpath, fd, size)
        finally:
            os.close(fd)
            feeder.finish()

    # ---- jobs --------------------------------------------------------------

    def jobs_added(self, since, vpath=None):
        """Job objects announced by InterfacesAdded after mark `since`: list of
        (path, properties)."""
        out = []
        for (p, i, m, args) in self.service_signals(since, 'InterfacesAdded', iface=OBJECT_MANAGER):
            if p != ROOT:
                continue
            obj, ifaces = args
            if JOB in ifaces and (vpath is None or vpath in ifaces[JOB].get('Objects', [])):
                out.append((obj, ifaces[JOB]))
        return out

    def wait_job(self, since, vpath, what='a Job for the operation'):
        found = []

        def cond():
            found[:] = self.jobs_added(since, vpath)
            return bool(found)
        self.wait_until(cond, f'InterfacesAdded of {what} on {vpath}', timeout=20)
        return found[0]

    def job_completed(self, since, job):
        sigs = self.service_signals(since, 'Completed', path=job, iface=JOB)
        return sigs[0][3] if sigs else None

    def wait_completed(self, since, job):
        self.wait_until(lambda: self.job_completed(since, job) is not None, f'Completed of {job}')
        return self.job_completed(since, job)

    def job_removed(self, since, job):
        for (p, i, m, args) in self.service_signals(since, 'InterfacesRemoved', iface=OBJECT_MANAGER):
            if p == ROOT and args[0] == job and JOB in args[1]:
                return True
        return False

    def wait_progress(self, job, at_least=1, timeout=60):
        """Waits until the job's Bytes done (Progress × Bytes) reach at_least."""
        state = {}

        def cond():
            try:
                state['p'] = self.get_prop(job, JOB, 'Progress')
                state['b'] = self.get_prop(job, JOB, 'Bytes')
            except DBusCallError as e:
                self.fail(f'the job {job} is gone while waiting for progress: {e}')
            return state['p'] * state['b'] >= at_least
        self.wait_until(cond, f'progress of {job}', timeout=timeout)
        return state['p']

    def wait_staged(self, vid, at_least, D=None, timeout=60):
        """Waits until the staging file of vid holds at_least bytes of data."""
        st = self.staging(vid, D)
        self.wait_until(lambda: allocated(st) >= at_least, f'{at_least} bytes written to {st}', timeout=timeout)
        return st

    def assertJobGone(self, job):
        """The job object no longer exists: not in GetManagedObjects, and its
        properties cannot be read."""
        self.assertNotIn(job, self.managed_objects(), f'{job} still listed after its operation ended')
        try:
            v = self.get_prop(job, JOB, 'Progress')
        except DBusCallError as e:
            self.assertIn(e.name, ('org.freedesktop.DBus.Error.UnknownObject',
                                   'org.freedesktop.DBus.Error.UnknownInterface',
                                   'org.freedesktop.DBus.Error.UnknownMethod',
                                   'org.freedesktop.DBus.Error.UnknownProperty'),
                          f'reading a finished job {job}')
            return
        self.fail(f'the job {job} still answers after its operation ended (Progress={v})')

    # ---- service crash -------------------------------------------------------

    def kill_service(self):
        """SIGKILLs the service (a crash) and forgets it."""
        svc = self.service
        proc, svc.proc = svc.proc, None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        svc._log.close()
        deadline = time.monotonic() + 30
        while self._name_has_owner():
            if time.monotonic() > deadline:
                self.fail('the bus name stays owned after the service was killed')
            time.sleep(0.02)


def backend_classes(mixin, module_globals, backends=BACKENDS, **attrs):
    """Defines <Mixin-without-Mixin><Backend> test classes, one per backend,
    in the calling module."""
    base = mixin.__name__.replace('Mixin', '')
    for b in backends:
        name = f'{base}{b.capitalize()}'
        module_globals[name] = type(name, (mixin, DataTestCase),
                                    dict(backend=b, __module__=module_globals['__name__'], __qualname__=name,
                                         **attrs))


def main():
    import unittest
    unittest.main(verbosity=2)
