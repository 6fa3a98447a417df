/* The `file` driver (REFERENCE.md §3.2): each volume is a sparse image
 * <dir>/<vid>.img, plus a copy-on-write file <vid>-cow.img that the
 * block-origin and block-snapshot scripts pair with it while the VM runs.
 * For an origin the CoW file holds the data as it was at start: on stop it
 * becomes the single revision <vid>-cow.img.old (or is dropped). A snapshot
 * volume reads its source's image and CoW file and writes to its own CoW file.
 * A volatile volume is just an image made afresh at every start.
 */
#include "driver.h"
#include "file-layout.h"
#include "fileops.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

typedef struct FilePool {
        char *dir;
} FilePool;

typedef enum Kind {
        KIND_VOLATILE,
        KIND_SNAPSHOT,
        KIND_ORIGIN,
} Kind;

static Kind kind_of(const VolumeSpec *v) {
        if (v->snap_on_start)
                return KIND_SNAPSHOT;
        return v->save_on_stop ? KIND_ORIGIN : KIND_VOLATILE;
}

/* The files of one volume. */
typedef struct Files {
        char *img;        /* <vid>.img */
        char *cow;        /* <vid>-cow.img */
        char *old;        /* <vid>-cow.img.old, the revision "old" */
        char *import;     /* <vid>-import.img */
        char *src_img;    /* snapshot volumes: the source's image and CoW file */
        char *src_cow;
        const char *main; /* where the data lives: img, or src_img for a snapshot */
        char *dir;        /* the VM directory holding the volume's files */
        char *name;       /* the volume name: what its file names start with */
} Files;

static void files_clear(Files *f) {
        g_free(f->img);
        g_free(f->cow);
        g_free(f->old);
        g_free(f->import);
        g_free(f->src_img);
        g_free(f->src_cow);
        g_free(f->dir);
        g_free(f->name);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Files, files_clear)

static const char *source_vid(const VolumeSpec *v) {
        if (v->source_spec && v->source_spec->vid && *v->source_spec->vid)
                return v->source_spec->vid;
        return v->source;
}

static int files_get(const FilePool *p, const VolumeSpec *v, Files *f, StorageError *err) {
        /* every call checks the layout again: no file outside it is touched */
        if (fl_check_vid(v->vid, err) < 0)
                return -1;
        g_autofree char *base = g_build_filename(p->dir, v->vid, NULL);
        f->img = g_strconcat(base, ".img", NULL);
        f->cow = g_strconcat(base, "-cow.img", NULL);
        f->old = g_strconcat(f->cow, ".old", NULL);
        f->import = g_strconcat(base, "-import.img", NULL);
        f->main = f->img;
        f->dir = g_path_get_dirname(base);
        f->name = g_path_get_basename(base);
        if (kind_of(v) != KIND_SNAPSHOT)
                return 0;
        const char *src = source_vid(v);
        if (!src || !*src)
                return se_set(err, SE_FAILED, "Volume %s has snap_on_start but no source", v->vid);
        if (fl_check_vid(src, err) < 0)
                return -1;
        g_autofree char *src_base = g_build_filename(p->dir, src, NULL);
        f->src_img = g_strconcat(src_base, ".img", NULL);
        f->src_cow = g_strconcat(src_base, "-cow.img", NULL);
        f->main = f->src_img;
        return 0;
}

/* Makes sure a failure message names the volume. */
static int failed_for(const VolumeSpec *v, StorageError *err) {
        if (!err || !err->message || !v->vid || strstr(err->message, v->vid))
                return -1;
        char *named = g_strdup_printf("Volume %s: %s", v->vid, err->message);
        free(err->message);
        err->message = strdup(named);
        g_free(named);
        return -1;
}

static int check_result(const VolumeSpec *v, int r, StorageError *err) {
        return r < 0 ? failed_for(v, err) : 0;
}

static int require_image(const VolumeSpec *v, const char *path, StorageError *err) {
        struct stat st;
        int r = fo_stat(path, &st, err);
        if (r == 0)
                return se_set(err, SE_MISSING_IMAGE, "Missing image file: %s (volume %s)", path, v->vid);
        return r < 0 ? -1 : 0;
}

/* The size of the data: its image when it exists, else the nominal size. */
static int current_size(const VolumeSpec *v, const Files *f, uint64_t *size, StorageError *err) {
        struct stat st;
        int r = fo_stat(f->main, &st, err);
        *size = r > 0 ? (uint64_t) st.st_size : v->size;
        return r < 0 ? -1 : 0;
}

/* Creates a sparse file unless it exists. */
static int ensure_sparse(const char *path, uint64_t size, StorageError *err) {
        return fo_sparse_create(path, size, FO_NO_REPLACE, err) < 0 ? -1 : 0;
}

typedef struct Leftovers {
        const char *name;
        bool all;         /* every file of the volume, else only what a crash leaves */
} Leftovers;

/* One of the volume's files that the caller throws away: temporary files
 * and the staged import (a crash's leftovers), or everything. */
static bool is_leftover(const char *entry, void *userdata) {
        const Leftovers *l = userdata;
        FlEntry e;
        if (!fl_owned_by(entry, l->name, &e))
                return false;
        bool doomed = l->all || e.temp || e.kind == FL_IMPORT;
        fl_entry_clear(&e);
        return doomed;
}

/* Deletes what a crash may have left of the volume: its temporary files
 * (creations that never replace are unnamed until done, so every
 * temporary file of the volume's names is its own) and an unfinished
 * import. Exactly the volume's own names: "root-x" beside "root" stays. */
static int remove_leftovers(const Files *f, StorageError *err) {
        Leftovers l = { f->name, false };
        return fo_remove_matching(f->dir, is_leftover, &l, err);
}

/* Deletes every file of the volume. */
static int remove_all_files(const Files *f, StorageError *err) {
        Leftovers l = { f->name, true };
        return fo_remove_matching(f->dir, is_leftover, &l, err);
}

/* The directory holding the volume's files (the VM's), or NULL when that is
 * the pool directory itself. */
static char *vm_dir_of(const FilePool *p, const Files *f) {
        char *dir = g_path_get_dirname(f->img);
        if (strcmp(dir, p->dir) == 0)
                g_clear_pointer(&dir, g_free);
        return dir;
}

/* ---- pool ---- */

static int file_pool_open(GHashTable *config, void **pool, StorageError *err) {
        g_autofree char *dir = NULL;
        if (fo_config_dir_path(config, &dir, err) < 0)
                return -1;
        FilePool *p = g_new0(FilePool, 1);
        p->dir = g_steal_pointer(&dir);
        *pool = p;
        return 0;
}

static void file_pool_free(void *pool) {
        FilePool *p = pool;
        if (!p)
                return;
        g_free(p->dir);
        g_free(p);
}

static int file_pool_setup(void *pool, StorageError *err) {
        FilePool *p = pool;
        g_autofree char *appvms = g_build_filename(p->dir, "appvms", NULL);
        g_autofree char *templates = g_build_filename(p->dir, "vm-templates", NULL);
        if (fo_mkdir(p->dir, err) < 0 || fo_mkdir(appvms, err) < 0 || fo_mkdir(templates, err) < 0)
                return -1;
        return 0;
}

static int file_pool_usage(void *pool, PoolUsage *out, StorageError *err) {
        FilePool *p = pool;
        return fo_dir_usage(p->dir, out, err);
}

/* ---- volume: definition and creation ---- */

static int file_volume_init(void *pool, VolumeSpec *v, StorageError *err) {
        g_autofree char *default_vid = NULL;
        const char *vid = v->vid;
        if (!vid || !*vid) {
                if (!v->vm || !*v->vm || !v->name || !*v->name)
                        return se_set(err, SE_INVALID_ARGUMENT, "A volume needs a vid, or a vm and a name");
                vid = default_vid = volume_default_file_vid(v);
        }
        if (fl_check_vid(vid, err) < 0)
                return -1;
        if (v->source && *v->source && fl_check_vid(v->source, err) < 0)
                return -1;
        if (v->snap_on_start && v->save_on_stop)
                return se_set(err, SE_NOT_SUPPORTED,
                              "snap_on_start + save_on_stop not supported by file driver (volume %s)", vid);
        if (default_vid) {
                g_free(v->vid);
                v->vid = g_steal_pointer(&default_vid);
        }
        if (kind_of(v) != KIND_ORIGIN)
                v->revisions_to_keep = 0;
        return 0;
}

/* The service creates a vid only when no volume of the pool has it, so
 * whatever files of the vid exist are leftovers (a crash during an earlier
 * create, or after the record of a Remove was dropped): they are replaced. */
static int create(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0)
                return -1;
        if (kind_of(v) != KIND_SNAPSHOT && v->size == 0)
                return se_set(err, SE_INVALID_ARGUMENT, "Cannot create volume %s of size 0", v->vid);
        if (remove_all_files(&f, err) < 0)
                return -1;
        if (kind_of(v) == KIND_SNAPSHOT)
                return 0;
        g_autofree char *vm_dir = vm_dir_of(p, &f);
        bool had_vm_dir = !vm_dir || g_file_test(vm_dir, G_FILE_TEST_IS_DIR);
        int r = fo_sparse_create(f.img, v->size, FO_REPLACE, err);
        if (r < 0 && !had_vm_dir) {
                /* Leave the disk as it was: drop the directory made for it. */
                StorageError ignored = STORAGE_ERROR_INIT;
                fo_rmdir_if_empty(vm_dir, &ignored);
                se_clear(&ignored);
        }
        return r;
}

static int file_volume_create(void *pool, VolumeSpec *v, StorageError *err) {
        return check_result(v, create(pool, v, err), err);
}

/* Removes every file of the volume (its own names only: a snapshot's
 * source keeps its files), then its VM directory if that is now empty. */
static int remove_volume(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0 || remove_all_files(&f, err) < 0)
                return -1;
        g_autofree char *vm_dir = vm_dir_of(p, &f);
        return vm_dir ? fo_rmdir_if_empty(vm_dir, err) : 0;
}

static int file_volume_remove(void *pool, VolumeSpec *v, StorageError *err) {
        return check_result(v, remove_volume(pool, v, err), err);
}

/* ---- volume: start and stop ---- */

static int start_snapshot(const VolumeSpec *v, const Files *f, StorageError *err) {
        uint64_t size;
        if (require_image(v, f->src_img, err) < 0 || current_size(v, f, &size, err) < 0)
                return -1;
        /* A CoW file left by a crash is replaced by an empty one. */
        if (fo_sparse_create(f->cow, size, FO_REPLACE, err) < 0)
                return -1;
        return ensure_sparse(f->src_cow, size, err);
}

static int start_origin(const VolumeSpec *v, const Files *f, StorageError *err) {
        uint64_t size;
        if (require_image(v, f->img, err) < 0 || current_size(v, f, &size, err) < 0)
                return -1;
        return ensure_sparse(f->cow, size, err);
}

static int start(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0 || remove_leftovers(&f, err) < 0)
                return -1;
        switch (kind_of(v)) {
        case KIND_SNAPSHOT:
                return start_snapshot(v, &f, err);
        case KIND_ORIGIN:
                return start_origin(v, &f, err);
        case KIND_VOLATILE:
        default:
                return fo_sparse_create(f.img, v->size, FO_REPLACE, err);
        }
}

static int file_volume_start(void *pool, VolumeSpec *v, StorageError *err) {
        return check_result(v, start(pool, v, err), err);
}

/* The CoW file (the data as it was at start) becomes the revision "old" when
 * one is kept, else it is dropped together with any older revision; a fresh
 * empty one takes its place. */
static int commit(VolumeSpec *v, const Files *f, StorageError *err) {
        if (!v->rw)
                return se_set(err, SE_READ_ONLY, "Cannot commit volume %s: it is read-only", v->vid);
        struct stat st;
        uint64_t size;
        bool keep = v->revisions_to_keep > 0;
        int has_cow = fo_stat(f->cow, &st, err);
        if (has_cow < 0 || current_size(v, f, &size, err) < 0)
                return -1;
        /* what the VM wrote is on disk before the revision that the CoW file
         * holds is named: the two always belong together */
        if (fo_fsync_file(f->img, err) < 0 || (has_cow && fo_fsync_file(f->cow, err) < 0))
                return -1;
        if (has_cow && keep && fo_rename(f->cow, f->old, err) < 0)
                return -1;
        if (!keep && fo_remove(f->old, err) < 0)
                return -1;
        return fo_sparse_create(f->cow, size, FO_REPLACE, err);
}

/* A volatile volume keeps the size its image had. */
static int stop_volatile(VolumeSpec *v, const Files *f, StorageError *err) {
        struct stat st;
        int r = fo_stat(f->img, &st, err);
        if (r < 0)
                return -1;
        if (r > 0)
                v->size = (uint64_t) st.st_size;
        return fo_remove(f->img, err);
}

static int stop(const FilePool *p, VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0)
                return -1;
        switch (kind_of(v)) {
        case KIND_ORIGIN:
                return commit(v, &f, err);
        case KIND_SNAPSHOT:
                return fo_remove(f.cow, err);
        case KIND_VOLATILE:
        default:
                return stop_volatile(v, &f, err);
        }
}

static int file_volume_stop(void *pool, VolumeSpec *v, StorageError *err) {
        return check_result(v, stop(pool, v, err), err);
}

/* ---- volume: checks and changes ---- */

static int verify(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0)
                return -1;
        if (kind_of(v) == KIND_VOLATILE)
                return 0;
        return require_image(v, f.main, err);
}

static int file_volume_verify(void *pool, VolumeSpec *v, StorageError *err) {
        return check_result(v, verify(pool, v, err), err);
}

/* Never creates a missing image: then only the nominal size changes. */
static int resize(const FilePool *p, VolumeSpec *v, uint64_t size, StorageError *err) {
        g_auto(Files) f = { 0 };
        struct stat st;
        if (files_get(p, v, &f, err) < 0)
                return -1;
        int r = fo_stat(f.main, &st, err);
        if (r < 0)
                return -1;
        if (r > 0 && (fo_resize(f.main, size, err) < 0 || fo_loop_set_capacity(f.main, err) < 0))
                return -1;
        v->size = size;
        return 0;
}

static int file_volume_resize(void *pool, VolumeSpec *v, uint64_t size, StorageError *err) {
        return check_result(v, resize(pool, v, size, err), err);
}

static int file_volume_revert(void *pool, VolumeSpec *v, const char *rev, StorageError *err) {
        return se_set(err, SE_NOT_SUPPORTED, "Volume %s: the file driver cannot revert", v->vid);
}

/* ---- volume: moving data ---- */

static int import_begin(const FilePool *p, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0 || fo_remove_temps(f.import, err) < 0)
                return -1;
        if (size == 0 && current_size(v, &f, &size, err) < 0)
                return -1;
        if (fo_sparse_create(f.import, size, FO_REPLACE, err) < 0)
                return -1;
        *path = g_strdup(f.import);
        return 0;
}

static int file_volume_import_begin(void *pool, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        return check_result(v, import_begin(pool, v, size, path, err), err);
}

/* The staged image replaces the image (the service flushed it). When the
 * staging file was handed to a client, that client may still write through
 * its fd: the image becomes a new file with a copy of the data (a reflink
 * where the filesystem makes one), never the inode the client holds. */
static int import_commit(VolumeSpec *v, const Files *f, bool handed_out, StorageError *err) {
        struct stat st;
        int r = fo_stat(f->import, &st, err);
        if (r == 0)
                return se_set(err, SE_FAILED, "No import in progress on volume %s", v->vid);
        if (r < 0)
                return -1;
        if (handed_out) {
                if (fo_copy(f->import, f->img, NULL, err) < 0 || fo_remove(f->import, err) < 0)
                        return -1;
        } else if (fo_rename(f->import, f->img, err) < 0)
                return -1;
        v->size = (uint64_t) st.st_size;
        return 0;
}

static int import_end(const FilePool *p, VolumeSpec *v, bool success, bool handed_out, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0)
                return -1;
        if (success)
                return import_commit(v, &f, handed_out, err);
        return fo_remove(f.import, err);
}

static int file_volume_import_end(void *pool, VolumeSpec *v, bool success, bool handed_out, StorageError *err) {
        return check_result(v, import_end(pool, v, success, handed_out, err), err);
}

/* The live image: the file driver makes no stable copy. */
static int export(const FilePool *p, const VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(p, v, &f, err) < 0 || require_image(v, f.main, err) < 0)
                return -1;
        *path = g_strdup(f.main);
        *stable = false;
        return 0;
}

static int file_volume_export(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        return check_result(v, export(pool, v, path, stable, err), err);
}

static int file_volume_export_end(void *pool, VolumeSpec *v, const char *path, StorageError *err) {
        return 0;
}

/* ---- volume: query ---- */

static int sum_allocated(const char *const *paths, size_t n, uint64_t *total, StorageError *err) {
        *total = 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t bytes;
                if (fo_allocated(paths[i], &bytes, err) < 0)
                        return -1;
                *total += bytes;
        }
        return 0;
}

static int query_usage(const VolumeSpec *v, const Files *f, uint64_t *usage, StorageError *err) {
        const char *origin[] = { f->img, f->cow };
        const char *snapshot[] = { f->cow };
        const char *volatile_[] = { f->img };
        switch (kind_of(v)) {
        case KIND_ORIGIN:
                return sum_allocated(origin, G_N_ELEMENTS(origin), usage, err);
        case KIND_SNAPSHOT:
                return sum_allocated(snapshot, G_N_ELEMENTS(snapshot), usage, err);
        case KIND_VOLATILE:
        default:
                return sum_allocated(volatile_, G_N_ELEMENTS(volatile_), usage, err);
        }
}

/* An origin is dirty while its CoW file holds data. */
static int query_dirty(const VolumeSpec *v, const Files *f, bool *dirty, StorageError *err) {
        uint64_t bytes = 0;
        *dirty = false;
        if (!v->save_on_stop)
                return 0;
        if (fo_allocated(f->cow, &bytes, err) < 0)
                return -1;
        *dirty = bytes > 0;
        return 0;
}

static int query_revisions(const Files *f, VolumeInfo *out, StorageError *err) {
        struct stat st;
        int r = fo_stat(f->old, &st, err);
        if (r > 0) {
                g_autofree char *ts = fo_iso8601_utc(st.st_ctime);
                volume_info_add_revision(out, "old", ts);
        }
        return r < 0 ? -1 : 0;
}

static void query_block_device(const VolumeSpec *v, const Files *f, VolumeInfo *out) {
        switch (kind_of(v)) {
        case KIND_ORIGIN:
                out->bdev_path = g_strjoin(":", f->img, f->cow, NULL);
                out->bdev_script = g_strdup("block-origin");
                break;
        case KIND_SNAPSHOT:
                out->bdev_path = g_strjoin(":", f->src_img, f->src_cow, f->cow, NULL);
                out->bdev_script = g_strdup("block-snapshot");
                break;
        case KIND_VOLATILE:
        default:
                out->bdev_path = g_strdup(f->img);
                out->bdev_script = g_strdup("");
                break;
        }
        out->bdev_devtype = g_strdup("disk");
        out->bdev_rw = v->rw;
}

/* Fills what it can: each failing part leaves its default. */
static int query(const FilePool *p, const VolumeSpec *v, VolumeInfo *out, StorageError *err) {
        g_auto(Files) f = { 0 };
        out->size = v->size;
        if (files_get(p, v, &f, err) < 0)
                return -1;
        out->path = g_strdup(f.main);
        query_block_device(v, &f, out);
        int r = 0;
        r |= current_size(v, &f, &out->size, err);
        r |= query_usage(v, &f, &out->usage, err);
        r |= query_dirty(v, &f, &out->dirty, err);
        r |= query_revisions(&f, out, err);
        return r < 0 ? -1 : 0;
}

static int file_volume_query(void *pool, const VolumeSpec *v, VolumeInfo *out, StorageError *err) {
        *out = (VolumeInfo) { 0 };
        int r = query(pool, v, out, err);
        volume_info_fill_defaults(out);
        return check_result(v, r, err);
}

/* At service start no operation runs: whatever a crash left goes. */
static int file_volume_cleanup(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = { 0 };
        if (files_get(pool, v, &f, err) < 0)
                return failed_for(v, err);
        return check_result(v, remove_leftovers(&f, err), err);
}

static const char *const file_params[] = { "revisions_to_keep", "dir_path", NULL };

const Driver driver_file = {
        .name = "file",
        .params = file_params,
        .max_revisions_to_keep = 1,
        .creates_volumes = true,
        .can_shrink = false,
        .pool_open = file_pool_open,
        .pool_free = file_pool_free,
        .pool_setup = file_pool_setup,
        .pool_usage = file_pool_usage,
        .pool_scan = NULL,
        .volume_init = file_volume_init,
        .volume_create = file_volume_create,
        .volume_remove = file_volume_remove,
        .volume_start = file_volume_start,
        .volume_stop = file_volume_stop,
        .volume_verify = file_volume_verify,
        .volume_resize = file_volume_resize,
        .volume_revert = file_volume_revert,
        .volume_query = file_volume_query,
        .volume_import_begin = file_volume_import_begin,
        .volume_import_end = file_volume_import_end,
        .volume_import_clone = NULL,
        .volume_export = file_volume_export,
        .volume_export_end = file_volume_export_end,
        .volume_cleanup = file_volume_cleanup,
};
