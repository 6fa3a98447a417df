#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUFFER_SIZE (1024 * 1024)
#define BLOCK_SIZE (64 * 1024)

static bool all_zero(const char *p, size_t n) {
        /* compare with itself shifted: zero iff the first byte is zero and
         * every byte equals the previous one */
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static bool cancelled(CopyProgress *p) {
        return p && atomic_load(&p->cancelled);
}

/* Waits until in is readable, the copy is cancelled (-ECANCELED) or in has
 * been silent for the idle timeout (-ETIMEDOUT). */
static int wait_readable(int in, CopyProgress *p) {
        struct pollfd fds[2] = { { .fd = in, .events = POLLIN }, { .fd = p ? p->cancel_fd : -1, .events = POLLIN } };
        unsigned silent_sec = 0;
        for (;;) {
                if (cancelled(p))
                        return -ECANCELED;
                if (p && p->idle_timeout_sec > 0 && silent_sec >= p->idle_timeout_sec)
                        return -ETIMEDOUT;
                int n = poll(fds, p && p->cancel_fd >= 0 ? 2 : 1, 1000);
                if (n == 0)
                        silent_sec++;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n > 0 && !cancelled(p))
                        return 0;
        }
}

static ssize_t read_some(int in, bool seekable, char *buf, size_t n, CopyProgress *p) {
        for (;;) {
                if (!seekable) {
                        int r = wait_readable(in, p);
                        if (r < 0)
                                return r;
                } else if (cancelled(p))
                        return -ECANCELED;
                ssize_t got = read(in, buf, n);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0 && errno == EAGAIN)
                        continue;
                return got < 0 ? -errno : got;
        }
}

/* Writes buf at offset, skipping zero windows. Windows are aligned to
 * offsets in the file, not to the read, so short reads keep holes. */
static int write_blocks(int out, const char *buf, size_t n, uint64_t offset) {
        for (size_t done = 0; done < n;) {
                size_t to_boundary = BLOCK_SIZE - (size_t) ((offset + done) % BLOCK_SIZE);
                size_t len = n - done < to_boundary ? n - done : to_boundary;
                if (!all_zero(buf + done, len)) {
                        for (size_t w = 0; w < len;) {
                                ssize_t r = pwrite(out, buf + done + w, len - w, (off_t) (offset + done + w));
                                if (r < 0 && errno == EINTR)
                                        continue;
                                if (r < 0)
                                        return -errno;
                                w += (size_t) r;
                        }
                }
                done += len;
        }
        return 0;
}

/* Bytes of hole at pos of a regular file (never past its end). */
static uint64_t hole_ahead(int fd, uint64_t pos, uint64_t file_size) {
        if (pos >= file_size)
                return 0;
        off_t data = lseek(fd, (off_t) pos, SEEK_DATA);
        if (data < 0)
                return errno == ENXIO ? file_size - pos : 0;
        return (uint64_t) data > pos ? (uint64_t) data - pos : 0;
}

int stream_copy(int in, int out, uint64_t size, bool check_eof, CopyProgress *p, StorageError *err) {
        struct stat st;
        if (fstat(in, &st) < 0)
                return se_errno(err, errno, "Cannot read the import source");
        bool seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
        char *buf = aligned_alloc(4096, BUFFER_SIZE);
        if (!buf)
                return se_set(err, SE_FAILED, "Out of memory");
        uint64_t copied = 0;
        int r = 0;
        off_t start = seekable ? lseek(in, 0, SEEK_CUR) : 0;
        while (copied < size) {
                /* skip holes of a sparse source without reading them */
                if (S_ISREG(st.st_mode)) {
                        uint64_t skip = hole_ahead(in, (uint64_t) start + copied, (uint64_t) st.st_size);
                        if (skip > size - copied)
                                skip = size - copied;
                        if (skip > 0) {
                                copied += skip;
                                if (p)
                                        atomic_store(&p->bytes, copied);
                                if (lseek(in, start + (off_t) copied, SEEK_SET) < 0) {
                                        r = -errno;
                                        break;
                                }
                                continue;
                        }
                }
                size_t want = size - copied < BUFFER_SIZE ? (size_t) (size - copied) : BUFFER_SIZE;
                ssize_t got = read_some(in, seekable, buf, want, p);
                if (got < 0) {
                        r = (int) got;
                        break;
                }
                if (got == 0)
                        break;
                r = write_blocks(out, buf, (size_t) got, copied);
                if (r < 0)
                        break;
                copied += (uint64_t) got;
                if (p)
                        atomic_store(&p->bytes, copied);
        }
        if (r == 0 && copied < size) {
                free(buf);
                return se_set(err, SE_IMPORT_FAILED, "not enough data (copied %" PRIu64 " bytes, expected %" PRIu64 " bytes)",
                              copied, size);
        }
        if (r == 0 && check_eof) {
                ssize_t more = read_some(in, seekable, buf, 1, p);
                if (more > 0) {
                        free(buf);
                        return se_set(err, SE_IMPORT_FAILED, "too much data (expected %" PRIu64 " bytes)", size);
                }
                if (more < 0)
                        r = (int) more;
        }
        free(buf);
        if (r == -ECANCELED)
                return se_set(err, SE_CANCELLED, "cancelled after %" PRIu64 " of %" PRIu64 " bytes", copied, size);
        if (r == -ETIMEDOUT)
                return se_set(err, SE_IMPORT_FAILED,
                              "no data for %u s (copied %" PRIu64 " of %" PRIu64 " bytes): the import gave up",
                              p->idle_timeout_sec, copied, size);
        if (r < 0)
                return se_errno(err, -r, "Copy failed after %" PRIu64 " bytes", copied);
        if (fdatasync(out) < 0 && errno != EINVAL)
                return se_errno(err, errno, "Cannot flush the imported data");
        return 0;
}
