/* The `file` driver (docs/drivers.md, "file"): each volume is a sparse image
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

/* One file of a volume: a name in a directory opened below the pool (never
 * through a symbolic link), and its full path for messages and scripts. */
typedef struct File {
        const FoDir *dir;
        char *name;
        char *path;
} File;

/* The files of one volume. */
typedef struct Files {
        FoDir dir;        /* the VM directory holding the volume's files */
        FoDir src_dir;    /* snapshot volumes: the source's VM directory */
        char *name;       /* the volume name: what its file names start with */
        File img;         /* <vid>.img */
        File cow;         /* <vid>-cow.img */
        File old;         /* <vid>-cow.img.old, the revision "old" */
        File import;      /* <vid>-import.img */
        File src_img;     /* snapshot volumes: the source's image and CoW file */
        File src_cow;
        const File *main; /* where the data lives: img, or src_img for a snapshot */
} Files;

#define FILES_INIT { .dir = FO_DIR_INIT, .src_dir = FO_DIR_INIT }

static void file_clear(File *x) {
        g_free(x->name);
        g_free(x->path);
}

static void files_clear(Files *f) {
        File *all[] = { &f->img, &f->cow, &f->old, &f->import, &f->src_img, &f->src_cow };
        for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
                file_clear(all[i]);
        fo_dir_close(&f->dir);
        fo_dir_close(&f->src_dir);
        g_free(f->name);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Files, files_clear)

static void file_set(File *x, const FoDir *dir, const char *name, FlKind kind) {
        x->dir = dir;
        x->name = fl_file_name(name, kind);
        x->path = fo_dir_file(dir, x->name);
}

static int x_stat(const File *x, struct stat *st, StorageError *err) {
        return fo_stat_at(x->dir, x->name, st, err);
}

static int x_remove(const File *x, StorageError *err) {
        return fo_remove_at(x->dir, x->name, err);
}

static int x_sparse(const File *x, uint64_t size, FoCreateMode mode, StorageError *err) {
        return fo_sparse_create_at(x->dir, x->name, size, mode, err);
}

static int x_allocated(const File *x, uint64_t *bytes, StorageError *err) {
        return fo_allocated_at(x->dir, x->name, bytes, err);
}

static const char *source_vid(const VolumeSpec *v) {
        if (v->source_spec && v->source_spec->vid && *v->source_spec->vid)
                return v->source_spec->vid;
        return v->source;
}

/* Opens the volume's directory (made when create) and names its files.
 * Every call checks the layout again: no file outside it is touched. */
static int files_get(const FilePool *p, const VolumeSpec *v, bool create, Files *f, StorageError *err) {
        f->dir = (FoDir) FO_DIR_INIT;
        f->src_dir = (FoDir) FO_DIR_INIT;
        if (fl_check_vid(v->vid, err) < 0)
                return -1;
        g_autofree char *vm_dir = NULL;
        fl_split_vid(v->vid, &vm_dir, &f->name);
        if (fo_dir_open(&f->dir, p->dir, vm_dir, create, err) < 0)
                return -1;
        file_set(&f->img, &f->dir, f->name, FL_IMAGE);
        file_set(&f->cow, &f->dir, f->name, FL_COW);
        file_set(&f->old, &f->dir, f->name, FL_COW_OLD);
        file_set(&f->import, &f->dir, f->name, FL_IMPORT);
        f->main = &f->img;
        if (volume_kind(v) != VOLUME_SNAPSHOT)
                return 0;
        const char *src = source_vid(v);
        if (!src || !*src)
                return se_set(err, SE_FAILED, "Volume %s has snap_on_start but no source", v->vid);
        if (fl_check_vid(src, err) < 0)
                return -1;
        g_autofree char *src_vm_dir = NULL, *src_name = NULL;
        fl_split_vid(src, &src_vm_dir, &src_name);
        if (fo_dir_open(&f->src_dir, p->dir, src_vm_dir, false, err) < 0)
                return -1;
        file_set(&f->src_img, &f->src_dir, src_name, FL_IMAGE);
        file_set(&f->src_cow, &f->src_dir, src_name, FL_COW);
        f->main = &f->src_img;
        return 0;
}

static int require_image(const VolumeSpec *v, const File *x, StorageError *err) {
        struct stat st;
        int r = x_stat(x, &st, err);
        if (r == 0)
                return se_set(err, SE_MISSING_IMAGE, "Missing image file: %s (volume %s)", x->path, v->vid);
        return r < 0 ? -1 : 0;
}

/* The size of the data: its image when it exists, else the nominal size. */
static int current_size(const VolumeSpec *v, const Files *f, uint64_t *size, StorageError *err) {
        struct stat st;
        int r = x_stat(f->main, &st, err);
        *size = r > 0 ? (uint64_t) st.st_size : v->size;
        return r < 0 ? -1 : 0;
}

/* Creates a sparse file unless it exists. */
static int ensure_sparse(const File *x, uint64_t size, StorageError *err) {
        return x_sparse(x, size, FO_NO_REPLACE, err) < 0 ? -1 : 0;
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
        return fo_remove_matching_at(&f->dir, is_leftover, &l, err);
}

/* Deletes every file of the volume. */
static int remove_all_files(const Files *f, StorageError *err) {
        Leftovers l = { f->name, true };
        return fo_remove_matching_at(&f->dir, is_leftover, &l, err);
}

/* Removes the volume's VM directory when it is empty. */
static int remove_vm_dir_if_empty(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_autofree char *vm_dir = NULL, *name = NULL;
        fl_split_vid(v->vid, &vm_dir, &name);
        g_autofree char *parent = g_path_get_dirname(vm_dir), *vm = g_path_get_basename(vm_dir);
        g_auto(FoDir) d = FO_DIR_INIT;
        if (fo_dir_open(&d, p->dir, parent, false, err) < 0)
                return -1;
        return fo_rmdir_at(&d, vm, err);
}

/* Whether the volume's VM directory exists. */
static int vm_dir_exists(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_autofree char *vm_dir = NULL, *name = NULL;
        fl_split_vid(v->vid, &vm_dir, &name);
        g_auto(FoDir) d = FO_DIR_INIT;
        if (fo_dir_open(&d, p->dir, vm_dir, false, err) < 0)
                return -1;
        return d.fd >= 0;
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
                vid = default_vid = fl_default_vid(v->vm, v->name, v->template_vm);
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
        if (volume_kind(v) != VOLUME_ORIGIN)
                v->revisions_to_keep = 0;
        return 0;
}

/* The service creates a vid only when no volume of the pool has it, so
 * whatever files of the vid exist are leftovers (a crash during an earlier
 * create, or after the record of a Remove was dropped): they are replaced. */
static int create(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        bool snap = volume_kind(v) == VOLUME_SNAPSHOT;
        if (fl_check_vid(v->vid, err) < 0)
                return -1;
        if (!snap && v->size == 0)
                return se_set(err, SE_INVALID_ARGUMENT, "Cannot create volume %s of size 0", v->vid);
        int had_vm_dir = vm_dir_exists(p, v, err);
        if (had_vm_dir < 0)
                return -1;
        g_auto(Files) f = FILES_INIT;
        int r = files_get(p, v, !snap, &f, err);
        if (r == 0)
                r = remove_all_files(&f, err);
        if (r == 0 && !snap)
                r = x_sparse(&f.img, v->size, FO_REPLACE, err);
        if (r < 0 && !had_vm_dir) {
                /* Leave the disk as it was: drop the directory made for it. */
                StorageError ignored = STORAGE_ERROR_INIT;
                remove_vm_dir_if_empty(p, v, &ignored);
                se_clear(&ignored);
        }
        return r;
}

static int file_volume_create(void *pool, VolumeSpec *v, StorageError *err) {
        return create(pool, v, err);
}

/* Removes every file of the volume (its own names only: a snapshot's
 * source keeps its files), then its VM directory if that is now empty. */
static int remove_volume(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, false, &f, err) < 0 || remove_all_files(&f, err) < 0)
                return -1;
        return remove_vm_dir_if_empty(p, v, err);
}

static int file_volume_remove(void *pool, VolumeSpec *v, StorageError *err) {
        return remove_volume(pool, v, err);
}

/* ---- volume: start and stop ---- */

static int start_snapshot(const VolumeSpec *v, const Files *f, StorageError *err) {
        uint64_t size;
        if (require_image(v, &f->src_img, err) < 0 || current_size(v, f, &size, err) < 0)
                return -1;
        /* A CoW file left by a crash is replaced by an empty one. */
        if (x_sparse(&f->cow, size, FO_REPLACE, err) < 0)
                return -1;
        return ensure_sparse(&f->src_cow, size, err);
}

static int start_origin(const VolumeSpec *v, const Files *f, StorageError *err) {
        uint64_t size;
        if (require_image(v, &f->img, err) < 0 || current_size(v, f, &size, err) < 0)
                return -1;
        return ensure_sparse(&f->cow, size, err);
}

static int start(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, true, &f, err) < 0 || remove_leftovers(&f, err) < 0)
                return -1;
        switch (volume_kind(v)) {
        case VOLUME_SNAPSHOT:
                return start_snapshot(v, &f, err);
        case VOLUME_ORIGIN:
                return start_origin(v, &f, err);
        case VOLUME_VOLATILE:
        default:
                return x_sparse(&f.img, v->size, FO_REPLACE, err);
        }
}

static int file_volume_start(void *pool, VolumeSpec *v, StorageError *err) {
        return start(pool, v, err);
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
        int has_cow = x_stat(&f->cow, &st, err);
        if (has_cow < 0 || current_size(v, f, &size, err) < 0)
                return -1;
        /* what the VM wrote is on disk before the revision that the CoW file
         * holds is named: the two always belong together */
        if (fo_fsync_file_at(&f->dir, f->img.name, err) < 0 ||
            (has_cow && fo_fsync_file_at(&f->dir, f->cow.name, err) < 0))
                return -1;
        if (has_cow && keep && fo_rename_at(&f->dir, f->cow.name, f->old.name, err) < 0)
                return -1;
        if (!keep && x_remove(&f->old, err) < 0)
                return -1;
        return x_sparse(&f->cow, size, FO_REPLACE, err);
}

/* A volatile volume keeps the size its image had. */
static int stop_volatile(VolumeSpec *v, const Files *f, StorageError *err) {
        struct stat st;
        int r = x_stat(&f->img, &st, err);
        if (r < 0)
                return -1;
        if (r > 0)
                v->size = (uint64_t) st.st_size;
        return x_remove(&f->img, err);
}

static int stop(const FilePool *p, VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, false, &f, err) < 0)
                return -1;
        switch (volume_kind(v)) {
        case VOLUME_ORIGIN:
                return commit(v, &f, err);
        case VOLUME_SNAPSHOT:
                return x_remove(&f.cow, err);
        case VOLUME_VOLATILE:
        default:
                return stop_volatile(v, &f, err);
        }
}

static int file_volume_stop(void *pool, VolumeSpec *v, StorageError *err) {
        return stop(pool, v, err);
}

/* ---- volume: checks and changes ---- */

static int verify(const FilePool *p, const VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, false, &f, err) < 0)
                return -1;
        if (volume_kind(v) == VOLUME_VOLATILE)
                return 0;
        return require_image(v, f.main, err);
}

static int file_volume_verify(void *pool, VolumeSpec *v, StorageError *err) {
        return verify(pool, v, err);
}

/* Never creates a missing image: then only the nominal size changes. */
static int resize(const FilePool *p, VolumeSpec *v, uint64_t size, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        struct stat st;
        if (files_get(p, v, false, &f, err) < 0)
                return -1;
        int r = x_stat(f.main, &st, err);
        if (r < 0)
                return -1;
        if (r > 0 && (fo_resize_at(f.main->dir, f.main->name, size, err) < 0 ||
                      fo_loop_set_capacity_at(f.main->dir, f.main->name, err) < 0))
                return -1;
        v->size = size;
        return 0;
}

static int file_volume_resize(void *pool, VolumeSpec *v, uint64_t size, StorageError *err) {
        return resize(pool, v, size, err);
}

static int file_volume_revert(void *pool, VolumeSpec *v, const char *rev, StorageError *err) {
        return se_set(err, SE_NOT_SUPPORTED, "Volume %s: the file driver cannot revert", v->vid);
}

/* ---- volume: moving data ---- */

static int import_begin(const FilePool *p, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, true, &f, err) < 0 || remove_leftovers(&f, err) < 0)
                return -1;
        if (size == 0 && current_size(v, &f, &size, err) < 0)
                return -1;
        if (x_sparse(&f.import, size, FO_REPLACE, err) < 0)
                return -1;
        *path = g_strdup(f.import.path);
        return 0;
}

static int file_volume_import_begin(void *pool, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        return import_begin(pool, v, size, path, err);
}

/* The staged image replaces the image (the service flushed it). When the
 * staging file was handed to a client, that client may still write through
 * its fd: the image becomes a new file with a copy of the data (a reflink
 * where the filesystem makes one), never the inode the client holds. */
static int import_commit(VolumeSpec *v, const Files *f, bool handed_out, StorageError *err) {
        struct stat st;
        int r = x_stat(&f->import, &st, err);
        if (r == 0)
                return se_set(err, SE_FAILED, "No import in progress on volume %s", v->vid);
        if (r < 0)
                return -1;
        if (handed_out) {
                if (fo_copy_at(&f->dir, f->import.name, &f->dir, f->img.name, NULL, err) < 0 ||
                    x_remove(&f->import, err) < 0)
                        return -1;
        } else if (fo_rename_at(&f->dir, f->import.name, f->img.name, err) < 0)
                return -1;
        v->size = (uint64_t) st.st_size;
        return 0;
}

static int import_end(const FilePool *p, VolumeSpec *v, bool success, bool handed_out, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, false, &f, err) < 0)
                return -1;
        if (success)
                return import_commit(v, &f, handed_out, err);
        return x_remove(&f.import, err);
}

static int file_volume_import_end(void *pool, VolumeSpec *v, bool success, bool handed_out, StorageError *err) {
        return import_end(pool, v, success, handed_out, err);
}

/* The live image: the file driver makes no stable copy. */
static int export(const FilePool *p, const VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(p, v, false, &f, err) < 0 || require_image(v, f.main, err) < 0)
                return -1;
        *path = g_strdup(f.main->path);
        *stable = false;
        return 0;
}

static int file_volume_export(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        return export(pool, v, path, stable, err);
}

static int file_volume_export_end(void *pool, VolumeSpec *v, const char *path, StorageError *err) {
        return 0;
}

/* ---- volume: query ---- */

static int sum_allocated(const File *const *files, size_t n, uint64_t *total, StorageError *err) {
        *total = 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t bytes;
                if (x_allocated(files[i], &bytes, err) < 0)
                        return -1;
                *total += bytes;
        }
        return 0;
}

static int query_usage(const VolumeSpec *v, const Files *f, uint64_t *usage, StorageError *err) {
        const File *origin[] = { &f->img, &f->cow };
        const File *snapshot[] = { &f->cow };
        const File *volatile_[] = { &f->img };
        switch (volume_kind(v)) {
        case VOLUME_ORIGIN:
                return sum_allocated(origin, G_N_ELEMENTS(origin), usage, err);
        case VOLUME_SNAPSHOT:
                return sum_allocated(snapshot, G_N_ELEMENTS(snapshot), usage, err);
        case VOLUME_VOLATILE:
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
        if (x_allocated(&f->cow, &bytes, err) < 0)
                return -1;
        *dirty = bytes > 0;
        return 0;
}

static int query_revisions(const Files *f, VolumeInfo *out, StorageError *err) {
        struct stat st;
        int r = x_stat(&f->old, &st, err);
        if (r > 0) {
                g_autofree char *ts = fo_iso8601_utc(st.st_ctime);
                volume_info_add_revision(out, "old", ts);
        }
        return r < 0 ? -1 : 0;
}

static void query_block_device(const VolumeSpec *v, const Files *f, VolumeInfo *out) {
        switch (volume_kind(v)) {
        case VOLUME_ORIGIN:
                out->bdev_path = g_strjoin(":", f->img.path, f->cow.path, NULL);
                out->bdev_script = g_strdup("block-origin");
                break;
        case VOLUME_SNAPSHOT:
                out->bdev_path = g_strjoin(":", f->src_img.path, f->src_cow.path, f->cow.path, NULL);
                out->bdev_script = g_strdup("block-snapshot");
                break;
        case VOLUME_VOLATILE:
        default:
                out->bdev_path = g_strdup(f->img.path);
                out->bdev_script = g_strdup("");
                break;
        }
        out->bdev_devtype = g_strdup("disk");
        out->bdev_rw = v->rw;
}

/* Fills what it can: each failing part leaves its default. */
static int query(const FilePool *p, const VolumeSpec *v, VolumeInfo *out, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        out->size = v->size;
        if (files_get(p, v, false, &f, err) < 0)
                return -1;
        out->path = g_strdup(f.main->path);
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
        return r;
}

/* At service start no operation runs: whatever a crash left goes. */
static int file_volume_cleanup(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Files) f = FILES_INIT;
        if (files_get(pool, v, false, &f, err) < 0)
                return -1;
        return remove_leftovers(&f, err);
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
