#!/usr/bin/python3
"""Power loss at every flush: the file-reflink pool's filesystem on dm-log-writes.

Runs inside the guest of tests/guest/run-in-guest (tests/powerloss/suite): it
needs device-mapper with the log-writes and snapshot targets, loop devices,
btrfs and XFS. For each filesystem given:

1. A sparse data file and log file on /tmp (a tmpfs), each on a loop device,
   joined by a dm-log-writes device; the filesystem is made and mounted on it.
   The pool directory, the state directory and the base directory of the
   service all live there.
2. Workload: the built service on a private bus; AddPool (file-reflink),
   CreateVolume, Import, Start, the VM's writes (never flushed by the VM:
   making them durable is Stop's job), Stop, Revert, a snapshot volume's
   Start/Stop, and StartVolumes/StopVolumes of a VM's private, root snapshot
   and volatile volumes (with another VM's private the second time): batches
   sync each directory once at their end, in whichever mode (parallel, one
   at a time) the pool measured cheaper; the first two run in each mode. Before each call a mark `qs-begin-K` goes into the log, after
   its reply `qs-end-K`: the checker knows which operations had replied (their
   data is committed) and which one was in flight at each point of the log.
3. Unmount, remove the log-writes device, read the log (logwrites.py) and pick
   the flush and FUA entries of the workload: every one, or a spread sample of
   at least --points (each operation's first and last flush and the first one
   after its reply always among them).
4. For each point, in order: replay the log up to it onto a zeroed file, mount
   a writable snapshot of it (dm-snapshot: the filesystem replays its journal
   there), check, unmount:

   committed   a volume whose CreateVolume or data operation replied has its
               clean image with the content of the last operation that replied
               (or of the one in flight): whole, byte for byte (SHA-256 of the
               known patterns)
   whole       every revision holds a content the volume once had committed;
               a snapshot volume's image holds a content its source had
   nothing else every other file of the pool is a staging name (~XXXXXX,
               -import.img) or a running image, or the point fails
   records     every state record there (not a ~XXXXXX temp) parses whole and
               the records of the pool and of every created volume are there

Any failed check fails the run (exit 1) with the point, the marks around it
and what was found. --skip-flush POINT runs the service with the test seam
QUBES_STORAGED_TEST_SKIP_FLUSH=POINT (lib/test-seam.h) and --expect-damage
inverts the verdict: the run passes only when a check fails, which shows the
checker finds what a missing flush does.
"""

import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
import traceback

import gi

gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))   # tests/: the support package
sys.path.insert(0, HERE)

import logwrites  # noqa: E402
from support.bus import PERMISSIVE_POLICY, Bus  # noqa: E402
from support.calls import DBusCallError, split_gerror  # noqa: E402
from support.loopfs import MAGIC, LoopFs, LoopFsError, fs_magic, run  # noqa: E402
from support.names import pool_path, volume_path  # noqa: E402
import support.service  # noqa: E402

BUS_NAME = 'org.qubes.Storage1'
ROOT = '/org/qubes/Storage1'
MANAGER = 'org.qubes.Storage1.Manager'
POOL = 'org.qubes.Storage1.Pool'
VOLUME = 'org.qubes.Storage1.Volume'
CALL_TIMEOUT_MS = 300 * 1000   # a deadlock guard, never an assertion about speed

MiB = 1 << 20
VOL_SIZE = 4 * MiB
# XFS refuses filesystems below 300 MiB (and a log below 64 MiB)
FS_SIZE = {'btrfs': 128 * MiB, 'xfs': 320 * MiB}
LOG_SIZE = 1024 * MiB
COW_SIZE = 128 * MiB
POOL_NAME = 'pl'
LW_DEV = 'qs-pl-log'
SNAP_DEV = 'qs-pl-snap'


class CheckFailed(Exception):
    pass


def dmsetup(*args):
    # no udev in the guest: dmsetup makes and removes the nodes itself
    return run(['dmsetup', '--noudevrules', '--noudevsync', *args]).stdout.decode()


def dm_create(name, table):
    dmsetup('create', name, '--table', table)
    dmsetup('mknodes', name)
    return f'/dev/mapper/{name}'


def dm_remove(name):
    dmsetup('remove', name)


def losetup(path, readonly=False):
    return run(['losetup', '--show', '-f', *(['-r'] if readonly else []), path]).stdout.decode().strip()


def sectors(dev):
    return int(run(['blockdev', '--getsz', dev]).stdout.decode())


def pattern(tag, size=VOL_SIZE):
    return random.Random(tag).randbytes(size)


def digest(data):
    return hashlib.sha256(data).hexdigest()


def file_digest(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            b = f.read(MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def vm_writes(base, tag):
    """What a VM writes while running: 64 KiB blocks every 256 KiB, over base."""
    data = bytearray(base)
    new = pattern(tag)
    for off in range(0, len(data), 256 * 1024):
        data[off:off + 65536] = new[off:off + 65536]
    return bytes(data), [(off, new[off:off + 65536]) for off in range(0, len(data), 256 * 1024)]


class Volume:
    """What the workload knows of one volume: its committed content after each
    operation and every content it ever had committed."""

    def __init__(self, vid, name, vm, snapshot_of=None, volatile=False):
        self.vid = vid
        self.name = name
        self.vm = vm
        self.snapshot_of = snapshot_of
        self.volatile = volatile  # no committed content, ever
        self.content = None       # committed bytes now (None: no volume)
        self.history = set()      # digests of every committed content

    @property
    def base(self):
        return self.vid.rsplit('/', 1)[1]

    @property
    def dir(self):
        return self.vid.rsplit('/', 1)[0]


class Op:
    """One call of the workload: what each volume's committed content is after
    it (vid -> digest or None), and whether it creates the pool or a volume."""

    def __init__(self, k, what):
        self.k = k
        self.what = what
        self.after = {}           # vid -> digest of the clean image after the reply
        self.created = None       # vid whose record exists after the reply
        self.pool_added = False
        self.begin = self.end = None   # log entry indices of its marks


class Workload:
    def __init__(self, fs, work, binary, skip_flush):
        self.fs = fs
        self.work = work
        self.binary = binary
        self.skip_flush = skip_flush
        self.mnt = os.path.join(work, 'mnt')
        self.pool_dir = os.path.join(self.mnt, 'pool')
        self.ops = []
        self.vols = {}
        self.state = {}           # vid -> committed digest now
        self.notes = []

    # ---- the log-writes device ----------------------------------------

    def setup(self):
        os.makedirs(self.mnt)
        self.data_file = os.path.join(self.work, 'data.img')
        self.log_file = os.path.join(self.work, 'log.img')
        for path, size in ((self.data_file, FS_SIZE[self.fs]), (self.log_file, LOG_SIZE)):
            with open(path, 'wb') as f:
                f.truncate(size)
        self.data_loop = losetup(self.data_file)
        self.log_loop = losetup(self.log_file)
        self.dev = dm_create(LW_DEV, f'0 {sectors(self.data_loop)} log-writes {self.data_loop} {self.log_loop}')
        run(LoopFs.MKFS[self.fs] + [self.dev])
        run(['mount', self.dev, self.mnt])
        if fs_magic(self.mnt) != MAGIC[self.fs]:
            raise LoopFsError(f'{self.mnt} is not {self.fs} after mounting {self.dev}')

    def teardown(self):
        run(['umount', self.mnt])
        dm_remove(LW_DEV)   # logs its final mark and the super block with every entry
        run(['losetup', '-d', self.data_loop])
        run(['losetup', '-d', self.log_loop])

    def mark(self, text):
        dmsetup('message', LW_DEV, '0', 'mark', text)

    # ---- the service ----------------------------------------------------

    def start_service(self):
        self.busdir = tempfile.mkdtemp(prefix='bus-', dir=self.work)
        self.bus = Bus(self.busdir, PERMISSIVE_POLICY)
        self.conn = self.bus.connect()
        env = {'G_DEBUG': 'fatal-criticals'}
        if self.skip_flush:
            env['QUBES_STORAGED_TEST_SKIP_FLUSH'] = self.skip_flush
        self.svc = support.service.Service(os.path.join(self.mnt, 'state'), os.path.join(self.mnt, 'base'),
                                           self.busdir, env=env, binary=self.binary, bus=self.bus.address,
                                           log_name='service.log')
        self.svc.launch(self.conn, timeout=120)

    def stop_service(self):
        try:
            self.svc.stop_checked(timeout=120)
        finally:
            self.conn.close_sync(None)
            self.bus.stop()

    def call(self, path, iface, method, sig='()', args=(), fds=()):
        fdlist = Gio.UnixFDList.new()
        for fd in fds:
            fdlist.append(fd)
        try:
            reply, _ = self.conn.call_with_unix_fd_list_sync(BUS_NAME, path, iface, method, GLib.Variant(sig, args),
                                                             None, 0, CALL_TIMEOUT_MS, fdlist, None)
        except GLib.Error as e:
            name, message = split_gerror(e)
            raise DBusCallError(name or 'unknown', message, e) from None
        return reply.unpack()

    def prop(self, path, iface, name):
        return self.call(path, 'org.freedesktop.DBus.Properties', 'Get', '(ss)', (iface, name))[0]

    def op(self, what, fn, changes=(), created=None, pool_added=False):
        """Runs fn (one call) between the marks of operation K; changes:
        (volume, new content) pairs it commits."""
        o = Op(len(self.ops), what)
        self.mark(f'qs-begin-{o.k}')
        fn()
        self.mark(f'qs-end-{o.k}')
        for vol, content in changes:
            vol.content = content
            vol.history.add(digest(content))
        o.after = {v.vid: (digest(v.content) if v.content is not None else None) for v in self.vols.values()}
        o.created = created
        o.pool_added = pool_added
        self.ops.append(o)
        # the workload is what it thinks it is: the live image matches
        for vol, content in changes:
            got = file_digest(os.path.join(self.pool_dir, vol.vid + '.img'))
            if got != digest(content):
                raise CheckFailed(f'workload: after {what} the live {vol.vid}.img is not what was committed')

    # ---- the operations ---------------------------------------------------

    def vpath(self, vol):
        return volume_path(POOL_NAME, vol.vid)

    def add_pool(self):
        self.op('AddPool', lambda: self.call(ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                                             (POOL_NAME, 'file-reflink',
                                              {'dir_path': self.pool_dir, 'revisions_to_keep': '2'}, {})),
                pool_added=True)

    def create(self, vol, **extra):
        self.vols[vol.vid] = vol
        config = {'name': GLib.Variant('s', vol.name), 'vm': GLib.Variant('s', vol.vm),
                  'size': GLib.Variant('t', VOL_SIZE), 'rw': GLib.Variant('b', True)}
        if vol.snapshot_of:
            config.update(snap_on_start=GLib.Variant('b', True), save_on_stop=GLib.Variant('b', False),
                          source=GLib.Variant('s', vol.snapshot_of.vid))
        elif vol.volatile:
            config.update(snap_on_start=GLib.Variant('b', False), save_on_stop=GLib.Variant('b', False))
        else:
            config.update(save_on_stop=GLib.Variant('b', True), revisions_to_keep=GLib.Variant('i', 2))
        no_content = vol.snapshot_of or vol.volatile
        self.op(f'CreateVolume {vol.vid}',
                lambda: self.call(pool_path(POOL_NAME), POOL, 'CreateVolume', '(a{sv}a{sv})', (config, {})),
                changes=[] if no_content else [(vol, bytes(VOL_SIZE))], created=vol.vid)
        if no_content:
            vol.content = None

    def import_(self, vol, tag):
        data = pattern(tag)
        src = os.path.join(self.work, 'import.src')
        with open(src, 'wb') as f:
            f.write(data)
        fd = os.open(src, os.O_RDONLY)
        try:
            self.op(f'Import {vol.vid} {tag}',
                    lambda: self.call(self.vpath(vol), VOLUME, 'Import', '(hta{sv})', (0, VOL_SIZE, {}), fds=[fd]),
                    changes=[(vol, data)])
        finally:
            os.close(fd)
            os.unlink(src)

    def start(self, vol):
        self.op(f'Start {vol.vid}', lambda: self.call(self.vpath(vol), VOLUME, 'Start', '(a{sv})', ({},)))
        return self.prop(self.vpath(vol), VOLUME, 'Path')

    def vm_session(self, vol, tag):
        """Start, the VM's writes (not flushed: Stop must make them durable), Stop."""
        path = self.start(vol)
        new, blocks = vm_writes(vol.content, tag)
        fd = os.open(path, os.O_WRONLY)
        try:
            for off, b in blocks:
                os.pwrite(fd, b, off)
        finally:
            os.close(fd)
        self.op(f'Stop {vol.vid}', lambda: self.call(self.vpath(vol), VOLUME, 'Stop', '(a{sv})', ({},)),
                changes=[(vol, new)])

    def revert(self, vol, content):
        self.op(f'Revert {vol.vid}', lambda: self.call(self.vpath(vol), VOLUME, 'Revert', '(sa{sv})', ('', {})),
                changes=[(vol, content)])

    def snapshot_session(self, snap):
        self.start(snap)
        self.op(f'Stop {snap.vid}', lambda: self.call(self.vpath(snap), VOLUME, 'Stop', '(a{sv})', ({},)))

    def batch_session(self, vols, origins, tag):
        """StartVolumes, the VM's writes into each origin's running image,
        StopVolumes: the origins commit them."""
        paths = [self.vpath(v) for v in vols]
        names = ' '.join(v.vid for v in vols)
        self.op(f'StartVolumes {names}', lambda: self.call(ROOT, MANAGER, 'StartVolumes', '(aoa{sv})', (paths, {})))
        changes = []
        for i, vol in enumerate(origins):
            new, blocks = vm_writes(vol.content, f'{tag}-{i}')
            fd = os.open(self.prop(self.vpath(vol), VOLUME, 'Path'), os.O_WRONLY)
            try:
                for off, b in blocks:
                    os.pwrite(fd, b, off)
            finally:
                os.close(fd)
            changes.append((vol, new))
        self.op(f'StopVolumes {names}', lambda: self.call(ROOT, MANAGER, 'StopVolumes', '(aoa{sv})', (paths, {})),
                changes=changes)

    def run(self):
        self.setup()
        self.mark('qs-workload')
        self.start_service()
        try:
            a = Volume('appvms/vm1/private', 'private', 'vm1')
            b = Volume('appvms/vm2/private', 'private', 'vm2')
            c = Volume('appvms/vm3/root', 'root', 'vm3', snapshot_of=a)
            self.add_pool()
            self.create(a)
            self.import_(a, 'a1')
            self.create(b)
            self.import_(b, 'b1')
            self.vm_session(a, 'a-vm1')
            after_vm = a.content
            self.import_(a, 'a2')
            self.revert(a, after_vm)
            self.create(c)
            self.snapshot_session(c)
            self.vm_session(b, 'b-vm1')
            self.import_(b, 'b2')
            self.vm_session(a, 'a-vm2')
            d = Volume('appvms/vm4/private', 'private', 'vm4')
            e = Volume('appvms/vm4/root', 'root', 'vm4', snapshot_of=a)
            f = Volume('appvms/vm4/volatile', 'volatile', 'vm4', volatile=True)
            self.create(d)
            self.import_(d, 'd1')
            self.create(e)
            self.create(f)
            self.batch_session([e, d, f], [d], 'd-vm1')
            self.batch_session([e, d, f, b], [d, b], 'd-vm2')
            self.batch_session([e, d, f, b], [d, b], 'd-vm3')
        finally:
            self.stop_service()
        self.mark('qs-workload-end')
        self.teardown()


# ---- the checker -------------------------------------------------------------

class Checker:
    def __init__(self, wl, points_wanted):
        self.wl = wl
        self.points_wanted = points_wanted
        self.sectorsize, self.entries = logwrites.read_log(wl.log_file)
        marks = {e.mark: e.index for e in self.entries if e.mark is not None}
        for o in wl.ops:
            try:
                o.begin, o.end = marks[f'qs-begin-{o.k}'], marks[f'qs-end-{o.k}']
            except KeyError as e:
                raise CheckFailed(f'the log has no mark {e} (logging stopped? dmsetup status said nothing)') from None
        try:
            self.first, self.last = marks['qs-workload'], marks['qs-workload-end']
        except KeyError as e:
            raise CheckFailed(f'the log has no mark {e}') from None

    def choose_points(self):
        flushes = [e.index for e in self.entries[self.first:self.last] if e.is_flush_point]
        if len(flushes) <= self.points_wanted:
            return flushes, len(flushes)
        chosen = set()
        for o in self.wl.ops:
            inside = [i for i in flushes if o.begin < i < o.end]
            if inside:
                chosen.update((inside[0], inside[-1]))
            after = [i for i in flushes if i > o.end]
            if after:
                chosen.add(after[0])
        rest = [i for i in flushes if i not in chosen]
        missing = self.points_wanted - len(chosen)
        if missing > 0 and rest:
            step = len(rest) / missing
            chosen.update(rest[int(j * step)] for j in range(missing))
        return sorted(chosen), len(flushes)

    def situation(self, point):
        """(ops replied before point, the op in flight or None)."""
        done = [o for o in self.wl.ops if o.end < point]
        flying = [o for o in self.wl.ops if o.begin < point < o.end]
        return done, (flying[0] if flying else None)

    def check_point(self, point, root):
        wl = self.wl
        done, flying = self.situation(point)
        last = done[-1] if done else None
        problems = []
        pool_dir = os.path.join(root, 'pool')
        state_dir = os.path.join(root, 'state')

        # records: every one there is whole; the ones that replied are there
        records = self.read_records(state_dir, problems)
        if any(o.pool_added for o in done) and not any(
                r.has_group('Pool') and r.get_string('Pool', 'name') == POOL_NAME for r in records):
            problems.append(f'AddPool replied, but no record of pool {POOL_NAME} is there')
        created = {o.created for o in done if o.created}
        have_record = {r.get_string('Volume', 'vid') for r in records if r.has_group('Volume')}
        for vid in sorted(created - have_record):
            problems.append(f'CreateVolume {vid} replied, but its record is not there')

        for vol in wl.vols.values():
            allowed_clean = set()
            if last is not None and vol.vid in last.after:
                allowed_clean.add(last.after[vol.vid])
            elif vol.vid not in created:
                allowed_clean.add(None)
            if flying is not None:
                allowed_clean.add(flying.after.get(vol.vid))
            d = os.path.join(pool_dir, vol.dir)
            names = os.listdir(d) if os.path.isdir(d) else []
            clean = os.path.join(d, vol.base + '.img')
            got = file_digest(clean) if os.path.exists(clean) else None
            if vol.snapshot_of:
                # its image is a copy of what its source had committed, or none
                if got is not None and got not in vol.snapshot_of.history:
                    problems.append(f'{vol.vid}.img holds a content its source {vol.snapshot_of.vid} never had')
            elif got not in allowed_clean:
                what = 'missing' if got is None else 'holds neither the old nor the new content (torn)'
                problems.append(f'{vol.vid}.img {what}; last reply: {last.what if last else "none"}; '
                                f'in flight: {flying.what if flying else "none"}')
            for n in names:
                if not n.startswith(vol.base) or n == vol.base + '.img':
                    continue
                rest = n[len(vol.base):]
                if '~' in rest or rest in ('-import.img', '-dirty.img'):
                    continue   # staging names and the running image: no committed data
                if rest.startswith('.img.') and rest.endswith('Z'):
                    if file_digest(os.path.join(d, n)) not in vol.history:
                        problems.append(f'revision {vol.dir}/{n} holds a content {vol.vid} never had committed')
                    continue
                problems.append(f'{vol.dir}/{n}: a file no volume owns')
        return problems

    @staticmethod
    def read_records(state_dir, problems):
        records = []
        for dirpath, _, files in os.walk(state_dir):
            for f in files:
                if '~' in f:
                    continue   # a temp of an atomic write: never read as a record
                path = os.path.join(dirpath, f)
                kf = GLib.KeyFile.new()
                try:
                    kf.load_from_file(path, GLib.KeyFileFlags.NONE)
                except GLib.Error as e:
                    problems.append(f'state record {os.path.relpath(path, state_dir)} is not whole: {e.message}')
                    continue
                if not (kf.has_group('Volume') or kf.has_group('Pool')):
                    problems.append(f'state record {os.path.relpath(path, state_dir)} has no Volume or Pool group')
                    continue
                records.append(kf)
        return records

    def run(self, verbose):
        wl = self.wl
        points, nflush = self.choose_points()
        print(f'{wl.fs}: {len(self.entries)} log entries, {nflush} flush/FUA points in the workload, '
              f'checking {len(points)}', flush=True)
        replay_file = os.path.join(wl.work, 'replay.img')
        cow_file = os.path.join(wl.work, 'cow.img')
        with open(cow_file, 'wb') as f:
            f.truncate(COW_SIZE)
        replay = logwrites.Replay(wl.log_file, replay_file, FS_SIZE[wl.fs], self.sectorsize, self.entries)
        origin = cow = None
        failures = []
        mnt = wl.mnt
        try:
            origin = losetup(replay_file, readonly=True)
            cow = losetup(cow_file)
            n = sectors(origin)
            for point in points:
                replay.up_to(point)
                snap = dm_create(SNAP_DEV, f'0 {n} snapshot {origin} {cow} N 8')
                try:
                    if wl.fs == 'btrfs':
                        # forget the devices btrfs saw (the original, earlier
                        # snapshots): a newer generation registered under the
                        # same fsid refuses the mount of an older one
                        run(['btrfs', 'device', 'scan', '--forget'])
                    m = run(['mount', snap, mnt], check=False)
                    if m.returncode != 0:
                        problems = [f'mount failed: {m.stderr.decode(errors="replace").strip()}']
                    else:
                        try:
                            problems = self.check_point(point, mnt)
                        finally:
                            run(['umount', mnt])
                finally:
                    dm_remove(SNAP_DEV)
                done, flying = self.situation(point)
                where = (f'{wl.fs} point {point} ({self.entries[point]!r}); last reply: '
                         f'{done[-1].what if done else "none"}; in flight: {flying.what if flying else "none"}')
                if problems:
                    failures.append((where, problems))
                    print(f'FAIL {where}', flush=True)
                    for p in problems:
                        print(f'    {p}', flush=True)
                elif verbose:
                    print(f'ok   {where}', flush=True)
        finally:
            replay.close()
            if origin:
                run(['losetup', '-d', origin], check=False)
            if cow:
                run(['losetup', '-d', cow], check=False)
        return len(points), failures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--fs', action='append', choices=sorted(FS_SIZE), help='btrfs, xfs (default: both)')
    ap.add_argument('--points', type=int, default=60, help='points checked per filesystem at least, '
                    'when there are more (default 60)')
    ap.add_argument('--skip-flush', metavar='POINT', help='run the service with QUBES_STORAGED_TEST_SKIP_FLUSH')
    ap.add_argument('--expect-damage', action='store_true', help='pass only when some check fails')
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    ap.add_argument('-v', '--verbose', action='store_true')
    ap.add_argument('service', nargs='?', default=support.service.default_binary())
    args = ap.parse_args()
    binary = os.path.abspath(args.service)
    if not os.access(binary, os.X_OK):
        print(f'powerloss: no service binary at {binary}', file=sys.stderr)
        return 1
    if args.skip_flush:
        # the installed build compiles the seams out (lib/test-seam-off.c):
        # it would flush anyway, and the damage run would test nothing
        with open(binary, 'rb') as f:
            if b'QUBES_STORAGED_TEST_SKIP_FLUSH' not in f.read():
                print(f'powerloss: {binary} has no test seams (QUBES_STORAGED_TEST_SKIP_FLUSH): use the test build, '
                      'qubes-storaged-test', file=sys.stderr)
                return 1
    total_failures = 0
    for fs in args.fs or ['btrfs', 'xfs']:
        t0 = time.monotonic()
        work = tempfile.mkdtemp(prefix=f'qs-powerloss-{fs}-')
        wl = Workload(fs, work, binary, args.skip_flush)
        try:
            wl.run()
            t1 = time.monotonic()
            checked, failures = Checker(wl, args.points).run(args.verbose)
        except Exception:
            traceback.print_exc()
            print(f'powerloss {fs}: the run itself failed', flush=True)
            return 1
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        print(f'{fs}: workload {t1 - t0:.0f} s, {checked} points checked in {time.monotonic() - t1:.0f} s, '
              f'{len(failures)} failed', flush=True)
        total_failures += len(failures)
        if args.expect_damage:
            if not failures:
                print(f'powerloss {fs}: with the flush at {args.skip_flush} left out no check failed: '
                      f'the checker cannot see what it is there for', flush=True)
                return 1
            print(f'powerloss {fs}: with the flush at {args.skip_flush} left out the checker found the damage '
                  f'at {len(failures)} of {checked} points', flush=True)
    if args.expect_damage:
        return 0
    return 1 if total_failures else 0


if __name__ == '__main__':
    sys.exit(main())
