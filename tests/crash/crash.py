#!/usr/bin/python3
"""Crash campaign: SIGKILL the service inside every mutating operation.

For each driver (file, file-reflink; both on a loop-mounted btrfs) and each
mutating operation, a case prepares a volume (or pool) with known data, then
kills the service inside the operation, either

  - at the k-th call of a chosen syscall: strace attached to the running
    service with --inject=SYSCALL:signal=KILL:when=K, or
  - at a random time after the call was sent,

restarts it on the same state directory and checks what a user would see:

  restart     the service starts again and owns its name
  data        every listed volume's committed image exists and holds the old or
              the new content of the operation, whole (hashes of known patterns)
  listing     a listed volume has its image; a vid that is not listed can be
              created again (the files a crash left are replaced)
  leftovers   after the next Start (and Stop) of every volume nothing is left:
              no ~XXXXXX temps, -import.img, export views, .reflink-probe files,
              nor any file that no listed volume owns

Without options a short fixed slice runs (meson test --suite crash); --full
runs the whole campaign. Both print a table of operation x outcome, where
outcome is killed-old / killed-new (the kill happened; the data after the
restart is the old or the new one), completed (the operation answered before
the chosen syscall came) or FAIL. The exit status is non-zero when any case
failed. See tests/crash/README.md.
"""

import argparse
import collections
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'dbus'))
sys.path.insert(0, os.path.join(SRC, 'tests', 'reflink'))

import dbusmock  # noqa: E402
import storaged  # noqa: E402
from storaged import (BUS_NAME, MANAGER, POOL, VOLUME, ROOT, MiB, Gio, GLib, DBusCallError, Service,  # noqa: E402
                      pool_path, vconf)
from support.bus import iterate  # noqa: E402
from support.service import ServiceError, wait_released  # noqa: E402
from reflinktest import Filesystem, content_digest, random_chunks, require_environment  # noqa: E402

SIZE = 64 * MiB
BIGGER = 96 * MiB
VID = 'appvms/vm1/private'
SRC_VID = 'appvms/vm2/private'
DRIVERS = ('file', 'file-reflink')

# Syscalls a kill is injected at (strace names, x86_64 and aarch64 share them
# except rename, which aarch64 lacks: strace ignores names it does not know
# only with a '?' prefix).
SYSCALLS = {
    'rename': '?rename,renameat,renameat2',
    'unlink': '?unlink,unlinkat,?rmdir',
    'fsync': 'fsync,fdatasync,syncfs',
    'open': '?open,openat,openat2',
    'write': 'write,pwrite64,writev,pwritev,pwritev2',
    'ioctl': 'ioctl',
    'copy': 'copy_file_range,sendfile,splice',
    'truncate': 'ftruncate,?truncate,fallocate',
    'mkdir': '?mkdir,mkdirat',
}

LEFTOVER_RE = re.compile(r'~|-import\.img$|@export-|\.reflink-probe')


def fail(msg):
    raise AssertionError(msg)


def digest_of(size, chunks):
    """content_digest() of an image of `size` bytes holding `chunks`."""
    path = os.path.join(WORK, 'digest.tmp')
    with open(path, 'wb') as f:
        f.truncate(size)
        for off, data in chunks:
            os.pwrite(f.fileno(), data, off)
    try:
        return content_digest(path)
    finally:
        os.unlink(path)


def pattern(tag):
    return random_chunks(tag, (0, 8 * MiB, SIZE - MiB))


WORK = None


class Client:
    """A GDBus connection with sync and async calls (fds in and out)."""

    def __init__(self, address):
        self.conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.ctx = GLib.MainContext.default()
        self.states = []

    def forget_calls(self):
        """Dispatches late replies and closes every fd they brought."""
        self.iterate()
        for st in self.states:
            for fd in st.pop('fds', []):
                os.close(fd)
        self.states = [st for st in self.states if not st['done']]

    def close(self):
        self.conn.close_sync(None)

    def call(self, path, iface, method, sig='', args=(), reply='', fds=(), timeout=120000):
        st = self.call_async(path, iface, method, sig, args, reply, fds, timeout)
        while not st['done']:
            iterate(self.ctx)
        if 'error' in st:
            raise st['error']
        return st['result']

    def call_async(self, path, iface, method, sig='', args=(), reply='', fds=(), timeout=120000):
        params = GLib.Variant(f'({sig})', tuple(args)) if sig else None
        fdlist = Gio.UnixFDList.new()
        for fd in fds:
            fdlist.append(fd)
        st = {'done': False}
        self.states.append(st)

        def cb(conn, res, _):
            try:
                v, out = conn.call_with_unix_fd_list_finish(res)
                vals = v.unpack() if v is not None else ()
                st['fds'] = out.steal_fds() if out is not None else []
                st['result'] = None if len(vals) == 0 else vals[0] if len(vals) == 1 else vals
            except GLib.Error as e:
                name, message = storaged._split_gerror(e)
                st['error'] = DBusCallError(name, message, e)
            st['done'] = True
        self.conn.call_with_unix_fd_list(BUS_NAME, path, iface, method, params,
                                         GLib.VariantType(f'({reply})'), Gio.DBusCallFlags.NONE, timeout, fdlist,
                                         None, cb, None)
        return st

    def iterate(self):
        while self.ctx.iteration(False):
            pass


class Case:
    """One kill: fresh state and pool directories on the shared btrfs."""

    def __init__(self, campaign, driver, op, kill, seed):
        self.c = campaign
        self.driver = driver
        self.op = op
        self.kill = kill          # ('syscall', group, k) or ('random', delay_s)
        self.seed = seed
        self.dir = tempfile.mkdtemp(prefix=f'case-{op}-', dir=campaign.mnt)
        self.state = os.path.join(self.dir, 'state')
        self.base = os.path.join(self.dir, 'base')
        self.logs = os.path.join(self.dir, 'logs')
        self.pdir = os.path.join(self.dir, 'p')
        os.makedirs(self.base)
        os.makedirs(self.logs)
        self.svc = Service(self.state, self.base, self.logs, env={'DBUS_SYSTEM_BUS_ADDRESS': campaign.address})
        self.cl = campaign.client
        self.allowed = {}         # vid -> set of committed digests allowed after the kill
        self.vids = set()         # vids this case touches
        self.extra_pool = None    # (name, dir) of an AddPool/RemovePool case
        self.notes = []

    # ---- service ---------------------------------------------------------

    def start(self):
        try:
            self.svc.launch(self.cl.conn)
        except ServiceError as e:
            fail(f'restart: {e}')

    def wait_gone(self):
        wait_released(self.cl.conn, BUS_NAME, 60)

    def sigkill(self):
        self.svc.kill(signal.SIGKILL, 60)
        self.wait_gone()

    def stop(self):
        self.svc.stop_checked()
        self.wait_gone()

    # ---- calls -------------------------------------------------------------

    def pool(self):
        return pool_path('p')

    def vpath(self, vid=VID, pool='p'):
        return self.cl.call(pool_path(pool), POOL, 'GetVolume', 's', (vid,), 'o')

    def create(self, vid=VID, pool='p'):
        vm, name = vid.split('/')[1:]
        cfg = vconf(name=name, vm=vm, size=SIZE, rw=True, save_on_stop=True)
        self.vids.add(vid)
        return self.cl.call(pool_path(pool), POOL, 'CreateVolume', 'a{sv}a{sv}', (cfg, {}), 'o')

    def vcall(self, v, method, sig='a{sv}', args=({},), reply='', fds=()):
        return self.cl.call(v, VOLUME, method, sig, args, reply, fds)

    def prop(self, v, name):
        return self.cl.call(v, 'org.freedesktop.DBus.Properties', 'Get', 'ss', (VOLUME, name), 'v')

    def write_running(self, v, chunks):
        """Writes into the running image (Path), as the VM would."""
        path = self.prop(v, 'Path')
        with open(path, 'r+b') as f:
            for off, data in chunks:
                os.pwrite(f.fileno(), data, off)
            os.fsync(f.fileno())

    def origin_with(self, tag, vid=VID):
        """An origin whose committed data is pattern(tag)."""
        v = self.create(vid)
        self.vcall(v, 'Start')
        self.write_running(v, pattern(tag))
        self.vcall(v, 'Stop')
        return v

    def image(self, vid):
        return os.path.join(self.pdir, vid + '.img')

    # ---- the kill ------------------------------------------------------------

    def attach_strace(self, group, k):
        pid = self.svc.proc.pid
        argv = ['strace', '-f', '-qq', '-o', '/dev/null', '-e', f'trace={SYSCALLS[group]}',
                f'--inject={SYSCALLS[group]}:signal=KILL:when={k}', '-p', str(pid)]
        st = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            tasks = os.listdir(f'/proc/{pid}/task')
            traced = 0
            for t in tasks:
                try:
                    with open(f'/proc/{pid}/task/{t}/status') as f:
                        for line in f:
                            if line.startswith('TracerPid:') and int(line.split()[1]) == st.pid:
                                traced += 1
                except OSError:
                    pass
            if traced == len(tasks):
                return st
            if st.poll() is not None:
                fail(f'strace exited ({st.returncode}): {st.stderr.read().decode(errors="replace")}')
            if time.monotonic() > deadline:
                fail(f'strace did not attach to every thread of {pid} ({traced}/{len(tasks)})')
            time.sleep(0.01)

    def dying(self):
        """The service has exited, or is exiting (a zombie whose threads go)."""
        if self.svc.proc.poll() is not None:
            return True
        try:
            with open(f'/proc/{self.svc.proc.pid}/stat') as f:
                return f.read().rsplit(')', 1)[1].split()[0] in ('Z', 'X')
        except OSError:
            return True

    def run_killed(self, act):
        """Runs act() (which sends the call and returns its state) under the
        kill; returns 'killed' or 'completed'."""
        tracer = None
        if self.kill[0] == 'syscall':
            tracer = self.attach_strace(self.kill[1], self.kill[2])
        st = act()
        t0 = time.monotonic()
        delay = self.kill[1] if self.kill[0] == 'random' else None
        outcome = None
        while outcome is None:
            self.cl.ctx.iteration(False)
            if self.dying():
                outcome = 'killed'
                break
            if delay is not None and time.monotonic() - t0 >= delay:
                outcome = 'killed' if not st['done'] else 'completed'
                self.svc.proc.send_signal(signal.SIGKILL)
                break
            if st['done']:
                outcome = 'killed' if self.dying() else 'completed'
                break
            if time.monotonic() - t0 > 300:
                fail(f'{self.op} was not answered within 300 s and the service is alive')
            time.sleep(0.001)
        self.c.durations[(self.driver, self.op)] = time.monotonic() - t0 if outcome == 'completed' else \
            self.c.durations.get((self.driver, self.op), 0.05)
        if tracer is not None:
            # a tracer detaching from a dying process can hang: kill it then
            # (its tracees are released by the kernel)
            if tracer.poll() is None:
                if self.dying():
                    tracer.kill()
                else:
                    tracer.terminate()
            tracer.wait(60)
        if outcome == 'killed':
            self.svc.proc.wait(60)
        if outcome == 'killed' and self.svc.proc.returncode != -signal.SIGKILL:
            fail(f'the service died of status {self.svc.proc.returncode}, not of the SIGKILL:\n'
                 + self.svc.output()[-3000:])
        # a completed operation is followed by a crash all the same
        self.sigkill()
        self.cl.forget_calls()
        return outcome, st

    # ---- checks after the restart ------------------------------------------

    def listed(self, pool='p'):
        return {vid for vid, _ in self.cl.call(pool_path(pool), POOL, 'ListVolumes', '', (), 'a(so)')}

    def leftovers(self):
        out = []
        for dirpath, _, files in os.walk(self.pdir):
            out.extend(os.path.relpath(os.path.join(dirpath, f), self.pdir) for f in files if LEFTOVER_RE.search(f))
        return sorted(out)

    def owned(self, rel, listed):
        for vid in listed:
            if self.driver == 'file':
                if rel in (vid + '.img', vid + '-cow.img', vid + '-cow.img.old'):
                    return True
            else:
                if rel == vid + '.img' or re.fullmatch(re.escape(vid) + r'\.img\.[0-9]+@[0-9T:-]+Z', rel):
                    return True
        return False

    def files_of(self, vid):
        d = os.path.join(self.pdir, os.path.dirname(vid))
        base = os.path.basename(vid)
        if not os.path.isdir(d):
            return []
        names = (base + '.img', base + '-cow.img', base + '-dirty.img', base + '-import.img', base + '-cow.img.old')
        return sorted(f for f in os.listdir(d)
                      if f in names or f.startswith(base + '.img.') or f.startswith(base + '.img@'))

    def check_data(self, vid, when):
        img = self.image(vid)
        if not os.path.exists(img):
            fail(f'{when}: {vid} is listed but its image {vid}.img is missing')
        d = content_digest(img)
        if d not in self.allowed[vid]:
            fail(f'{when}: the committed image of {vid} is neither the old nor the new data (torn or lost), '
                 f'size {os.stat(img).st_size}')
        return d

    def check(self):
        """After the restart: returns 'old'/'new' of VID (or of the pool)."""
        self.start()
        result = None
        pool_result = self.check_pool() if self.extra_pool else None
        listed = self.listed()
        for vid in sorted(self.vids):
            if vid in listed:
                d = self.check_data(vid, 'after the restart')
                if vid == VID:
                    result = 'new' if d == self.new and d not in self.old else 'old'
            else:
                left = self.files_of(vid)
                if left:
                    self.notes.append(f'orphan files of {vid}: {left}')
                try:
                    self.create(vid)
                except DBusCallError as e:
                    fail(f'{vid} is not listed, and creating it again fails: {e.name}: {e.message} '
                         f'(files on disk: {left})')
                self.allowed[vid] = {self.empty}
                if vid == VID:
                    result = 'gone'
        listed = self.listed()
        for vid in sorted(listed):
            v = self.vpath(vid)
            if not self.prop(v, 'Rw'):
                self.vcall(v, 'SetRw', 'ba{sv}', (True, {}))  # a read-only origin is never committed
            if not self.prop(v, 'Started'):
                try:
                    self.vcall(v, 'Start')
                except DBusCallError as e:
                    fail(f'Start of {vid} after the restart fails: {e.name}: {e.message}')
            left = [f for f in self.leftovers()]
            if left:
                fail(f'left behind after the next Start of {vid}: {left}')
            try:
                self.vcall(v, 'Stop')
            except DBusCallError as e:
                fail(f'Stop of {vid} after the restart fails: {e.name}: {e.message}')
            self.check_data(vid, f'after Start and Stop of {vid}')
        stray = []
        for dirpath, _, files in os.walk(self.pdir):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), self.pdir)
                if not self.owned(rel, listed):
                    stray.append(rel)
        if stray:
            fail(f'files no listed volume owns, after Start and Stop of every volume: {sorted(stray)}')
        self.stop()
        return pool_result or result or 'old'

    def check_pool(self):
        name, d = self.extra_pool
        pools = {n for n, _ in self.cl.call(ROOT, MANAGER, 'ListPools', '', (), 'a(so)')}
        if name in pools:
            v = self.cl.call(pool_path(name), POOL, 'CreateVolume', 'a{sv}a{sv}',
                             (vconf(name='x', vm='x1', size=MiB, rw=True, save_on_stop=True), {}), 'o')
            self.vcall(v, 'Start')
            self.vcall(v, 'Stop')
            self.vcall(v, 'Remove')
            return 'present'
        try:
            self.cl.call(ROOT, MANAGER, 'AddPool', 'ssa{ss}a{sv}', (name, self.driver, {'dir_path': d}, {}), 'o')
        except DBusCallError as e:
            fail(f'pool {name} is not listed, and adding it again fails: {e.name}: {e.message}')
        return 'gone'

    def cleanup(self):
        self.cl.forget_calls()
        self.svc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the operations -----------------------------------------------------------
# prepare(case) makes the state before the operation and sets case.old/new
# (digests); act(case) sends the call and returns its async state.

class Op:
    drivers = DRIVERS

    def __init__(self, name):
        self.name = name

    def setup(self, c):
        c.empty = digest_of(SIZE, [])
        c.A = digest_of(SIZE, pattern('A'))
        c.B = digest_of(SIZE, pattern('B'))
        c.old = {c.A}
        c.new = c.B
        c.allowed[VID] = {c.A, c.B}


class CreateVolume(Op):
    def prepare(self, c):
        c.old, c.new = set(), c.empty
        c.vids.add(VID)
        c.allowed[VID] = {c.empty}

    def act(self, c):
        cfg = vconf(name='private', vm='vm1', size=SIZE, rw=True, save_on_stop=True)
        return c.cl.call_async(c.pool(), POOL, 'CreateVolume', 'a{sv}a{sv}', (cfg, {}), 'o')


class Remove(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'Remove', 'a{sv}', ({},), '')


class Start(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'Start', 'a{sv}', ({},), '')


class Stop(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.vcall(c.v, 'Start')
        c.write_running(c.v, pattern('B'))

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'Stop', 'a{sv}', ({},), '')


class Resize(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.new = digest_of(BIGGER, pattern('A'))
        c.allowed[VID] = {c.A, c.new}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'Resize', 'ta{sv}', (BIGGER, {}), '')


class Revert(Op):
    drivers = ('file-reflink',)  # the file driver has no Revert

    def prepare(self, c):
        c.v = c.origin_with('A')
        c.vcall(c.v, 'Start')
        c.write_running(c.v, pattern('B'))
        c.vcall(c.v, 'Stop')
        c.rev = c.prop(c.v, 'Revisions')[-1][0]
        c.old, c.new = {c.B}, c.A

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'Revert', 'sa{sv}', (c.rev, {}), '')


class ImportBegin(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'ImportBegin', 'ta{sv}', (SIZE, {}), 'hs')


def import_begin(c, v):
    st = c.cl.call_async(v, VOLUME, 'ImportBegin', 'ta{sv}', (SIZE, {}), 'hs')
    while not st['done']:
        iterate(c.cl.ctx)
    if 'error' in st:
        raise st['error']
    fds = st.pop('fds')
    for fd in fds[:st['result'][0]] + fds[st['result'][0] + 1:]:
        os.close(fd)
    return fds[st['result'][0]]


class ImportEndOp(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        fd = import_begin(c, c.v)
        for off, data in pattern('B'):
            os.pwrite(fd, data, off)
        os.fsync(fd)
        os.close(fd)

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'ImportEnd', 'bsa{sv}', (True, '', {}), '')


class Import(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')

    def act(self, c):
        r, w = os.pipe()
        data = bytearray(SIZE)
        for off, chunk in pattern('B'):
            data[off:off + len(chunk)] = chunk

        def feed():
            try:
                view = memoryview(data)
                while view:
                    n = os.write(w, view[:MiB])
                    view = view[n:]
            except OSError:
                pass
            finally:
                os.close(w)
        threading.Thread(target=feed, daemon=True).start()
        st = c.cl.call_async(c.v, VOLUME, 'Import', 'hta{sv}', (0, SIZE, {}), '', fds=(r,))
        os.close(r)
        return st


class ImportVolume(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.src = c.origin_with('B', SRC_VID)
        c.allowed[SRC_VID] = {c.B}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'ImportVolume', 'oa{sv}', (c.src, {}), '')


class Export(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'Export', 'a{sv}', ({},), 'hs')


class ExportEnd(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}
        st = c.cl.call_async(c.v, VOLUME, 'Export', 'a{sv}', ({},), 'hs')
        while not st['done']:
            iterate(c.cl.ctx)
        if 'error' in st:
            raise st['error']
        for fd in st.pop('fds'):
            os.close(fd)
        c.export_path = st['result'][1]

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'ExportEnd', 'sa{sv}', (c.export_path, {}), '')


class SetRevisionsToKeep(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.vcall(c.v, 'Start')
        c.write_running(c.v, pattern('B'))
        c.vcall(c.v, 'Stop')
        c.allowed[VID] = {c.B}
        c.old, c.new = {c.B}, None

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'SetRevisionsToKeep', 'ia{sv}', (0, {}), '')


class PoolSetRevisionsToKeep(SetRevisionsToKeep):
    def act(self, c):
        return c.cl.call_async(c.pool(), POOL, 'SetRevisionsToKeep', 'ia{sv}', (0, {}), '')


class SetRw(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}

    def act(self, c):
        return c.cl.call_async(c.v, VOLUME, 'SetRw', 'ba{sv}', (False, {}), '')


class AddPool(Op):
    def prepare(self, c):
        c.v = c.origin_with('A')
        c.allowed[VID] = {c.A}
        c.extra_pool = ('n', os.path.join(c.dir, 'n'))

    def act(self, c):
        return c.cl.call_async(ROOT, MANAGER, 'AddPool', 'ssa{ss}a{sv}',
                               ('n', c.driver, {'dir_path': c.extra_pool[1]}, {}), 'o')


class RemovePool(AddPool):
    def prepare(self, c):
        super().prepare(c)
        c.cl.call(ROOT, MANAGER, 'AddPool', 'ssa{ss}a{sv}', ('n', c.driver, {'dir_path': c.extra_pool[1]}, {}), 'o')

    def act(self, c):
        return c.cl.call_async(ROOT, MANAGER, 'RemovePool', 'sa{sv}', ('n', {}), '')


OPS = collections.OrderedDict((o.name, o) for o in (
    CreateVolume('CreateVolume'), Remove('Remove'), Start('Start'), Stop('Stop'), Resize('Resize'),
    Revert('Revert'), ImportBegin('ImportBegin'), ImportEndOp('ImportEnd'), Import('Import'),
    ImportVolume('ImportVolume'), Export('Export'), ExportEnd('ExportEnd'),
    SetRevisionsToKeep('SetRevisionsToKeep'), PoolSetRevisionsToKeep('Pool.SetRevisionsToKeep'),
    SetRw('SetRw'), AddPool('AddPool'), RemovePool('RemovePool')))


# ---- the campaign -------------------------------------------------------------

class Campaign:
    def __init__(self, args):
        self.args = args
        self.table = collections.defaultdict(collections.Counter)
        self.failures = []
        self.durations = {}
        self.known = []

    def __enter__(self):
        global WORK
        require_environment()
        if not shutil.which('strace'):
            fail('strace is missing (apt-get install strace)')
        self.tmp = tempfile.mkdtemp(prefix='storaged-crash-')
        WORK = self.tmp
        self.fs = Filesystem('btrfs', self.tmp, size=3 << 30)
        self.fs.make()
        self.mnt = self.fs.mountpoint
        self.bus_pid, self.address = dbusmock.DBusTestCase.start_dbus()
        self.client = Client(self.address)
        return self

    def __exit__(self, *exc):
        self.client.close()
        dbusmock.DBusTestCase.stop_dbus(self.bus_pid)
        self.fs.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, driver, opname, kill, seed=0):
        op = OPS[opname]
        c = Case(self, driver, opname, kill, seed)
        label = f'{driver:12} {opname:24} ' + (f'{kill[1]}#{kill[2]}' if kill[0] == 'syscall'
                                               else f'random {kill[1] * 1000:.0f}ms')
        try:
            c.start()
            c.cl.call(ROOT, MANAGER, 'AddPool', 'ssa{ss}a{sv}', ('p', driver, {'dir_path': c.pdir}, {}), 'o')
            op.setup(c)
            op.prepare(c)
            killed, _ = c.run_killed(lambda: op.act(c))
            state = c.check()
            outcome = 'completed' if killed == 'completed' else f'killed-{state}'
            self.table[f'{driver} {opname}'][outcome] += 1
            note = ('  (' + '; '.join(c.notes) + ')') if c.notes else ''
            if self.args.verbose:
                print(f'  ok   {label}: {outcome}{note}', flush=True)
            return killed
        except Exception as e:  # a failing case is counted and reported, the campaign goes on
            self.table[f'{driver} {opname}']['FAIL'] += 1
            msg = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            self.failures.append(f'{label}: {msg}')
            print(f'  FAIL {label}: {msg}', flush=True)
            return 'failed'
        finally:
            c.cleanup()

    def print_table(self):
        cols = ['killed-old', 'killed-new', 'killed-gone', 'killed-present', 'completed', 'FAIL']
        cols = [k for k in cols if any(k in row for row in self.table.values())]
        w = max([len(r) for r in self.table] + [10])
        print('\n' + 'operation'.ljust(w) + ''.join(k.rjust(16) for k in cols) + 'total'.rjust(8))
        total = collections.Counter()
        for row in sorted(self.table):
            cnt = self.table[row]
            total.update(cnt)
            print(row.ljust(w) + ''.join(str(cnt.get(k, 0)).rjust(16) for k in cols)
                  + str(sum(cnt.values())).rjust(8))
        print('all'.ljust(w) + ''.join(str(total.get(k, 0)).rjust(16) for k in cols)
              + str(sum(total.values())).rjust(8))


# The fixed slice (meson test --suite crash): every operation on both drivers
# killed at its first rename (the commit point of the file drivers) and once at
# a random time (fixed seed), plus the kills that once left a volume unusable
# or files behind.
SLICE_EXTRA = [
    ('file', 'CreateVolume', ('syscall', 'fsync', 2)),
    ('file', 'Remove', ('syscall', 'fsync', 1)),
    ('file', 'Remove', ('syscall', 'unlink', 1)),
    ('file', 'Start', ('syscall', 'unlink', 1)),
    ('file', 'Start', ('syscall', 'fsync', 1)),
    ('file', 'ImportBegin', ('syscall', 'unlink', 1)),
    ('file', 'ImportEnd', ('syscall', 'fsync', 1)),
    ('file-reflink', 'Remove', ('syscall', 'unlink', 1)),
    ('file-reflink', 'Stop', ('syscall', 'fsync', 1)),
    ('file-reflink', 'Stop', ('syscall', 'ioctl', 1)),
    ('file-reflink', 'Export', ('syscall', 'unlink', 1)),
    ('file-reflink', 'ImportVolume', ('syscall', 'unlink', 1)),
]

# Slice cases that fail on main today: listed, not silently dropped. The slice
# prints each one it leaves out, --known runs them too, --full always does.
# key: (driver, op, 'syscall', group) or (driver, op, 'random', None).
KNOWN_FAILING = {}


def known_key(driver, op, kill):
    return (driver, op, kill[0], kill[1] if kill[0] == 'syscall' else None)


def slice_cases(rnd):
    for driver in DRIVERS:
        for opname, op in OPS.items():
            if driver not in op.drivers:
                continue
            yield driver, opname, ('syscall', 'rename', 1)
            yield driver, opname, ('random', rnd.uniform(0, 0.03))
    yield from SLICE_EXTRA


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--full', action='store_true', help='the whole campaign (every op x syscall x k, and random '
                    'kills), not the short slice')
    ap.add_argument('--seed', type=int, default=1, help='seed of the random-time kills')
    ap.add_argument('--max-k', type=int, default=12, help='--full: highest k per syscall (stops earlier when the '
                    'operation completes before the k-th call)')
    ap.add_argument('--random', type=int, default=4, help='--full: random-time kills per driver and operation')
    ap.add_argument('--ops', default='', help='comma-separated operations (default: all)')
    ap.add_argument('--drivers', default=','.join(DRIVERS))
    ap.add_argument('--syscalls', default=','.join(SYSCALLS))
    ap.add_argument('--time-limit', type=float, default=0, help='--full: stop starting cases after this many s')
    ap.add_argument('--known', action='store_true', help='slice: run the cases listed as known to fail too')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    t0 = time.monotonic()
    with Campaign(args) as camp:
        if not args.full:
            args.verbose = True
            for driver, op, kill in slice_cases(rnd):
                key = known_key(driver, op, kill)
                if key in KNOWN_FAILING and not args.known:
                    print(f'  KNOWN-FAILING, not run: {driver} {op} {kill[1]}: {KNOWN_FAILING[key]}')
                    camp.known.append(key)
                    continue
                camp.run(driver, op, kill)
        else:
            ops = [o for o in OPS if not args.ops or o in args.ops.split(',')]
            for driver in args.drivers.split(','):
                for opname in ops:
                    if driver not in OPS[opname].drivers:
                        continue
                    for group in args.syscalls.split(','):
                        for k in range(1, args.max_k + 1):
                            if args.time_limit and time.monotonic() - t0 > args.time_limit:
                                break
                            if camp.run(driver, opname, ('syscall', group, k)) == 'completed':
                                break
                    for i in range(args.random):
                        if args.time_limit and time.monotonic() - t0 > args.time_limit:
                            break
                        d = camp.durations.get((driver, opname), 0.05)
                        camp.run(driver, opname, ('random', rnd.uniform(0, d * 1.2)))
        camp.print_table()
        print(f'\n{sum(sum(r.values()) for r in camp.table.values())} cases in {time.monotonic() - t0:.0f} s, '
              f'{len(camp.failures)} failed')
        for f in camp.failures:
            print('FAILED: ' + f.split('\n')[0][:400])
        if camp.known:
            print(f'{len(camp.known)} cases known to fail on this code were left out of the slice '
                  f'(tests/crash/README.md; run them with --known)')
        return 1 if camp.failures else 0


if __name__ == '__main__':
    sys.exit(main())
