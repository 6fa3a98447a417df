"""The on-disk log of the kernel's dm-log-writes target, read and replayed.

The format (Documentation/admin-guide/device-mapper/log-writes.rst and
drivers/md/dm-log-writes.c): sector 0 of the log device holds the super
block, little endian

    u64 magic (0x6a736677736872)  u64 version (1)  u64 nr_entries  u32 sectorsize

and entries follow from byte `sectorsize` on, each one header sector

    u64 sector  u64 nr_sectors  u64 flags  u64 data_len  [mark text]

followed by nr_sectors sectors of the data written, except for a discard (no
data) and a mark (its text, data_len bytes, is in the header sector after the
four fields). `sector` and `nr_sectors` count sectors of `sectorsize` bytes
(the data device's logical block size).

Entries are in the order the writes reached stable storage: a plain write is
logged at the next flush after it completed, a flush after the writes that
completed before it was issued, a FUA write when it completes. So the data
device as it was right after entry i is what power lost after entry i could
leave behind when entry i is a flush or a FUA write; replaying entries 0..i in
order onto a zeroed device makes it.
"""

import ctypes
import ctypes.util
import os
import struct

MAGIC = 0x6a736677736872
VERSION = 1

FLUSH = 1 << 0
FUA = 1 << 1
DISCARD = 1 << 2
MARK = 1 << 3
METADATA = 1 << 4

SUPER = struct.Struct('<QQQI')
ENTRY = struct.Struct('<QQQQ')

COPY_CHUNK = 1 << 20

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)


class LogError(Exception):
    pass


class Entry:
    __slots__ = ('index', 'sector', 'nr_sectors', 'flags', 'data_len', 'data_offset', 'mark')

    def __init__(self, index, sector, nr_sectors, flags, data_len, data_offset, mark):
        self.index = index
        self.sector = sector
        self.nr_sectors = nr_sectors
        self.flags = flags
        self.data_len = data_len
        self.data_offset = data_offset   # byte offset of the data in the log, or None
        self.mark = mark                 # the mark's text, or None

    @property
    def is_flush_point(self):
        """A flush or a FUA write: a point that power loss may leave the device at."""
        return bool(self.flags & (FLUSH | FUA))

    def __repr__(self):
        kinds = [n for bit, n in ((FLUSH, 'flush'), (FUA, 'fua'), (DISCARD, 'discard'), (MARK, 'mark'),
                                  (METADATA, 'meta')) if self.flags & bit]
        what = f'mark {self.mark!r}' if self.mark is not None else f'sector {self.sector}+{self.nr_sectors}'
        return f'<entry {self.index} {"|".join(kinds) or "write"} {what}>'


def read_log(path):
    """(sectorsize, [Entry]) of the log device or file at path."""
    with open(path, 'rb') as f:
        head = f.read(SUPER.size)
        if len(head) < SUPER.size:
            raise LogError(f'{path}: too short for a dm-log-writes super block')
        magic, version, nr_entries, sectorsize = SUPER.unpack(head)
        if magic != MAGIC:
            raise LogError(f'{path}: no dm-log-writes log (magic {magic:#x}, expected {MAGIC:#x})')
        if version != VERSION:
            raise LogError(f'{path}: dm-log-writes log version {version}, this reader knows {VERSION}')
        if sectorsize < 512 or sectorsize & (sectorsize - 1):
            raise LogError(f'{path}: bad sector size {sectorsize}')
        end = os.fstat(f.fileno()).st_size or os.lseek(f.fileno(), 0, os.SEEK_END)
        entries = []
        pos = sectorsize
        for index in range(nr_entries):
            f.seek(pos)
            hdr = f.read(sectorsize)
            if len(hdr) < sectorsize:
                raise LogError(f'{path}: entry {index} of {nr_entries} is cut off at byte {pos}')
            sector, nr_sectors, flags, data_len = ENTRY.unpack_from(hdr)
            mark = None
            data_offset = None
            pos += sectorsize
            if flags & MARK:
                if data_len > sectorsize - ENTRY.size:
                    raise LogError(f'{path}: entry {index}: mark of {data_len} bytes does not fit its sector')
                mark = hdr[ENTRY.size:ENTRY.size + data_len].decode('utf-8', 'replace')
            elif not flags & DISCARD and nr_sectors:
                data_offset = pos
                pos += nr_sectors * sectorsize
                if pos > end:
                    raise LogError(f'{path}: entry {index}: its data runs past the end of the log')
            entries.append(Entry(index, sector, nr_sectors, flags, data_len, data_offset, mark))
        return sectorsize, entries


class Replay:
    """Applies entries in order onto a regular file (a zeroed device at first):
    writes are copied, discards punch holes (they read as zeros, as on the
    loop devices the logged filesystem ran on)."""

    def __init__(self, log_path, target_path, size, sectorsize, entries):
        self.log = os.open(log_path, os.O_RDONLY | os.O_CLOEXEC)
        self.target = os.open(target_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.ftruncate(self.target, size)
        self.size = size
        self.sectorsize = sectorsize
        self.entries = entries
        self.next = 0          # index of the next entry to apply

    def close(self):
        os.close(self.log)
        os.close(self.target)

    def _apply(self, e):
        ss = self.sectorsize
        off, length = e.sector * ss, e.nr_sectors * ss
        if e.flags & MARK or not length:
            return
        if off + length > self.size:
            raise LogError(f'{e!r} reaches past the end of the device ({self.size} bytes)')
        if e.flags & DISCARD:
            if _libc.fallocate(self.target, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, off, length) < 0:
                err = ctypes.get_errno()
                raise OSError(err, f'punching a hole for {e!r}: {os.strerror(err)}')
            return
        src = e.data_offset
        while length:
            n = min(length, COPY_CHUNK)
            data = os.pread(self.log, n, src)
            if len(data) != n:
                raise LogError(f'{e!r}: short read of its data from the log')
            os.pwrite(self.target, data, off)
            src += n
            off += n
            length -= n

    def up_to(self, index):
        """Applies every entry up to and including index (never goes back)."""
        if index + 1 < self.next:
            raise LogError(f'replay is past entry {index} already (next {self.next})')
        while self.next <= index:
            self._apply(self.entries[self.next])
            self.next += 1
        os.fsync(self.target)
