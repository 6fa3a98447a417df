/* Crash-safe file primitives for the file-based drivers (file, file-reflink).
 *
 * New data is always written beside the target (a temporary file
 * "<basename>~XXXXXX" in the same directory), flushed, and committed by one
 * rename; every create, rename or delete is followed by an fsync of the
 * directory it changed (in a batch, one per directory at its end: FoFlushes). Functions return 0 on success or -1 with *err set; the
 * message names the file. All of them do blocking I/O (workers only), except
 * fo_normpath, fo_iso8601_utc and fo_config_dir_path.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "spec.h"
#include "storage-error.h"
#include "test-seam.h"

/* ---- files under a pool, relative to a directory fd ----
 *
 * A pool's files are reached through an FoDir: its VM directory opened below
 * the pool directory without following any symbolic link (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it, else one
 * component at a time with O_NOFOLLOW), and every file in it is opened,
 * made, renamed or deleted relative to that fd with O_NOFOLLOW: a link
 * planted anywhere under the pool is never followed (a link where a file is
 * expected is an error, SE_FAILED). fd -1 means "the directory does not
 * exist": then a file in it is missing (stat 0, remove fine) and creating one
 * fails. */
typedef struct FoDir {
        int fd;
        char *path; /* for messages and paths handed out */
} FoDir;
#define FO_DIR_INIT { -1, NULL }

void fo_dir_close(FoDir *d);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(FoDir, fo_dir_close)
/* rel: "appvms/work" (no "." or ".." components), or NULL for pool_dir
 * itself. create: missing levels of rel are made (pool_dir must exist). */
int fo_dir_open(FoDir *d, const char *pool_dir, const char *rel, bool create, StorageError *err);
char *fo_dir_file(const FoDir *d, const char *name);

int fo_stat_at(const FoDir *d, const char *name, struct stat *st, StorageError *err);
/* O_NOFOLLOW | O_CLOEXEC added; -1 with err set (also when missing). */
int fo_open_at(const FoDir *d, const char *name, int flags, StorageError *err);
int fo_remove_at(const FoDir *d, const char *name, StorageError *err);
int fo_rename_at(const FoDir *d, const char *from, const char *to, StorageError *err);
int fo_rmdir_at(const FoDir *d, const char *name, StorageError *err);
int fo_allocated_at(const FoDir *d, const char *name, uint64_t *bytes, StorageError *err);
int fo_fsync_file_at(const FoDir *d, const char *name, StorageError *err);
int fo_resize_at(const FoDir *d, const char *name, uint64_t size, StorageError *err);
int fo_loop_set_capacity_at(const FoDir *d, const char *name, StorageError *err);
/* Makes a new file prefix + 6 random letters/digits (O_EXCL, O_NOFOLLOW) and
 * returns it open read-write; *made: its name. */
int fo_make_unique_at(const FoDir *d, const char *prefix, char **made, StorageError *err);
/* The entries of the directory (names, g_free); empty when it is missing or
 * unreadable. */
GPtrArray *fo_list_at(const FoDir *d);

/* ---- directory flushes shared by a batch ----
 *
 * A thread that defers its directory flushes to an FoFlushes (a batch of
 * operations on several volumes) only notes each directory it changes, once
 * however often it changes it; fo_flushes_run then syncs each noted
 * directory once, and the batch replies after that. File data is still
 * flushed before the rename or link that names it, so no name ever points at
 * data that is not durable: what waits is only the durability of the names
 * themselves, which nobody was told about yet. Thread-safe: every worker of
 * a batch notes into the same FoFlushes. */
typedef struct FoFlushes FoFlushes;
FoFlushes *fo_flushes_new(void);
void fo_flushes_free(FoFlushes *f);
/* From now on this thread's directory flushes go to f; NULL: at once again. */
void fo_flushes_defer(FoFlushes *f);
/* Directories noted and not yet synced. */
unsigned fo_flushes_owed(FoFlushes *f);
/* Syncs every noted directory, each once, and forgets them; every one is
 * tried, the first failure is reported. */
int fo_flushes_run(FoFlushes *f, StorageError *err);

/* ---- by path ---- */

int fo_fsync_dir(const char *dir, StorageError *err);

/* One level; an existing directory is fine. Syncs the parent when created. */
int fo_mkdir(const char *dir, StorageError *err);
/* Every missing level, syncing the parent of each one it creates. */
int fo_mkdir_p(const char *dir, StorageError *err);

/* A missing file is fine. */
int fo_remove(const char *path, StorageError *err);
/* Syncs the directory of both names. */
int fo_rename(const char *from, const char *to, StorageError *err);
/* A missing or non-empty directory is left alone without error. */
int fo_rmdir_if_empty(const char *dir, StorageError *err);
/* Deletes the temporary files "<basename of path>~*" left by a crash. */
int fo_remove_temps(const char *path, StorageError *err);
/* Deletes every entry of dir (files only) for which match() says true. */
typedef bool (*FoMatchFunc)(const char *entry, void *userdata);
int fo_remove_matching(const char *dir, FoMatchFunc match, void *userdata, StorageError *err);
int fo_remove_matching_at(const FoDir *d, FoMatchFunc match, void *userdata, StorageError *err);

typedef enum FoCreateMode {
        FO_REPLACE,     /* an existing file is replaced */
        FO_NO_REPLACE,  /* an existing file is kept: the call returns 1 */
} FoCreateMode;

/* Fills the freshly made temporary file fd (open read-write, empty); path is
 * the file it will become, for messages. */
typedef int (*FoFillFunc)(int fd, const char *path, void *userdata, StorageError *err);

/* Creates the parent directories, makes the temporary file, fills it,
 * fdatasyncs it and renames it onto path (FO_NO_REPLACE: an unnamed O_TMPFILE
 * file linked as path, where the filesystem has them, so no temporary name
 * ever exists). Returns 0 when path now holds the new
 * data, 1 when mode is FO_NO_REPLACE and path already existed (nothing
 * changed), -1 on error. The temporary file never survives the call. */
int fo_atomic_fill(const char *path, FoCreateMode mode, FoFillFunc fill, void *userdata, StorageError *err);
int fo_atomic_fill_at(const FoDir *d, const char *name, FoCreateMode mode, FoFillFunc fill, void *userdata,
                      StorageError *err);
int fo_sparse_create_at(const FoDir *d, const char *name, uint64_t size, FoCreateMode mode, StorageError *err);
int fo_atomic_write(const char *path, const void *data, size_t len, StorageError *err);
/* A sparse file of size bytes; same return values as fo_atomic_fill. */
int fo_sparse_create(const char *path, uint64_t size, FoCreateMode mode, StorageError *err);

/* fsync of a file's data and metadata; a missing file is fine. */
int fo_fsync_file(const char *path, StorageError *err);
/* Truncates an existing file (never creates one) and fsyncs it. */
int fo_resize(const char *path, uint64_t size, StorageError *err);
/* Tells every loop device backed by path to re-read its size. */
int fo_loop_set_capacity(const char *path, StorageError *err);

/* Returns 1 and fills *st if path exists, 0 if it does not, -1 on error. */
int fo_stat(const char *path, struct stat *st, StorageError *err);
/* Size and used bytes of the filesystem holding dir (statvfs); a missing
 * dir counts as an empty one of size 0. */
int fo_dir_usage(const char *dir, PoolUsage *out, StorageError *err);

/* Allocated bytes (st_blocks * 512); 0 for a missing file. */
int fo_allocated(const char *path, uint64_t *bytes, StorageError *err);

/* One FICLONE of src onto dst (honouring the test seam): 0 when dst is now a
 * reflink of src, else the errno. */
int fo_ficlone(int dst, int src);
/* Whether a FICLONE errno means "no reflinks here" (EBADF, EINVAL,
 * EOPNOTSUPP, EXDEV), where a copy may stand in; any other errno is a failure. */
bool fo_ficlone_may_fall_back(int e);

/* Atomically replaces dst by a copy of src: a reflink (FICLONE) when the
 * filesystem makes one; only when FICLONE fails with EBADF, EINVAL, EOPNOTSUPP
 * or EXDEV a sparse-aware copy (holes stay holes, the size is exact); any other
 * errno fails the copy. *reflinked (may be NULL) tells which happened. */
int fo_copy(const char *src, const char *dst, bool *reflinked, StorageError *err);
int fo_copy_at(const FoDir *sd, const char *sname, const FoDir *dd, const char *dname, bool *reflinked,
               StorageError *err);

/* Lexical normalisation of a path ("//", "." and ".." removed), like
 * Python's os.path.normpath. */
char *fo_normpath(const char *path);
/* "YYYY-MM-DDTHH:MM:SSZ" */
char *fo_iso8601_utc(time_t t);

/* For pools that keep their data under a directory: reads the required
 * "dir_path" parameter, checks it is absolute, normalises it in config (keys
 * and values owned by config, freed with g_free) and returns a copy. No I/O. */
int fo_config_dir_path(GHashTable *config, char **dir, StorageError *err);
