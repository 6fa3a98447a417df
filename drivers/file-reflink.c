/* The `file-reflink` driver (docs/drivers.md, "file-reflink"): copy-on-write images on a
 * filesystem that can share extents (btrfs, XFS with reflink=1). With
 * P = <dir>/<vid>:
 *   P.img                  the committed (clean) image
 *   P-dirty.img            the image a running VM writes
 *   P-import.img           staged import data
 *   P.img.<N>@<ISO>Z       revisions, N increasing
 *   P.img@export-XXXXXX    reflink copies handed out by Export
 *   P*.img*~XXXXXX         temp files of the atomic helpers
 * Every change is made beside the data and committed by a rename.
 */
#include "driver.h"
#include "file-layout.h"
#include "fileops.h"
#include "test-seam.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

typedef struct ReflinkPool {
        char *dir;
        bool setup_check;
} ReflinkPool;

typedef struct Paths {
        FoDir d;       /* the VM directory, opened below the pool without following links */
        char *name;    /* the volume name: what its file names start with */
        char *clean;   /* file names in d */
        char *dirty;
        char *import;
        char *clean_path; /* full paths, for messages and what is handed out */
        char *dirty_path;
        char *import_path;
} Paths;

#define PATHS_INIT { .d = FO_DIR_INIT }

static void paths_clear(Paths *p) {
        fo_dir_close(&p->d);
        g_free(p->name);
        g_free(p->clean);
        g_free(p->dirty);
        g_free(p->import);
        g_free(p->clean_path);
        g_free(p->dirty_path);
        g_free(p->import_path);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Paths, paths_clear)

/* Opens the volume's directory (made when create) and names its files. The
 * vid is checked again on every call: no file outside the layout is touched. */
static int paths_get(const ReflinkPool *pool, const char *vid, bool create, Paths *p, StorageError *err) {
        p->d = (FoDir) FO_DIR_INIT;
        if (fl_check_vid(vid, err) < 0)
                return -1;
        g_autofree char *vm_dir = NULL;
        fl_split_vid(vid, &vm_dir, &p->name);
        if (fo_dir_open(&p->d, pool->dir, vm_dir, create, err) < 0)
                return -1;
        p->clean = fl_file_name(p->name, FL_IMAGE);
        p->dirty = fl_file_name(p->name, FL_DIRTY);
        p->import = fl_file_name(p->name, FL_IMPORT);
        p->clean_path = fo_dir_file(&p->d, p->clean);
        p->dirty_path = fo_dir_file(&p->d, p->dirty);
        p->import_path = fo_dir_file(&p->d, p->import);
        return 0;
}

static int exists(const Paths *p, const char *name, StorageError *err) {
        struct stat st;
        return fo_stat_at(&p->d, name, &st, err);
}

/* 0 when p's committed image is there; MissingImage naming vid (whose data
 * it is) when not. */
static int need_clean(const Paths *p, const char *vid, StorageError *err) {
        int r = exists(p, p->clean, err);
        if (r == 0)
                return se_set(err, SE_MISSING_IMAGE, "Missing image file '%s' for volume %s", p->clean_path, vid);
        return r < 0 ? -1 : 0;
}

/* ---- revisions ---- */

typedef struct Rev {
        long n;
        char *file;  /* name in the volume's directory */
        char *stamp; /* ISO timestamp as in the name */
} Rev;

static void rev_free(Rev *r) {
        g_free(r->file);
        g_free(r->stamp);
        g_free(r);
}

static int cmp_rev(gconstpointer a, gconstpointer b) {
        const Rev *x = *(Rev *const *) a, *y = *(Rev *const *) b;
        return x->n < y->n ? -1 : x->n > y->n;
}

/* A revision file of the volume (never a temporary file). */
static Rev *parse_rev(const Paths *p, const char *entry) {
        FlEntry e;
        if (!fl_owned_by(entry, p->name, &e))
                return NULL;
        Rev *r = NULL;
        if (e.kind == FL_REVISION && !e.temp) {
                r = g_new0(Rev, 1);
                r->n = e.revision;
                r->file = g_strdup(entry);
                r->stamp = g_strdup(e.stamp);
        }
        fl_entry_clear(&e);
        return r;
}

/* Oldest first. */
static GPtrArray *list_revisions(const Paths *p) {
        GPtrArray *revs = g_ptr_array_new_with_free_func((GDestroyNotify) rev_free);
        g_autoptr(GPtrArray) names = fo_list_at(&p->d);
        for (guint i = 0; i < names->len; i++) {
                Rev *r = parse_rev(p, names->pdata[i]);
                if (r)
                        g_ptr_array_add(revs, r);
        }
        g_ptr_array_sort(revs, cmp_rev);
        return revs;
}

/* Copies clean to the next revision, stamped with clean's ctime. */
static int add_revision(const Paths *p, StorageError *err) {
        struct stat st;
        int r = fo_stat_at(&p->d, p->clean, &st, err);
        if (r <= 0)
                return r;
        g_autoptr(GPtrArray) revs = list_revisions(p);
        long next = revs->len ? ((Rev *) revs->pdata[revs->len - 1])->n + 1 : 1;
        g_autofree char *stamp = fo_iso8601_utc(st.st_ctime);
        g_autofree char *file = g_strdup_printf("%s.%ld@%s", p->clean, next, stamp);
        return fo_copy_at(&p->d, p->clean, &p->d, file, NULL, err);
}

static int prune_revisions(const Paths *p, int keep, StorageError *err) {
        g_autoptr(GPtrArray) revs = list_revisions(p);
        for (guint i = 0; (int) (revs->len - i) > keep; i++)
                if (fo_remove_at(&p->d, ((Rev *) revs->pdata[i])->file, err) < 0)
                        return -1;
        return 0;
}

/* Keeps the clean image as a revision (when revisions are kept) and prunes. */
static int rotate_revisions(const VolumeSpec *v, const Paths *p, StorageError *err) {
        if (v->revisions_to_keep > 0 && add_revision(p, err) < 0)
                return -1;
        return prune_revisions(p, v->revisions_to_keep, err);
}

/* Makes `from` (a file of the volume's directory) the new clean image,
 * keeping the old one as a revision. */
static int commit(const VolumeSpec *v, const Paths *p, const char *from, StorageError *err) {
        if (rotate_revisions(v, p, err) < 0)
                return -1;
        int fd = fo_open_at(&p->d, from, O_RDONLY, err);
        if (fd < 0)
                return -1;
        int r = test_seam_skip_flush("reflink-commit") ? 0 : fsync(fd);
        int e = errno;
        close(fd);
        if (r < 0)
                return se_errno(err, e, "Cannot flush %s/%s of volume %s", p->d.path, from, v->vid);
        test_seam_pause("reflink-commit-before-rename");
        return fo_rename_at(&p->d, from, p->clean, err);
}

/* Like commit, for a file a client may still hold open: the clean image
 * becomes a fresh reflink (or copy) of it and `from` is unlinked, so nothing
 * written through the client's fd later reaches any image. */
static int commit_copy(const VolumeSpec *v, const Paths *p, const char *from, StorageError *err) {
        if (rotate_revisions(v, p, err) < 0)
                return -1;
        test_seam_pause("reflink-commit-before-rename");
        if (fo_copy_at(&p->d, from, &p->d, p->clean, NULL, err) < 0)
                return -1;
        return fo_remove_at(&p->d, from, err);
}

/* ---- clean-up of every file a vid owns ---- */

typedef enum Doomed {
        DOOM_ALL,      /* every file of the volume */
        DOOM_START,    /* what Start throws away: temp files and an unfinished import */
        DOOM_RESTART,  /* at service start: also export views (they live as long as
                        * the service that made them), and probe files of earlier
                        * versions, which are nobody's */
} Doomed;

typedef struct Match {
        const char *name;
        Doomed what;
} Match;

static bool doomed(const char *entry, void *userdata) {
        const Match *m = userdata;
        if (m->what == DOOM_RESTART && fl_is_probe_temp(entry))
                return true;
        FlEntry e;
        if (!fl_owned_by(entry, m->name, &e))
                return false;
        bool r = m->what == DOOM_ALL || e.temp || e.kind == FL_IMPORT ||
                 (m->what == DOOM_RESTART && e.kind == FL_EXPORT);
        fl_entry_clear(&e);
        return r;
}

static int remove_matching(const Paths *p, Doomed what, StorageError *err) {
        Match m = { p->name, what };
        return fo_remove_matching_at(&p->d, doomed, &m, err);
}

/* ---- pool ---- */

/* Two unnamed files (O_TMPFILE) where the filesystem has them, so a kill
 * leaves nothing; else named temporary files, unlinked at once. */
static int probe_file(const char *dir) {
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 || (errno != EISDIR && errno != EOPNOTSUPP && errno != EINVAL))
                return fd < 0 ? -errno : fd;
        g_autofree char *name = g_build_filename(dir, ".reflink-probe~XXXXXX", NULL);
        fd = mkostemp(name, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        unlink(name);
        return fd;
}

/* 0 when FICLONE works between two files in dir, else -errno. */
static int reflink_works(const char *dir) {
        int fa = probe_file(dir);
        if (fa < 0)
                return fa;
        int fb = probe_file(dir), r = fb;
        if (fb >= 0) {
                r = write(fa, "qubes-storaged", 14) == 14 ? -fo_ficlone(fb, fa) : -errno;
                close(fb);
        }
        close(fa);
        return r;
}

static int reflink_probe(const char *dir, StorageError *err) {
        int r = reflink_works(dir);
        return r < 0 ? se_errno(err, -r, "The filesystem for '%s' does not share extents (FICLONE)", dir) : 0;
}

static int parse_bool(const char *s, bool *out) {
        static const char *const yes[] = { "1", "true", "yes", "on", NULL }, *const no[] = { "0", "false", "no", "off", NULL };
        for (size_t i = 0; yes[i]; i++)
                if (g_ascii_strcasecmp(s, yes[i]) == 0)
                        return *out = true, 0;
        for (size_t i = 0; no[i]; i++)
                if (g_ascii_strcasecmp(s, no[i]) == 0)
                        return *out = false, 0;
        return -1;
}

static int reflink_pool_open(GHashTable *config, void **pool, StorageError *err) {
        g_autofree char *dir = NULL;
        bool check = true;
        const char *s = g_hash_table_lookup(config, "setup_check");
        if (s && parse_bool(s, &check) < 0)
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid setup_check '%s': use true or false", s);
        if (fo_config_dir_path(config, &dir, err) < 0)
                return -1;
        /* setup_check is an instruction for setup, not configuration */
        g_hash_table_remove(config, "setup_check");
        ReflinkPool *p = g_new0(ReflinkPool, 1);
        p->dir = g_steal_pointer(&dir);
        p->setup_check = check;
        *pool = p;
        return 0;
}

static void reflink_pool_free(void *pool) {
        ReflinkPool *p = pool;
        g_free(p->dir);
        g_free(p);
}

static int reflink_pool_setup(void *pool, StorageError *err) {
        ReflinkPool *p = pool;
        struct stat st;
        int existed = fo_stat(p->dir, &st, err);
        /* the directory itself, never its parents: a refused setup then has
         * at most this one directory to take back (the file driver does the same) */
        if (existed < 0 || fo_mkdir(p->dir, err) < 0)
                return -1;
        if (p->setup_check && reflink_works(p->dir) < 0) {
                if (!existed)
                        rmdir(p->dir);
                return se_set(err, SE_FAILED,
                              "The filesystem for '%s' does not support reflinks. If you can live with VM startup "
                              "delays and wasted disk space, pass the \"setup_check=False\" option.",
                              p->dir);
        }
        g_autofree char *appvms = g_build_filename(p->dir, "appvms", NULL);
        g_autofree char *templates = g_build_filename(p->dir, "vm-templates", NULL);
        return fo_mkdir(appvms, err) < 0 || fo_mkdir(templates, err) < 0 ? -1 : 0;
}

static int reflink_pool_usage(void *pool, PoolUsage *out, StorageError *err) {
        ReflinkPool *p = pool;
        return fo_dir_usage(p->dir, out, err);
}

/* ---- volumes ---- */

static int reflink_volume_init(void *pool, VolumeSpec *v, StorageError *err) {
        if (!v->vid || !*v->vid) {
                g_free(v->vid);
                v->vid = fl_default_vid(v->vm, v->name, v->template_vm);
        }
        if (fl_check_vid(v->vid, err) < 0)
                return -1;
        if (v->source && *v->source && fl_check_vid(v->source, err) < 0)
                return -1;
        return 0;
}

/* The service creates a vid only when no volume of the pool has it: every
 * file of the vid is a leftover (of a killed Create or Remove) and goes. */
static int reflink_volume_create(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, true, &p, err) < 0 || remove_matching(&p, DOOM_ALL, err) < 0)
                return -1;
        if (volume_kind(v) == VOLUME_ORIGIN && fo_sparse_create_at(&p.d, p.clean, v->size, FO_REPLACE, err) < 0)
                return -1;
        return 0;
}

/* Removes the volume's VM directory when it is empty. */
static int remove_vm_dir_if_empty(const ReflinkPool *pool, const char *vid, StorageError *err) {
        g_autofree char *vm_dir = NULL, *name = NULL;
        fl_split_vid(vid, &vm_dir, &name);
        g_autofree char *parent = g_path_get_dirname(vm_dir), *vm = g_path_get_basename(vm_dir);
        g_auto(FoDir) d = FO_DIR_INIT;
        if (fo_dir_open(&d, pool->dir, parent, false, err) < 0)
                return -1;
        return fo_rmdir_at(&d, vm, err);
}

static int reflink_volume_remove(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0 || remove_matching(&p, DOOM_ALL, err) < 0)
                return -1;
        return remove_vm_dir_if_empty(pool, v->vid, err);
}

static int reflink_volume_start(void *pool, VolumeSpec *v, StorageError *err) {
        ReflinkPool *rp = pool;
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(rp, v->vid, true, &p, err) < 0 || remove_matching(&p, DOOM_START, err) < 0)
                return -1;
        int dirty = exists(&p, p.dirty, err);
        if (dirty < 0)
                return -1;
        if (volume_kind(v) == VOLUME_ORIGIN && dirty)
                return 0; /* a crash while running: the running image is kept */
        if (volume_kind(v) == VOLUME_SNAPSHOT) {
                if (!v->source)
                        return se_set(err, SE_FAILED, "Volume %s has snap_on_start but no source", v->vid);
                g_auto(Paths) src = PATHS_INIT;
                if (paths_get(rp, v->source, false, &src, err) < 0 ||
                    fo_copy_at(&src.d, src.clean, &p.d, p.clean, NULL, err) < 0)
                        return -1;
                test_seam_pause("reflink-start-before-dirty");
        }
        if (volume_kind(v) == VOLUME_ORIGIN || volume_kind(v) == VOLUME_SNAPSHOT)
                return fo_copy_at(&p.d, p.clean, &p.d, p.dirty, NULL, err);
        /* volatile: a fresh sparse image at its size */
        struct stat st;
        int have = fo_stat_at(&p.d, p.dirty, &st, err);
        if (have < 0)
                return -1;
        uint64_t size = have ? (uint64_t) st.st_size : v->size;
        return fo_sparse_create_at(&p.d, p.dirty, size, FO_REPLACE, err);
}

static int reflink_volume_stop(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        struct stat st;
        int dirty = fo_stat_at(&p.d, p.dirty, &st, err);
        if (dirty < 0)
                return -1;
        if (volume_kind(v) == VOLUME_ORIGIN)
                return dirty ? commit(v, &p, p.dirty, err) : 0;
        if (dirty && !v->snap_on_start)
                v->size = (uint64_t) st.st_size; /* a volatile volume keeps its last size */
        if (fo_remove_at(&p.d, p.dirty, err) < 0 || fo_remove_at(&p.d, p.clean, err) < 0)
                return -1;
        return 0;
}

static int reflink_volume_verify(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (volume_kind(v) != VOLUME_ORIGIN && volume_kind(v) != VOLUME_SNAPSHOT)
                return 0;
        if (volume_kind(v) == VOLUME_SNAPSHOT && !v->source)
                return se_set(err, SE_FAILED, "Volume %s has snap_on_start but no source", v->vid);
        if (paths_get(pool, volume_kind(v) == VOLUME_SNAPSHOT ? v->source : v->vid, false, &p, err) < 0)
                return -1;
        return need_clean(&p, v->vid, err);
}

static int reflink_volume_resize(void *pool, VolumeSpec *v, uint64_t size, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        int dirty = exists(&p, p.dirty, err), clean = dirty ? 0 : exists(&p, p.clean, err);
        if (dirty < 0 || clean < 0)
                return -1;
        if (dirty && (fo_resize_at(&p.d, p.dirty, size, err) < 0 || fo_loop_set_capacity_at(&p.d, p.dirty, err) < 0))
                return -1;
        if (clean && fo_resize_at(&p.d, p.clean, size, err) < 0)
                return -1;
        v->size = size;
        return 0;
}

static int reflink_volume_revert(void *pool, VolumeSpec *v, const char *rev, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        g_autoptr(GPtrArray) revs = list_revisions(&p);
        const Rev *chosen = NULL;
        for (guint i = 0; i < revs->len; i++) {
                Rev *r = revs->pdata[i];
                g_autofree char *id = g_strdup_printf("%ld", r->n);
                if (rev ? strcmp(rev, id) == 0 : i == revs->len - 1)
                        chosen = r;
        }
        if (!chosen)
                return se_set(err, SE_NO_SUCH_REVISION, "Volume %s has no revision '%s'", v->vid, rev ? rev : "");
        /* the current data becomes a revision too, so the revert can be undone */
        if (add_revision(&p, err) < 0)
                return -1;
        return fo_rename_at(&p.d, chosen->file, p.clean, err);
}

static int reflink_volume_import_begin(void *pool, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, true, &p, err) < 0 ||
            fo_sparse_create_at(&p.d, p.import, size, FO_REPLACE, err) < 0)
                return -1;
        *path = g_strdup(p.import_path);
        return 0;
}

static int reflink_volume_import_end(void *pool, VolumeSpec *v, bool success, bool handed_out, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        struct stat st;
        if (success) {
                int r = fo_stat_at(&p.d, p.import, &st, err);
                if (r == 0)
                        return se_set(err, SE_FAILED, "Volume %s: the staged import %s is gone", v->vid, p.import_path);
                /* a client may still hold the staged file open: then the
                 * clean image is a fresh copy, never the inode it holds */
                if (r > 0)
                        r = handed_out ? commit_copy(v, &p, p.import, err) : commit(v, &p, p.import, err);
                if (r < 0) {
                        /* the commit's error is the one to report; a staged
                         * file that stays is removed like any leftover import */
                        fo_remove_at(&p.d, p.import, NULL);
                        return -1;
                }
                v->size = (uint64_t) st.st_size;
                return 0;
        }
        return fo_remove_at(&p.d, p.import, err);
}

static int reflink_volume_import_clone(void *pool, VolumeSpec *v, const VolumeSpec *src, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        g_auto(Paths) s = PATHS_INIT;
        if (paths_get(pool, v->vid, true, &p, err) < 0 || paths_get(pool, src->vid, false, &s, err) < 0)
                return -1;
        /* a commit of src replaces its image by rename, never in place: the
         * clone, made from one open file, is one committed state of it */
        if (need_clean(&s, src->vid, err) < 0)
                return -1;
        return fo_copy_at(&s.d, s.clean, &p.d, p.import, NULL, err);
}

static int reflink_volume_export(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        if (need_clean(&p, v->vid, err) < 0)
                return -1;
        /* a reflink copy is a stable view; a full copy would be too costly:
         * where FICLONE is refused, hand out the clean image and let the
         * service guard it (no probe file: the clone is the probe) */
        int src = fo_open_at(&p.d, p.clean, O_RDONLY, err);
        if (src < 0)
                return -1;
        g_autofree char *prefix = g_strconcat(p.clean, "@export-", NULL);
        g_autofree char *copy = NULL;
        int fd = fo_make_unique_at(&p.d, prefix, &copy, err);
        if (fd < 0) {
                close(src);
                return -1;
        }
        int e = fo_ficlone(fd, src);
        close(fd);
        close(src);
        if (e != 0) {
                /* the reflink's error is the one to report; a view that stays
                 * is removed at the next start (volume_cleanup) */
                fo_remove_at(&p.d, copy, NULL);
                if (!fo_ficlone_may_fall_back(e))
                        return se_errno(err, e, "Cannot reflink %s to export volume %s", p.clean_path, v->vid);
                *path = g_strdup(p.clean_path);
                *stable = false;
                return 0;
        }
        *path = fo_dir_file(&p.d, copy);
        *stable = true;
        return 0;
}

/* Removes an export view: only a file of this volume's directory that is
 * one of its export views. */
static int reflink_volume_export_end(void *pool, VolumeSpec *v, const char *path, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        if (strcmp(path, p.clean_path) == 0)
                return 0;
        g_autofree char *dir = g_path_get_dirname(path), *name = g_path_get_basename(path);
        FlEntry e;
        bool view = strcmp(dir, p.d.path) == 0 && fl_owned_by(name, p.name, &e);
        bool ok = view && e.kind == FL_EXPORT && !e.temp;
        if (view)
                fl_entry_clear(&e);
        if (!ok)
                return se_set(err, SE_FAILED, "Volume %s: %s is not one of its export views", v->vid, path);
        return fo_remove_at(&p.d, name, err);
}

static int reflink_volume_cleanup(void *pool, VolumeSpec *v, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0)
                return -1;
        return remove_matching(&p, DOOM_RESTART, err);
}

static int reflink_volume_query(void *pool, const VolumeSpec *v, VolumeInfo *out, StorageError *err) {
        g_auto(Paths) p = PATHS_INIT;
        if (paths_get(pool, v->vid, false, &p, err) < 0) {
                out->size = v->size;
                volume_info_fill_defaults(out);
                return -1;
        }
        struct stat st;
        int r = 0, dirty = fo_stat_at(&p.d, p.dirty, &st, err);
        if (dirty > 0) {
                out->size = (uint64_t) st.st_size;
                out->usage = (uint64_t) st.st_blocks * 512;
        } else if (dirty == 0 && fo_stat_at(&p.d, p.clean, &st, err) > 0) {
                out->size = (uint64_t) st.st_size;
                out->usage = (uint64_t) st.st_blocks * 512;
        } else
                out->size = v->size;
        if (dirty < 0)
                r = -1;
        out->dirty = volume_kind(v) == VOLUME_ORIGIN && dirty > 0;
        out->running = dirty > 0;
        if (volume_kind(v) == VOLUME_SNAPSHOT && v->source) {
                g_auto(Paths) src = PATHS_INIT;
                struct stat own, theirs;
                out->outdated = paths_get(pool, v->source, false, &src, NULL) == 0 &&
                                fo_stat_at(&p.d, p.clean, &own, NULL) > 0 &&
                                fo_stat_at(&src.d, src.clean, &theirs, NULL) > 0 &&
                                (theirs.st_mtim.tv_sec > own.st_mtim.tv_sec ||
                                 (theirs.st_mtim.tv_sec == own.st_mtim.tv_sec && theirs.st_mtim.tv_nsec > own.st_mtim.tv_nsec));
        }
        g_autoptr(GPtrArray) revs = list_revisions(&p);
        for (guint i = 0; i < revs->len; i++) {
                Rev *rv = revs->pdata[i];
                g_autofree char *id = g_strdup_printf("%ld", rv->n);
                volume_info_add_revision(out, id, rv->stamp);
        }
        /* a stopped volume's data lives in the clean image */
        out->path = g_strdup(dirty > 0 ? p.dirty_path : p.clean_path);
        out->bdev_path = g_strdup(p.dirty_path);
        out->bdev_script = g_strdup("");
        out->bdev_devtype = g_strdup("disk");
        out->bdev_rw = v->rw;
        volume_info_fill_defaults(out);
        return r;
}

static const char *const reflink_params[] = { "revisions_to_keep", "dir_path", "setup_check", NULL };

const Driver driver_file_reflink = {
        .name = "file-reflink",
        .params = reflink_params,
        .max_revisions_to_keep = -1,
        .creates_volumes = true,
        .shows_started = true, /* a started volume has its -dirty image, a stopped one none */
        .can_shrink = true,
        .probe = reflink_probe,
        .pool_open = reflink_pool_open,
        .pool_free = reflink_pool_free,
        .pool_setup = reflink_pool_setup,
        .pool_usage = reflink_pool_usage,
        .volume_init = reflink_volume_init,
        .volume_create = reflink_volume_create,
        .volume_remove = reflink_volume_remove,
        .volume_start = reflink_volume_start,
        .volume_stop = reflink_volume_stop,
        .volume_verify = reflink_volume_verify,
        .volume_resize = reflink_volume_resize,
        .volume_revert = reflink_volume_revert,
        .volume_query = reflink_volume_query,
        .volume_import_begin = reflink_volume_import_begin,
        .volume_import_end = reflink_volume_import_end,
        .volume_import_clone = reflink_volume_import_clone,
        .volume_export = reflink_volume_export,
        .volume_export_end = reflink_volume_export_end,
        .volume_cleanup = reflink_volume_cleanup,
};
