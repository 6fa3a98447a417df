"""What a user could see in a directory tree, to show that a call changed
nothing (or what it changed): every entry with its type, mode, (with
owner) its uid, and for files size, allocation, mtime and, up to
hash_limit bytes, a content hash."""

import hashlib
import os
import stat

MiB = 1 << 20


def snapshot(root, exclude=(), owner=False, hash_limit=4 * MiB):
    """{relative path: entry} of everything under root (nothing when root
    does not exist); top-level names in exclude are left out with what is
    below them."""
    snap = {}
    if not os.path.exists(root):
        return snap
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in exclude:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel.split(os.sep)[0] in exclude:
                continue
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            uid = (st.st_uid,) if owner else ()
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ('symlink', os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ('dir', oct(st.st_mode)) + uid
            else:
                digest = None
                if stat.S_ISREG(st.st_mode) and st.st_size <= hash_limit:
                    with open(p, 'rb') as fh:
                        digest = hashlib.sha256(fh.read()).hexdigest()
                snap[rel] = ('file', oct(st.st_mode)) + uid + (st.st_size, st.st_blocks, st.st_mtime_ns, digest)
    return snap


def diff(before, after):
    """The entries removed, added and changed between two snapshots, a line each."""
    lines = []
    for k in sorted(set(before) | set(after)):
        if k not in after:
            lines.append(f'  removed: {k} {before[k]}')
        elif k not in before:
            lines.append(f'  added:   {k} {after[k]}')
        elif before[k] != after[k]:
            lines.append(f'  changed: {k} {before[k]} -> {after[k]}')
    return '\n'.join(lines)
