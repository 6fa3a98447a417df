"""Crash leftovers never block a user: what a kill leaves in a file or
file-reflink pool (an orphan image of a CreateVolume, a staged import, temp
files of a Start or Stop, export views, probe files) is replaced by the next
CreateVolume of that vid and removed by the next Start and at service start;
a kill inside Remove leaves the volume either fully there or gone; a
file-reflink Start or Stop writes no state record (the running image says
the volume is started), and a service killed while it runs finds it started.

Leftovers are made as a kill leaves them (the files, behind the service's
back), or by SIGKILL of the service at a chosen system call (strace --inject).
"""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'reflink'))

from reflinktest import MiB, ReflinkTestCase, main, storaged, volume_path  # noqa: E402
from support import strace  # noqa: E402


def make_file(path, data=b'leftover'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def read_at(path, off, n):
    with open(path, 'rb') as f:
        f.seek(off)
        return f.read(n)


class LeftoversMixin:
    """Tests for one driver; self.D is the pool directory, self.P its name."""

    driver = None

    def setUp(self):
        super().setUp()
        self.P = 'lp'
        if self.driver == 'file':
            self.D = os.path.join(self.pools_dir, 'lp')
            self.add_file_pool(self.P, dir_path=self.D)
        else:
            self.D = os.path.join(self.mount('btrfs', size=512 * MiB), 'pool')
            self.add_reflink_pool(self.P, self.D)

    def f(self, vid, ending):
        return os.path.join(self.D, vid + ending)

    def leftovers(self, vid):
        """What a kill leaves beside a volume's files: temp files of every
        kind, a staged import, an export view and a probe file."""
        endings = ['.img~Ab12Cd', '-import.img', '-import.img~Zz99Yy']
        endings += ['-cow.img~Qq11Ww', '-cow.img.old~Ee22Rr'] if self.driver == 'file' else \
            ['-dirty.img~Tt33Yy', '.img@export-Uu44Ii', '.img@export-Oo55Pp~Aa66Ss']
        paths = [self.f(vid, e) for e in endings]
        if self.driver == 'file-reflink':
            paths.append(os.path.join(os.path.dirname(self.f(vid, '')), '.reflink-probe~Gg77Hh'))
        for p in paths:
            make_file(p)
        return paths

    def assertGone(self, paths, what):
        left = [p for p in paths if os.path.lexists(p)]
        self.assertEqual(left, [], f'{what}: leftovers still there')

    def origin(self, name='private', vm='work', size=MiB):
        vpath = self.create_volume(self.P, dict(name=name, vm=vm, size=size, rw=True, save_on_stop=True))
        return vpath, f'appvms/{vm}/{name}'

    # ---- CreateVolume ----------------------------------------------------------

    def test_create_replaces_orphan_files_of_its_vid(self):
        vid = 'appvms/work/private'
        # a CreateVolume killed after the image was made, before the record
        make_file(self.f(vid, '.img'), b'orphan data' * 1000)
        extra = [p for p in self.leftovers(vid) if 'reflink-probe' not in p]
        neighbour = self.f('appvms/work/private-x', '.img')
        make_file(neighbour, b'not a leftover of private')
        vpath, _ = self.origin(size=2 * MiB)
        self.assertEqual(vpath, volume_path(self.P, vid))
        img = self.f(vid, '.img')
        self.assertEqual(os.path.getsize(img), 2 * MiB)
        self.assertEqual(read_at(img, 0, 11), bytes(11), 'the new volume holds the orphan data')
        self.assertGone(extra, 'CreateVolume')
        self.assertEqual(read_at(neighbour, 0, 9), b'not a lef')
        self.start(vpath)
        self.stop(vpath)

    # ---- Start -------------------------------------------------------------------

    def test_start_removes_leftovers(self):
        vpath, vid = self.origin()
        extra = self.leftovers(vid)
        probe = [p for p in extra if 'reflink-probe' in p]
        self.start(vpath)
        self.assertGone([p for p in extra if p not in probe and '@export-' not in p], 'Start')
        self.stop(vpath)
        self.restart_service()
        self.assertGone(extra, 'service start')

    # ---- service start -----------------------------------------------------------

    def test_service_start_removes_leftovers(self):
        vpath, vid = self.origin()
        snap = self.create_volume(self.P, dict(name='root', vm='app', size=MiB, snap_on_start=True,
                                               source=vid))
        self.stop_service()
        extra = self.leftovers(vid) + self.leftovers('appvms/app/root')
        self.start_service()
        self.assertGone(extra, 'service start')
        self.assertEqual(self.vprop(vpath, 'IsDirty'), False)
        self.start(snap)
        self.stop(snap)

    # ---- Remove ------------------------------------------------------------------

    def kill_at_unlink_of(self, path, call):
        """Runs call() with the service killed (SIGKILL, by strace) at its first
        unlink of path; waits until the service is gone."""
        st = strace.attach(self.service.proc.pid, ['-f', '-qq', '-o', '/dev/null', '-P', path,
                                                   '-P', os.path.basename(path), '-e', 'trace=unlink,unlinkat',
                                                   '-e', 'inject=unlink,unlinkat:signal=KILL'])
        self.addCleanup(lambda: st.poll() is None and st.kill())
        try:
            call()
        except Exception:  # noqa: BLE001 - the call dies with the service
            pass
        self.service.reap(60)
        st.wait(60)
        st.stderr.close()
        storaged.wait_released(self.bus, storaged.BUS_NAME)

    def test_remove_killed_is_there_or_gone(self):
        second = '-cow.img' if self.driver == 'file' else '.img.1@'
        for name, victim in (('va', '.img'), ('vb', second)):
            with self.subTest(killed_at=victim):
                vpath, vid = self.origin(name=name)
                self.start(vpath)
                self.stop(vpath)
                files = sorted(os.listdir(os.path.dirname(self.f(vid, ''))))
                target = [os.path.join(os.path.dirname(self.f(vid, '')), x) for x in files
                          if x.startswith(name + victim)]
                self.assertTrue(target, f'no file {name}{victim}* in {files}')
                self.kill_at_unlink_of(target[0], lambda: self.remove(vpath))
                self.start_service()
                listed = [v for v, _ in self.list_volumes(self.P)]
                if vid in listed:
                    # fully there: it verifies, starts and stops
                    self.assertTrue(os.path.exists(self.f(vid, '.img')), f'{vid} is listed but has no image')
                    self.verify(vpath)
                    self.start(vpath)
                    self.stop(vpath)
                    self.remove(vpath)
                # gone: the vid can be created again
                vpath, _ = self.origin(name=name)
                self.start(vpath)
                self.stop(vpath)
                self.remove(vpath)
                self.assertEqual([v for v, _ in self.list_volumes(self.P)], [])


class CrashLeftoversFile(LeftoversMixin, ReflinkTestCase):
    driver = 'file'


class CrashLeftoversReflink(LeftoversMixin, ReflinkTestCase):
    driver = 'file-reflink'

    def full_state_dir(self):
        """Restarts the service on a state directory that has no room left:
        every record write fails."""
        self.stop_service()
        state = self.state_dir
        shutil.move(state, state + '.real')
        os.makedirs(state)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', state], check=True)
        self.addCleanup(subprocess.run, ['umount', '-l', state])
        for name in os.listdir(state + '.real'):
            src = os.path.join(state + '.real', name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(state, name))
        self.start_service()
        fd = os.open(os.path.join(state, 'filler'), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b'x' * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        return state

    def records(self, state):
        """Every file of the state directory with its content and mtime."""
        out = {}
        for dirpath, _, files in os.walk(state):
            for name in files:
                path = os.path.join(dirpath, name)
                if name == 'filler':
                    continue
                with open(path, 'rb') as f:
                    out[os.path.relpath(path, state)] = (f.read(), os.stat(path).st_mtime_ns)
        return out

    def test_start_and_stop_write_no_record(self):
        """A started file-reflink volume shows by its running image: Start
        and Stop write no state record, so a full state directory stops no
        VM, and a service killed while the volume runs says Started again
        after its restart, from the storage alone."""
        vpath, vid = self.origin()
        state = self.full_state_dir()
        before = self.records(state)
        self.start(vpath)
        self.assertTrue(os.path.exists(self.f(vid, '-dirty.img')))
        self.assertEqual(self.vprop(vpath, 'Started'), True)
        with open(self.f(vid, '-dirty.img'), 'r+b') as f:
            f.write(b'written while running')
            os.fsync(f.fileno())
        self.assertEqual(self.records(state), before, 'Start wrote a state record')
        self.kill_service()
        self.start_service()
        self.assertEqual(self.vprop(vpath, 'Started'), True)
        self.assertEqual(self.vprop(vpath, 'IsDirty'), True)
        self.stop(vpath)
        self.assertEqual(self.vprop(vpath, 'Started'), False)
        self.assertFalse(os.path.exists(self.f(vid, '-dirty.img')))
        self.assertEqual(read_at(self.f(vid, '.img'), 0, 21), b'written while running')
        self.assertEqual(self.records(state), before, 'Stop wrote a state record')
        # a change of what only the record holds still needs room
        self.assertDBusError('Failed', self.set_rw, vpath, False, contains=('No space left',))
        self.assertEqual(self.vprop(vpath, 'Rw'), True)
        os.unlink(os.path.join(state, 'filler'))
        self.set_rw(vpath, False)
        self.assertEqual(self.vprop(vpath, 'Rw'), False)

if __name__ == '__main__':
    main()
