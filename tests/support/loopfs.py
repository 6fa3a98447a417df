"""Filesystems made for one test or bench run: btrfs, XFS (reflink=1) or ext4
on a sparse image file attached to a loop device from `losetup -f --show`
(never a fixed /dev/loopN), or a tmpfs. cleanup() unmounts and detaches
whatever make() set up. A missing tool or a failed step raises LoopFsError
(an AssertionError: in a test it is a failure, never a skip)."""

import os
import shutil
import subprocess
import time

GiB = 1 << 30

SBIN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'

# statfs f_type of each kind, checked after the mount
MAGIC = {
    'btrfs': 0x9123683e,
    'xfs': 0x58465342,
    'ext4': 0xef53,
    'tmpfs': 0x01021994,
}


class LoopFsError(AssertionError):
    pass


def run(argv, check=True):
    env = dict(os.environ)
    env['PATH'] = SBIN_PATH + ':' + env.get('PATH', '')
    env['LC_ALL'] = 'C'
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if check and p.returncode != 0:
        raise LoopFsError(f'{" ".join(argv)} failed (exit {p.returncode}): '
                          f'{p.stdout.decode(errors="replace")}{p.stderr.decode(errors="replace")}'.strip())
    return p


def fs_magic(path):
    """The f_type of the filesystem holding path (statfs)."""
    return int(run(['stat', '-f', '-c', '%t', path]).stdout.decode().strip(), 16)


class LoopFs:
    """One filesystem of `kind` with its mount point workdir/mnt-NAME and (not
    for tmpfs) its image workdir/fs-NAME.img; NAME defaults to the kind."""

    MKFS = {
        'btrfs': ['mkfs.btrfs', '-q', '-f'],
        'xfs': ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1'],
        'ext4': ['mkfs.ext4', '-q', '-F'],
    }

    def __init__(self, kind, workdir, size=2 * GiB, name=None):
        if kind != 'tmpfs' and kind not in self.MKFS:
            raise LoopFsError(f'no loop filesystem of type {kind}')
        self.kind = kind
        self.size = size
        self.name = name or kind
        self.mountpoint = os.path.join(workdir, f'mnt-{self.name}')
        self.image = os.path.join(workdir, f'fs-{self.name}.img') if kind != 'tmpfs' else None
        self.loopdev = None
        self.mounted = False

    # the names the data suite and the benches use
    fstype = property(lambda self: self.kind)
    mnt = property(lambda self: self.mountpoint)
    dev = property(lambda self: self.loopdev)

    def tools(self):
        return ['mount', 'umount', 'stat'] + ([] if self.kind == 'tmpfs' else [self.MKFS[self.kind][0], 'losetup'])

    def make(self):
        missing = [t for t in self.tools() if not shutil.which(t, path=SBIN_PATH)]
        if missing:
            raise LoopFsError(f'{", ".join(missing)} not installed: a {self.kind} filesystem needs it')
        os.makedirs(self.mountpoint)
        if self.kind == 'tmpfs':
            run(['mount', '-t', 'tmpfs', '-o', f'size={self.size}', 'tmpfs', self.mountpoint])
        else:
            if not os.path.exists('/dev/loop-control'):
                raise LoopFsError('/dev/loop-control is missing: the kernel has no loop device support')
            with open(self.image, 'wb') as f:
                f.truncate(self.size)
            dev = run(['losetup', '-f', '--show', self.image]).stdout.decode().strip()
            if not dev.startswith('/dev/loop'):
                raise LoopFsError(f'losetup gave {dev!r}, not a loop device')
            self.loopdev = dev
            run(self.MKFS[self.kind] + [dev])
            run(['mount', '-t', self.kind, dev, self.mountpoint])
        self.mounted = True
        magic = fs_magic(self.mountpoint)
        if magic != MAGIC[self.kind]:
            raise LoopFsError(f'{self.mountpoint} is not {self.kind} (f_type {magic:#x})')
        return self

    setup = make

    def _attached(self):
        if not self.image:
            return []
        out = run(['losetup', '-n', '-O', 'NAME', '-j', self.image], check=False).stdout.decode()
        return [line.strip() for line in out.splitlines() if line.strip()]

    def cleanup(self):
        errors = []
        if self.mounted:
            # a just-ended process can keep the mount busy for a moment
            for _ in range(20):
                p = run(['umount', self.mountpoint], check=False)
                if p.returncode == 0:
                    break
                time.sleep(0.25)
            else:
                run(['umount', '-l', self.mountpoint], check=False)
                errors.append(f'umount {self.mountpoint} failed: {p.stderr.decode(errors="replace").strip()} '
                              f'(lazily unmounted)')
            self.mounted = False
        # detach what is still attached to the image, and wait for it to go
        deadline = time.monotonic() + 20
        left = self._attached()
        while left and time.monotonic() < deadline:
            for dev in left:
                run(['losetup', '-d', dev], check=False)
            time.sleep(0.1)
            left = self._attached()
        if left:
            errors.append(f'loop devices still attached to {self.image}: {left}')
        self.loopdev = None
        if self.image and os.path.exists(self.image):
            os.unlink(self.image)
        if os.path.isdir(self.mountpoint):
            try:
                os.rmdir(self.mountpoint)
            except OSError as e:
                errors.append(f'cannot remove {self.mountpoint}: {e}')
        if errors:
            raise LoopFsError('cleanup of the loop filesystem failed: ' + '; '.join(errors))
