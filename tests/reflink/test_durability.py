"""Rule 13 (fsync before commit) on btrfs, watched with strace attached to
the running service: a commit fsyncs the running image before renaming it
onto the clean one; every new image (temp file) and staged import is
flushed before its rename; every rename, create and delete in the pool is
followed by an fsync of its directory before the call replies. Needs strace
(fails without it)."""

import glob
import os
import re
import shutil
import signal
import time

from reflinktest import GiB, MiB, ReflinkTestCase, main, random_chunks, write_chunks
from support import strace  # noqa: E402  (reflinktest put tests/ on sys.path)

LINE_RE = re.compile(r'^(?P<ts>\d+\.\d+) (?P<name>\w+)\((?P<args>.*)\) += (?P<ret>-?\d+)')
TOKEN_RE = re.compile(r'"((?:[^"\\]|\\.)*)"|<([^<>]*)>')
TRACED = 'fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,openat,mkdir,mkdirat,rmdir,link,linkat'


class Event:
    def __init__(self, ts, tid, name, args, ret):
        self.ts, self.tid, self.name, self.ret = ts, tid, name, ret
        self.args = args
        self.tokens = []
        for q, a in TOKEN_RE.findall(args):
            self.tokens.append(('s', q) if q or not a else ('fd', a))

    def __repr__(self):
        return f'{self.ts:.6f} [{self.tid}] {self.name}({self.args}) = {self.ret}'

    def paths(self):
        """The paths this call names (rename: source, target)."""
        out, base = [], None
        for kind, v in self.tokens:
            if kind == 'fd':
                base = v
            else:
                out.append(v if v.startswith('/') or base is None else os.path.join(base, v))
                base = None
        return out

    def fd_path(self):
        for kind, v in self.tokens:
            if kind == 'fd':
                return v
        return None


class Strace:
    def __init__(self, pid, workdir):
        self.prefix = os.path.join(workdir, 'strace', 'trace')
        os.makedirs(os.path.dirname(self.prefix))
        self.pid = pid
        self.proc = strace.attach(pid, ['-f', '-ff', '-qq', '-y', '-ttt', '-s', '4096', '-e', 'trace=' + TRACED,
                                        '-o', self.prefix])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        self.proc.stderr.close()

    def events(self):
        out = []
        for fn in glob.glob(self.prefix + '.*'):
            tid = fn.rsplit('.', 1)[1]
            with open(fn, errors='replace') as f:
                for line in f:
                    m = LINE_RE.match(line)
                    if m and int(m.group('ret')) >= 0:
                        out.append(Event(float(m.group('ts')), tid, m.group('name'), m.group('args'),
                                         int(m.group('ret'))))
        out.sort(key=lambda e: e.ts)
        return out


class DurabilityTest(ReflinkTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which('strace'):
            self.fail('strace is missing: apt-get install strace (needed to watch fsync/rename order: the new data is flushed before the rename)')
        self.mnt = self.mount('btrfs')
        self.D = os.path.join(self.mnt, 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=1)

    def traced(self, steps):
        """Runs (label, fn) steps with strace attached; returns
        [(label, [events in that call])]."""
        st = Strace(self.service.proc.pid, self.tmp)
        self.addCleanup(st.stop)
        windows = []
        for label, fn in steps:
            t0 = time.time()
            fn()
            windows.append((label, t0, time.time()))
        time.sleep(0.2)
        st.stop()
        events = st.events()
        return [(label, [e for e in events if a <= e.ts <= b]) for label, a, b in windows]

    def in_pool(self, p):
        return p.startswith(self.D + '/') or p == self.D

    def check_window(self, label, events):
        problems = []
        for i, e in enumerate(events):
            later = events[i + 1:]
            earlier = events[:i]
            changed = []
            if e.name in ('rename', 'renameat', 'renameat2'):
                src, dst = e.paths()[:2]
                if not self.in_pool(dst):
                    continue
                changed = [src, dst]
                # data written since the last flush (a temp file just filled,
                # the VM's running image, a staged import) is flushed before
                # it is renamed into place; a revision was flushed when made
                fresh = '~' in os.path.basename(src) or src.endswith(('-dirty.img', '-import.img'))
                if fresh and not any(x.name in ('fsync', 'fdatasync') and x.fd_path() == src for x in earlier):
                    problems.append(f'{label}: {e} without an fsync/fdatasync of {src} before it')
            elif e.name in ('unlink', 'unlinkat', 'mkdir', 'mkdirat', 'rmdir', 'link', 'linkat'):
                changed = [p for p in e.paths() if self.in_pool(p)]
            elif e.name == 'openat' and 'O_CREAT' in e.args:
                changed = [p for p in e.paths() if self.in_pool(p)]
            changed = [p for p in changed if '.reflink-probe' not in p]
            for p in changed:
                d = os.path.dirname(p)
                if not any(x.name == 'fsync' and x.fd_path() == d for x in later):
                    problems.append(f'{label}: {e} is not followed by an fsync of {d}')
        return problems

    def test_fsync_order(self):
        v = self.origin('r', 'work', 'private', size=GiB)
        f = self.files(self.D, 'appvms/work/private')
        tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        snap = self.snapshot('r', 'work', 'root', 'vm-templates/tpl/root')
        vol = self.volatile('r', 'work')
        self.start(v)
        write_chunks(f.dirty, random_chunks('x', (0,)))
        self.stop(v)
        self.start(v)
        with open(f.dirty, 'r+b') as fh:  # the VM writes and does not flush
            os.pwrite(fh.fileno(), b'\x5a' * MiB, 10 * MiB)
        windows = self.traced([
            ('Stop origin', lambda: self.stop(v)),
            ('Start snapshot', lambda: self.start(snap)),
            ('Start volatile', lambda: self.start(vol)),
            ('Stop snapshot', lambda: self.stop(snap)),
            ('Stop volatile', lambda: self.stop(vol)),
            ('Start origin', lambda: self.start(v)),
            ('Resize', lambda: self.resize(v, 2 * GiB)),
            ('Stop origin again', lambda: self.stop(v)),
            ('Revert', lambda: self.revert(v, '')),
            ('Create', lambda: self.origin('r', 'other', 'private', size=GiB)),
            ('Remove', lambda: self.remove(self.get_volume('r', 'appvms/other/private'))),
        ])
        problems = []
        for label, events in windows:
            self.assertTrue(any(e.name in ('fsync', 'fdatasync') for e in events),
                            f'{label}: strace saw no fsync at all (is the trace working?): {events}')
            problems += self.check_window(label, events)
        # the commit: fsync of the running image, then the rename, then the dir
        stop = dict(windows)['Stop origin']
        renames = [i for i, e in enumerate(stop) if e.name.startswith('rename') and e.paths()[:2] == [f.dirty, f.clean]]
        self.assertTrue(renames, 'Stop of the origin did not rename -dirty.img onto .img:\n' +
                        '\n'.join(map(repr, stop)))
        i = renames[0]
        self.assertTrue(any(e.name in ('fsync', 'fdatasync') and e.fd_path() == f.dirty for e in stop[:i]),
                        'the commit renamed -dirty.img without flushing it in this Stop:\n' +
                        '\n'.join(map(repr, stop)))
        self.assertTrue(any(e.name == 'fsync' and e.fd_path() == f.dir for e in stop[i + 1:]),
                        'no fsync of the directory after the commit rename')
        self.assertEqual(problems, [], 'durability problems:\n' + '\n'.join(problems))
        self.assertEqual(tpl, self.get_volume('r', 'vm-templates/tpl/root'))

    def test_batch_syncs_each_directory_once(self):
        """StartVolumes and StopVolumes of a VM's three volumes (one
        directory) flush each new or committed image before naming it, as
        single calls do, and then sync the VM directory once for the whole
        batch, after its last change and before the reply (single calls sync
        it after every change: 4 times for the Starts, 6 for the Stops)."""
        tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        private = self.origin('r', 'work', 'private', size=GiB)
        root = self.snapshot('r', 'work', 'root', 'vm-templates/tpl/root')
        volatile = self.volatile('r', 'work')
        f = self.files(self.D, 'appvms/work/private')
        vols = [root, private, volatile]
        self.batch('StartVolumes', vols)
        write_chunks(f.dirty, random_chunks('w', (0,)))
        self.batch('StopVolumes', vols)
        steps = []
        for n in range(2):  # whichever mode the pool's batches run in, both times
            steps += [(f'StartVolumes #{n}', lambda: self.batch('StartVolumes', vols)),
                      (f'VM writes #{n}', lambda: write_chunks(f.dirty, random_chunks(f'x{n}', (0,)))),
                      (f'StopVolumes #{n}', lambda: self.batch('StopVolumes', vols))]
        windows = self.traced(steps)
        problems = []
        for label, events in windows:
            if label.startswith('VM writes'):
                continue
            problems += self.check_window(label, events)
            dir_syncs = [e for e in events if e.name == 'fsync' and e.fd_path() == f.dir]
            self.assertEqual(len(dir_syncs), 1, f'{label}: {len(dir_syncs)} fsyncs of {f.dir}, not one:\n' +
                             '\n'.join(map(repr, events)))
            last_change = max(i for i, e in enumerate(events) if e.name.startswith(('rename', 'unlink', 'link')))
            self.assertGreater(events.index(dir_syncs[0]), last_change,
                               f'{label}: the directory was synced before the last change:\n' +
                               '\n'.join(map(repr, events)))
        self.assertEqual(problems, [], 'durability problems:\n' + '\n'.join(problems))
        self.assertFalse(any(self.vprop(v, 'Started') for v in vols))
        self.assertEqual(tpl, self.get_volume('r', 'vm-templates/tpl/root'))


if __name__ == '__main__':
    main()
