#include "fileops.h"

#include <dirent.h>
#include <errno.h>
#include <sys/statvfs.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define COPY_CHUNK (1024 * 1024)

/* g_auto(Fd): a file descriptor closed at the end of its scope, unless -1 */
typedef int Fd;
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(Fd, close, -1)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DIR, closedir)

/* ---- directory flushes, deferred to a batch's FoFlushes ---- */

typedef struct Owed {
        int fd;
        char *path;
} Owed;

struct FoFlushes {
        GMutex lock;
        GHashTable *dirs; /* "dev:ino" -> Owed: each directory once */
};

/* The FoFlushes this thread's directory flushes go to, or NULL: at once. */
static __thread FoFlushes *deferred;

static void owed_free(gpointer p) {
        Owed *o = p;
        close(o->fd);
        g_free(o->path);
        g_free(o);
}

FoFlushes *fo_flushes_new(void) {
        FoFlushes *f = g_new0(FoFlushes, 1);
        g_mutex_init(&f->lock);
        f->dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, owed_free);
        return f;
}

void fo_flushes_free(FoFlushes *f) {
        if (!f)
                return;
        g_hash_table_unref(f->dirs);
        g_mutex_clear(&f->lock);
        g_free(f);
}

void fo_flushes_defer(FoFlushes *f) {
        deferred = f;
}

unsigned fo_flushes_owed(FoFlushes *f) {
        g_mutex_lock(&f->lock);
        unsigned n = g_hash_table_size(f->dirs);
        g_mutex_unlock(&f->lock);
        return n;
}

/* Notes fd's directory in f (a duplicate of fd, so that it can be synced
 * after the caller closed it); -1 when it cannot, and then the caller syncs
 * at once. */
static int note_dir(FoFlushes *f, int fd, const char *path) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -1;
        g_autofree char *key = g_strdup_printf("%ju:%ju", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino);
        g_mutex_lock(&f->lock);
        bool known = g_hash_table_contains(f->dirs, key);
        int copy = known ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy >= 0) {
                Owed *o = g_new0(Owed, 1);
                o->fd = copy;
                o->path = g_strdup(path);
                g_hash_table_insert(f->dirs, g_steal_pointer(&key), o);
        }
        g_mutex_unlock(&f->lock);
        return known || copy >= 0 ? 0 : -1;
}

/* The flush of a directory just changed: now, or noted when deferred. */
static int sync_dir(int fd, const char *path, StorageError *err) {
        if (deferred && note_dir(deferred, fd, path) == 0)
                return 0;
        return fsync(fd) < 0 ? se_errno(err, errno, "Cannot sync directory %s", path) : 0;
}

int fo_flushes_run(FoFlushes *f, StorageError *err) {
        g_mutex_lock(&f->lock);
        GHashTable *dirs = g_steal_pointer(&f->dirs);
        f->dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, owed_free);
        g_mutex_unlock(&f->lock);
        int r = 0;
        GHashTableIter it;
        Owed *o;
        g_hash_table_iter_init(&it, dirs);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *) &o))
                /* every directory is synced; the first failure is reported */
                if (fsync(o->fd) < 0 && r == 0)
                        r = se_errno(err, errno, "Cannot sync directory %s", o->path);
        g_hash_table_unref(dirs);
        return r;
}

/* ---- directories ---- */

int fo_fsync_dir(const char *dir, StorageError *err) {
        g_auto(Fd) fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return se_errno(err, errno, "Cannot open directory %s", dir);
        return sync_dir(fd, dir, err);
}

static int fsync_parent(const char *path, StorageError *err) {
        g_autofree char *dir = g_path_get_dirname(path);
        return fo_fsync_dir(dir, err);
}

static int check_is_dir(const char *dir, StorageError *err) {
        struct stat st;
        if (stat(dir, &st) < 0)
                return se_errno(err, errno, "Cannot create directory %s", dir);
        if (!S_ISDIR(st.st_mode))
                return se_errno(err, ENOTDIR, "Cannot create directory %s", dir);
        return 0;
}

int fo_mkdir(const char *dir, StorageError *err) {
        if (mkdir(dir, 0755) == 0)
                return fsync_parent(dir, err);
        if (errno == EEXIST)
                return check_is_dir(dir, err);
        return se_errno(err, errno, "Cannot create directory %s", dir);
}

int fo_mkdir_p(const char *dir, StorageError *err) {
        struct stat st;
        if (stat(dir, &st) == 0)
                return check_is_dir(dir, err);
        if (errno != ENOENT)
                return se_errno(err, errno, "Cannot create directory %s", dir);
        g_autofree char *parent = g_path_get_dirname(dir);
        if (strcmp(parent, dir) != 0 && fo_mkdir_p(parent, err) < 0)
                return -1;
        return fo_mkdir(dir, err);
}

int fo_rmdir_if_empty(const char *dir, StorageError *err) {
        if (rmdir(dir) == 0)
                return fsync_parent(dir, err);
        if (errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST)
                return 0;
        return se_errno(err, errno, "Cannot remove directory %s", dir);
}

/* ---- files ---- */

int fo_remove(const char *path, StorageError *err) {
        if (unlink(path) == 0)
                return fsync_parent(path, err);
        if (errno == ENOENT)
                return 0;
        return se_errno(err, errno, "Cannot remove %s", path);
}

int fo_rename(const char *from, const char *to, StorageError *err) {
        if (rename(from, to) < 0)
                return se_errno(err, errno, "Cannot rename %s to %s", from, to);
        g_autofree char *from_dir = g_path_get_dirname(from);
        g_autofree char *to_dir = g_path_get_dirname(to);
        if (fo_fsync_dir(to_dir, err) < 0)
                return -1;
        if (strcmp(from_dir, to_dir) != 0)
                return fo_fsync_dir(from_dir, err);
        return 0;
}

static bool is_temp_of(const char *entry, const char *base) {
        size_t n = strlen(base);
        return strncmp(entry, base, n) == 0 && entry[n] == '~';
}

int fo_remove_temps(const char *path, StorageError *err) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_autofree char *base = g_path_get_basename(path);
        g_autoptr(DIR) d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : se_errno(err, errno, "Cannot list directory %s", dir);
        bool removed = false;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!is_temp_of(e->d_name, base))
                        continue;
                if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
                        return se_errno(err, errno, "Cannot remove %s/%s", dir, e->d_name);
                removed = true;
        }
        return removed ? fo_fsync_dir(dir, err) : 0;
}

int fo_remove_matching(const char *dir, FoMatchFunc match, void *userdata, StorageError *err) {
        g_autoptr(DIR) d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : se_errno(err, errno, "Cannot list directory %s", dir);
        bool removed = false;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || !match(e->d_name, userdata))
                        continue;
                if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
                        return se_errno(err, errno, "Cannot remove %s/%s", dir, e->d_name);
                removed = true;
        }
        return removed ? fo_fsync_dir(dir, err) : 0;
}

int fo_stat(const char *path, struct stat *st, StorageError *err) {
        if (stat(path, st) == 0)
                return 1;
        if (errno == ENOENT)
                return 0;
        return se_errno(err, errno, "Cannot stat %s", path);
}

int fo_allocated(const char *path, uint64_t *bytes, StorageError *err) {
        struct stat st;
        int r = fo_stat(path, &st, err);
        *bytes = r > 0 ? (uint64_t) st.st_blocks * 512 : 0;
        return r < 0 ? -1 : 0;
}

int fo_fsync_file(const char *path, StorageError *err) {
        g_auto(Fd) fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : se_errno(err, errno, "Cannot open %s", path);
        if (fsync(fd) < 0)
                return se_errno(err, errno, "Cannot sync %s", path);
        return 0;
}

int fo_resize(const char *path, uint64_t size, StorageError *err) {
        if (size > INT64_MAX)
                return se_errno(err, EFBIG, "Cannot resize %s", path);
        g_auto(Fd) fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return se_errno(err, errno, "Cannot open %s", path);
        if (ftruncate(fd, (off_t) size) < 0)
                return se_errno(err, errno, "Cannot resize %s", path);
        if (fsync(fd) < 0)
                return se_errno(err, errno, "Cannot sync %s", path);
        return 0;
}

/* ---- directories under a pool, opened without following links ---- */

void fo_dir_close(FoDir *d) {
        if (d->fd >= 0)
                close(d->fd);
        d->fd = -1;
        g_clear_pointer(&d->path, g_free);
}

char *fo_dir_file(const FoDir *d, const char *name) {
        return g_build_filename(d->path, name, NULL);
}

static int open_dir_nofollow(int parent, const char *name) {
        return openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; -2 when the kernel (or
 * a seccomp filter) has no openat2. */
static int open_beneath(int root, const char *rel) {
#ifdef SYS_openat2
        struct open_how how = {
                .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
        };
        int fd = (int) syscall(SYS_openat2, root, rel, &how, sizeof(how));
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM && errno != E2BIG))
                return fd;
#endif
        return -2;
}

/* One component at a time, each opened with O_NOFOLLOW (and made first when
 * create): the same as RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS for a relative
 * path without "." and ".." components. */
static int walk_beneath(int root, const char *rel, bool create, const char *root_path, StorageError *err) {
        g_auto(GStrv) parts = g_strsplit(rel, "/", -1);
        int fd = dup(root);
        if (fd < 0)
                return se_errno(err, errno, "Cannot open %s", root_path);
        g_autofree char *at = g_strdup(root_path);
        for (char **p = parts; *p; p++) {
                if (**p == '\0' || strcmp(*p, ".") == 0 || strcmp(*p, "..") == 0) {
                        close(fd);
                        return se_set(err, SE_FAILED, "Invalid directory %s/%s", root_path, rel);
                }
                g_autofree char *next = g_build_filename(at, *p, NULL);
                if (create && mkdirat(fd, *p, 0755) == 0 && sync_dir(fd, at, err) < 0) {
                        close(fd);
                        return -1;
                }
                int sub = open_dir_nofollow(fd, *p);
                int e = errno;
                close(fd);
                if (sub < 0) {
                        errno = e;
                        if (e == ENOENT && !create)
                                return -2;
                        if (e == ELOOP || e == ENOTDIR)
                                return se_set(err, SE_FAILED, "Cannot open directory %s: it is a symbolic link or "
                                              "not a directory (never followed under a pool)", next);
                        return se_errno(err, e, "Cannot open directory %s", next);
                }
                fd = sub;
                g_free(at);
                at = g_steal_pointer(&next);
        }
        return fd;
}

int fo_dir_open(FoDir *d, const char *pool_dir, const char *rel, bool create, StorageError *err) {
        *d = (FoDir) FO_DIR_INIT;
        d->path = rel && *rel ? g_build_filename(pool_dir, rel, NULL) : g_strdup(pool_dir);
        g_auto(Fd) root = open(pool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                return errno == ENOENT && !create ? 0 : se_errno(err, errno, "Cannot open directory %s", pool_dir);
        if (!rel || !*rel) {
                d->fd = root;
                root = -1;
                return 0;
        }
        int fd = create ? -2 : open_beneath(root, rel);
        if (fd == -1 && errno == ENOENT)
                return 0;
        if (fd == -1 && (errno == ELOOP || errno == ENOTDIR || errno == EXDEV))
                return se_set(err, SE_FAILED, "Cannot open directory %s: a symbolic link or a file is in the "
                              "way (never followed under a pool)", d->path);
        if (fd == -1)
                return se_errno(err, errno, "Cannot open directory %s", d->path);
        if (fd == -2) {
                fd = walk_beneath(root, rel, create, pool_dir, err);
                if (fd == -2)
                        return 0;
                if (fd < 0)
                        return -1;
        }
        d->fd = fd;
        return 0;
}

static int missing_dir(const FoDir *d, const char *name, StorageError *err) {
        return se_errno(err, ENOENT, "Cannot create %s/%s", d->path, name);
}

/* ---- files, relative to a directory ---- */

int fo_remove_at(const FoDir *d, const char *name, StorageError *err) {
        if (d->fd < 0)
                return 0;
        if (unlinkat(d->fd, name, 0) == 0)
                return sync_dir(d->fd, d->path, err);
        if (errno == ENOENT)
                return 0;
        return se_errno(err, errno, "Cannot remove %s/%s", d->path, name);
}

int fo_rename_at(const FoDir *d, const char *from, const char *to, StorageError *err) {
        if (d->fd < 0 || renameat(d->fd, from, d->fd, to) < 0)
                return se_errno(err, d->fd < 0 ? ENOENT : errno, "Cannot rename %s/%s to %s", d->path, from, to);
        return sync_dir(d->fd, d->path, err);
}

int fo_rmdir_at(const FoDir *d, const char *name, StorageError *err) {
        if (d->fd < 0)
                return 0;
        if (unlinkat(d->fd, name, AT_REMOVEDIR) == 0)
                return sync_dir(d->fd, d->path, err);
        if (errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR)
                return 0;
        return se_errno(err, errno, "Cannot remove directory %s/%s", d->path, name);
}

int fo_remove_matching_at(const FoDir *d, FoMatchFunc match, void *userdata, StorageError *err) {
        if (d->fd < 0)
                return 0;
        int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        g_autoptr(DIR) dir = fd < 0 ? NULL : fdopendir(fd);
        if (!dir) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                return se_errno(err, e, "Cannot list directory %s", d->path);
        }
        bool removed = false;
        struct dirent *e;
        while ((e = readdir(dir))) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || !match(e->d_name, userdata))
                        continue;
                if (unlinkat(d->fd, e->d_name, 0) < 0 && errno != ENOENT)
                        return se_errno(err, errno, "Cannot remove %s/%s", d->path, e->d_name);
                removed = true;
        }
        return removed ? sync_dir(d->fd, d->path, err) : 0;
}

int fo_stat_at(const FoDir *d, const char *name, struct stat *st, StorageError *err) {
        if (d->fd < 0)
                return 0;
        if (fstatat(d->fd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : se_errno(err, errno, "Cannot stat %s/%s", d->path, name);
        if (S_ISLNK(st->st_mode))
                return se_set(err, SE_FAILED, "%s/%s is a symbolic link: never followed under a pool", d->path, name);
        return 1;
}

int fo_open_at(const FoDir *d, const char *name, int flags, StorageError *err) {
        if (d->fd < 0)
                return se_errno(err, ENOENT, "Cannot open %s/%s", d->path, name);
        int fd = openat(d->fd, name, flags | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 && errno == ELOOP)
                return se_set(err, SE_FAILED, "Cannot open %s/%s: it is a symbolic link (never followed under a pool)",
                              d->path, name);
        if (fd < 0)
                return se_errno(err, errno, "Cannot open %s/%s", d->path, name);
        return fd;
}

int fo_allocated_at(const FoDir *d, const char *name, uint64_t *bytes, StorageError *err) {
        struct stat st;
        int r = fo_stat_at(d, name, &st, err);
        *bytes = r > 0 ? (uint64_t) st.st_blocks * 512 : 0;
        return r < 0 ? -1 : 0;
}

int fo_fsync_file_at(const FoDir *d, const char *name, StorageError *err) {
        struct stat st;
        int r = fo_stat_at(d, name, &st, err);
        if (r <= 0)
                return r;
        g_auto(Fd) fd = fo_open_at(d, name, O_RDONLY, err);
        if (fd < 0)
                return -1;
        if (fsync(fd) < 0)
                return se_errno(err, errno, "Cannot sync %s/%s", d->path, name);
        return 0;
}

int fo_resize_at(const FoDir *d, const char *name, uint64_t size, StorageError *err) {
        if (size > INT64_MAX)
                return se_errno(err, EFBIG, "Cannot resize %s/%s", d->path, name);
        g_auto(Fd) fd = fo_open_at(d, name, O_WRONLY, err);
        if (fd < 0)
                return -1;
        if (ftruncate(fd, (off_t) size) < 0)
                return se_errno(err, errno, "Cannot resize %s/%s", d->path, name);
        if (fsync(fd) < 0)
                return se_errno(err, errno, "Cannot sync %s/%s", d->path, name);
        return 0;
}

/* ---- atomic creation ---- */

static int fill_and_flush(int fd, const char *path, FoFillFunc fill, void *userdata, StorageError *err) {
        if (fill(fd, path, userdata, err) < 0)
                return -1;
        if (fdatasync(fd) < 0)
                return se_errno(err, errno, "Cannot flush %s", path);
        return 0;
}

/* Links the unnamed file fd as name, never replacing: 0, 1 if name exists,
 * -1 on error. */
static int link_unnamed(int fd, const FoDir *d, const char *name, const char *path, StorageError *err) {
        if (linkat(fd, "", d->fd, name, AT_EMPTY_PATH) == 0)
                return 0;
        if (errno == EEXIST)
                return 1;
        if (errno != ENOENT && errno != EPERM)
                return se_errno(err, errno, "Cannot create %s", path);
        /* without CAP_DAC_READ_SEARCH: through /proc */
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, proc, d->fd, name, AT_SYMLINK_FOLLOW) == 0)
                return 0;
        return errno == EEXIST ? 1 : se_errno(err, errno, "Cannot create %s", path);
}

/* FO_NO_REPLACE with an unnamed file (O_TMPFILE): no temporary name exists
 * at any time, so a crash leaves nothing and no other writer's temporary
 * file is ever beside the target. Returns -2 when the filesystem has no
 * O_TMPFILE. */
static int fill_unnamed(const FoDir *d, const char *name, const char *path, FoFillFunc fill, void *userdata,
                        StorageError *err) {
        int fd = openat(d->fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0)
                return errno == EISDIR || errno == EOPNOTSUPP || errno == EINVAL
                               ? -2
                               : se_errno(err, errno, "Cannot create a file for %s", path);
        int r = fill_and_flush(fd, path, fill, userdata, err);
        if (r == 0)
                r = link_unnamed(fd, d, name, path, err);
        close(fd);
        if (r != 0)
                return r;
        return sync_dir(d->fd, d->path, err);
}

int fo_make_unique_at(const FoDir *d, const char *prefix, char **made, StorageError *err) {
        static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        if (d->fd < 0)
                return missing_dir(d, prefix, err);
        for (int attempt = 0; attempt < 100; attempt++) {
                char x[7];
                for (int i = 0; i < 6; i++)
                        x[i] = alnum[g_random_int_range(0, (gint32) sizeof(alnum) - 1)];
                x[6] = '\0';
                g_autofree char *candidate = g_strconcat(prefix, x, NULL);
                int fd = openat(d->fd, candidate, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        *made = g_steal_pointer(&candidate);
                        return fd;
                }
                if (errno != EEXIST)
                        return se_errno(err, errno, "Cannot create a file %s/%sXXXXXX", d->path, prefix);
        }
        return se_errno(err, EEXIST, "Cannot create a file %s/%sXXXXXX", d->path, prefix);
}

GPtrArray *fo_list_at(const FoDir *d) {
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        int fd = d->fd < 0 ? -1 : openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dir = fd < 0 ? NULL : fdopendir(fd);
        if (!dir) {
                if (fd >= 0)
                        close(fd);
                return names;
        }
        struct dirent *e;
        while ((e = readdir(dir)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        g_ptr_array_add(names, g_strdup(e->d_name));
        closedir(dir);
        return names;
}

/* "<name>~XXXXXX", made with O_EXCL | O_NOFOLLOW. */
static int make_temp(const FoDir *d, const char *name, char **tmp, StorageError *err) {
        g_autofree char *prefix = g_strconcat(name, "~", NULL);
        return fo_make_unique_at(d, prefix, tmp, err);
}

/* Moves tmp onto name: 0, or 1 if name exists and must not be replaced. */
static int commit_temp(const FoDir *d, const char *tmp, const char *name, FoCreateMode mode, const char *path,
                       StorageError *err) {
        if (mode == FO_REPLACE) {
                if (renameat(d->fd, tmp, d->fd, name) < 0)
                        return se_errno(err, errno, "Cannot rename %s/%s to %s", d->path, tmp, name);
                return 0;
        }
        if (renameat2(d->fd, tmp, d->fd, name, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno == EEXIST)
                return 1;
        if (errno != EINVAL && errno != ENOSYS)
                return se_errno(err, errno, "Cannot rename %s/%s to %s", d->path, tmp, name);
        /* The filesystem has no RENAME_NOREPLACE: link() never replaces. */
        if (linkat(d->fd, tmp, d->fd, name, 0) < 0)
                return errno == EEXIST ? 1 : se_errno(err, errno, "Cannot create %s", path);
        unlinkat(d->fd, tmp, 0);
        return 0;
}

int fo_atomic_fill_at(const FoDir *d, const char *name, FoCreateMode mode, FoFillFunc fill, void *userdata,
                      StorageError *err) {
        g_autofree char *path = fo_dir_file(d, name);
        if (d->fd < 0)
                return missing_dir(d, name, err);
        if (mode == FO_NO_REPLACE) {
                int r = fill_unnamed(d, name, path, fill, userdata, err);
                if (r != -2)
                        return r;
        }
        g_autofree char *tmp = NULL;
        int fd = make_temp(d, name, &tmp, err);
        if (fd < 0)
                return -1;
        int r = fill_and_flush(fd, path, fill, userdata, err);
        if (close(fd) < 0 && r == 0)
                r = se_errno(err, errno, "Cannot write %s", path);
        if (r == 0)
                r = commit_temp(d, tmp, name, mode, path, err);
        if (r != 0) {
                unlinkat(d->fd, tmp, 0);
                return r;
        }
        return sync_dir(d->fd, d->path, err);
}

static int pwrite_all(int fd, const char *buf, size_t len, off_t off, const char *path, StorageError *err) {
        while (len > 0) {
                ssize_t n = pwrite(fd, buf, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return se_errno(err, n < 0 ? errno : EIO, "Cannot write %s", path);
                buf += n;
                len -= (size_t) n;
                off += n;
        }
        return 0;
}

typedef struct Buffer {
        const char *data;
        size_t len;
} Buffer;

static int fill_buffer(int fd, const char *path, void *userdata, StorageError *err) {
        const Buffer *b = userdata;
        return pwrite_all(fd, b->data, b->len, 0, path, err);
}

static int fill_truncate(int fd, const char *path, void *userdata, StorageError *err) {
        uint64_t size = *(const uint64_t *) userdata;
        if (size > INT64_MAX || ftruncate(fd, (off_t) size) < 0)
                return se_errno(err, size > INT64_MAX ? EFBIG : errno, "Cannot create %s of %" PRIu64 " bytes",
                                path, size);
        return 0;
}

int fo_sparse_create_at(const FoDir *d, const char *name, uint64_t size, FoCreateMode mode, StorageError *err) {
        return fo_atomic_fill_at(d, name, mode, fill_truncate, &size, err);
}

/* ---- the same by path (directories the service names, not a pool's) ---- */

/* Opens the directory of path (made first when create); *name: its basename. */
static int parent_open(const char *path, bool create, FoDir *d, char **name, StorageError *err) {
        g_autofree char *dir = g_path_get_dirname(path);
        *name = g_path_get_basename(path);
        *d = (FoDir) FO_DIR_INIT;
        if (create && fo_mkdir_p(dir, err) < 0)
                return -1;
        return fo_dir_open(d, dir, NULL, false, err);
}

int fo_atomic_fill(const char *path, FoCreateMode mode, FoFillFunc fill, void *userdata, StorageError *err) {
        g_auto(FoDir) d = FO_DIR_INIT;
        g_autofree char *name = NULL;
        if (parent_open(path, true, &d, &name, err) < 0)
                return -1;
        return fo_atomic_fill_at(&d, name, mode, fill, userdata, err);
}

int fo_atomic_write(const char *path, const void *data, size_t len, StorageError *err) {
        Buffer b = { data, len };
        return fo_atomic_fill(path, FO_REPLACE, fill_buffer, &b, err);
}

int fo_sparse_create(const char *path, uint64_t size, FoCreateMode mode, StorageError *err) {
        return fo_atomic_fill(path, mode, fill_truncate, &size, err);
}

/* ---- copy ---- */

int fo_ficlone(int dst, int src) {
        int forced = test_seam_ficlone_errno();
        if (forced > 0)
                return forced;
        return ioctl(dst, FICLONE, src) == 0 ? 0 : errno;
}

bool fo_ficlone_may_fall_back(int e) {
        return e == EBADF || e == EINVAL || e == EOPNOTSUPP || e == EXDEV;
}

typedef struct Copy {
        int src, dst;
        const char *src_path, *dst_path;
        bool reflinked;
} Copy;

static int copy_by_reading(const Copy *c, off_t off, off_t len, StorageError *err) {
        g_autofree char *buf = g_malloc(COPY_CHUNK);
        while (len > 0) {
                ssize_t n = pread(c->src, buf, (size_t) MIN(len, COPY_CHUNK), off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return se_errno(err, errno, "Cannot read %s", c->src_path);
                if (n == 0)
                        return 0; /* the source shrank: the final truncate fixes the size */
                if (pwrite_all(c->dst, buf, (size_t) n, off, c->dst_path, err) < 0)
                        return -1;
                off += n;
                len -= n;
        }
        return 0;
}

static bool copy_range_unsupported(int e) {
        return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP;
}

/* Copies [off, off+len) of the source to the same offset of the copy. */
static int copy_range(const Copy *c, off_t off, off_t len, StorageError *err) {
        while (len > 0) {
                loff_t in = off, out = off;
                ssize_t n = copy_file_range(c->src, &in, c->dst, &out, (size_t) MIN(len, (off_t) 1 << 30), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && copy_range_unsupported(errno))
                        return copy_by_reading(c, off, len, err);
                if (n < 0)
                        return se_errno(err, errno, "Cannot copy %s to %s", c->src_path, c->dst_path);
                if (n == 0)
                        return 0;
                off += n;
                len -= n;
        }
        return 0;
}

/* Finds the next data extent [*off, *end) below size: 1, or 0 at the end. */
static int next_extent(const Copy *c, off_t size, off_t *off, off_t *end, StorageError *err) {
        off_t data = lseek(c->src, *off, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
                return 0;
        if (data < 0 && errno == EINVAL) {
                /* No hole support here: everything left is data. */
                *end = size;
                return *off < size;
        }
        if (data < 0)
                return se_errno(err, errno, "Cannot read %s", c->src_path);
        off_t hole = lseek(c->src, data, SEEK_HOLE);
        if (hole < 0)
                return se_errno(err, errno, "Cannot read %s", c->src_path);
        *off = data;
        *end = MIN(hole, size);
        return data < size;
}

/* Holes of the source stay holes; the copy gets the exact size. */
static int sparse_copy(const Copy *c, StorageError *err) {
        struct stat st;
        if (fstat(c->src, &st) < 0)
                return se_errno(err, errno, "Cannot stat %s", c->src_path);
        off_t off = 0, end = 0;
        int r;
        while ((r = next_extent(c, st.st_size, &off, &end, err)) > 0) {
                if (copy_range(c, off, end - off, err) < 0)
                        return -1;
                off = end;
        }
        if (r < 0)
                return -1;
        if (ftruncate(c->dst, st.st_size) < 0)
                return se_errno(err, errno, "Cannot resize %s", c->dst_path);
        return 0;
}

static int fill_copy(int fd, const char *path, void *userdata, StorageError *err) {
        Copy *c = userdata;
        c->dst = fd;
        int e = fo_ficlone(fd, c->src);
        if (e == 0) {
                c->reflinked = true;
                return 0;
        }
        if (!fo_ficlone_may_fall_back(e))
                return se_errno(err, e, "Cannot reflink %s to %s", c->src_path, c->dst_path);
        return sparse_copy(c, err);
}

int fo_copy_at(const FoDir *sd, const char *sname, const FoDir *dd, const char *dname, bool *reflinked,
               StorageError *err) {
        g_autofree char *src = fo_dir_file(sd, sname);
        g_autofree char *dst = fo_dir_file(dd, dname);
        g_auto(Fd) fd = fo_open_at(sd, sname, O_RDONLY, err);
        if (fd < 0)
                return -1;
        Copy c = { .src = fd, .dst = -1, .src_path = src, .dst_path = dst };
        if (fo_atomic_fill_at(dd, dname, FO_REPLACE, fill_copy, &c, err) < 0)
                return -1;
        if (reflinked)
                *reflinked = c.reflinked;
        return 0;
}

int fo_copy(const char *src, const char *dst, bool *reflinked, StorageError *err) {
        g_auto(FoDir) sd = FO_DIR_INIT;
        g_auto(FoDir) dd = FO_DIR_INIT;
        g_autofree char *sname = NULL, *dname = NULL;
        if (parent_open(src, false, &sd, &sname, err) < 0 || parent_open(dst, true, &dd, &dname, err) < 0)
                return -1;
        return fo_copy_at(&sd, sname, &dd, dname, reflinked, err);
}

/* ---- loop devices ---- */

static bool loop_backed_by(const char *dev, const char *real) {
        g_autofree char *file = g_strdup_printf("/sys/block/%s/loop/backing_file", dev);
        g_autofree char *backing = NULL;
        /* no backing file: dev is no (attached) loop device */
        if (!g_file_get_contents(file, &backing, NULL, NULL))
                return false;
        return strcmp(g_strchomp(backing), real) == 0;
}

static int loop_update(const char *dev, StorageError *err) {
        g_autofree char *node = g_strdup_printf("/dev/%s", dev);
        g_auto(Fd) fd = open(node, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return se_errno(err, errno, "Cannot open %s", node);
        if (ioctl(fd, LOOP_SET_CAPACITY, 0) < 0)
                return se_errno(err, errno, "Cannot update the capacity of %s", node);
        return 0;
}

static int loop_set_capacity_real(const char *real, StorageError *err);

int fo_loop_set_capacity(const char *path, StorageError *err) {
        g_autofree char *real = realpath(path, NULL);
        if (!real)
                return se_errno(err, errno, "Cannot resolve %s", path);
        return loop_set_capacity_real(real, err);
}

int fo_loop_set_capacity_at(const FoDir *d, const char *name, StorageError *err) {
        g_auto(Fd) fd = fo_open_at(d, name, O_RDONLY, err);
        if (fd < 0)
                return -1;
        char proc[64], real[PATH_MAX];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, real, sizeof(real) - 1);
        if (n < 0)
                return se_errno(err, errno, "Cannot resolve %s/%s", d->path, name);
        real[n] = '\0';
        return loop_set_capacity_real(real, err);
}

static int loop_set_capacity_real(const char *real, StorageError *err) {
        g_autoptr(DIR) d = opendir("/sys/block");
        if (!d)
                return 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (g_str_has_prefix(e->d_name, "loop") && loop_backed_by(e->d_name, real) &&
                    loop_update(e->d_name, err) < 0)
                        return -1;
        return 0;
}

/* ---- pure helpers ---- */

char *fo_normpath(const char *path) {
        bool absolute = path[0] == '/';
        g_auto(GStrv) parts = g_strsplit(path, "/", -1);
        GPtrArray *out = g_ptr_array_new();
        for (char **p = parts; *p; p++) {
                if (**p == '\0' || strcmp(*p, ".") == 0)
                        continue;
                bool can_pop = out->len > 0 && strcmp(out->pdata[out->len - 1], "..") != 0;
                if (strcmp(*p, "..") == 0 && can_pop)
                        g_ptr_array_remove_index(out, out->len - 1);
                else if (strcmp(*p, "..") != 0 || !absolute)
                        g_ptr_array_add(out, *p);
        }
        g_ptr_array_add(out, NULL);
        g_autofree char *joined = g_strjoinv("/", (char **) out->pdata);
        g_ptr_array_free(out, TRUE);
        if (absolute)
                return g_strconcat("/", joined, NULL);
        return *joined ? g_steal_pointer(&joined) : g_strdup(".");
}

char *fo_iso8601_utc(time_t t) {
        struct tm tm;
        char buf[32];
        if (!gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return g_strdup("");
        return g_strdup(buf);
}

int fo_config_dir_path(GHashTable *config, char **dir, StorageError *err) {
        const char *value = g_hash_table_lookup(config, "dir_path");
        if (!value)
                return se_set(err, SE_INVALID_ARGUMENT, "Missing pool parameter dir_path");
        if (value[0] != '/')
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid dir_path '%s': not an absolute path", value);
        char *norm = fo_normpath(value);
        g_hash_table_insert(config, g_strdup("dir_path"), norm);
        *dir = g_strdup(norm);
        return 0;
}

int fo_dir_usage(const char *dir, PoolUsage *out, StorageError *err) {
        struct statvfs s;
        *out = (PoolUsage) { .has_data = true };
        if (statvfs(dir, &s) < 0)
                return errno == ENOENT ? 0 : se_errno(err, errno, "Cannot read the usage of %s", dir);
        out->size = (uint64_t) s.f_frsize * s.f_blocks;
        out->usage = (uint64_t) s.f_frsize * (s.f_blocks - s.f_bfree);
        return 0;
}
