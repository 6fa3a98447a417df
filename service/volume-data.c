/* Moving data in and out of volumes: Import (a stream), ImportBegin/End,
 * ImportVolume (from another volume, any pool), Export/ExportEnd. The rules
 * shared by every driver live here; drivers only stage, commit and export. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "volume-data.h"

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VolumeInfo, volume_info_clear)

static const char *vid_of(VolumeOp *op) {
        return op->volume->spec->vid;
}

static bool imports(VolumeOpKind k) {
        return k == VOP_IMPORT || k == VOP_IMPORT_BEGIN || k == VOP_IMPORT_VOLUME;
}

int volume_data_check(VolumeOp *op) {
        Volume *v = op->volume;
        StorageError *e = &op->err;
        bool blocked_by_export = op->kind == VOP_START || op->kind == VOP_RESIZE || imports(op->kind);
        if (op->kind == VOP_REMOVE && (v->started || volume_has_export(v, false)))
                return se_set(e, SE_VOLUME_BUSY, "Cannot remove %s:%s while it is %s", v->pool->name, vid_of(op),
                              v->started ? "started" : "exported");
        if (blocked_by_export && volume_has_export(v, true))
                return se_set(e, SE_VOLUME_BUSY, "Volume %s:%s is exported: its data must not change until ExportEnd",
                              v->pool->name, vid_of(op));
        if (imports(op->kind) && op->kind != VOP_IMPORT_VOLUME && !v->spec->save_on_stop)
                return se_set(e, SE_NOT_SUPPORTED, "Cannot import into %s:%s: the volume is not save_on_stop",
                              v->pool->name, vid_of(op));
        if (imports(op->kind) && v->import_path)
                return se_set(e, SE_IMPORT_IN_PROGRESS, "An import into %s:%s is already in progress", v->pool->name,
                              vid_of(op));
        if (imports(op->kind) && v->started && v->spec->save_on_stop)
                return se_set(e, SE_VOLUME_BUSY, "Cannot import into %s:%s while it is started", v->pool->name,
                              vid_of(op));
        if (op->kind == VOP_IMPORT_END && (!v->import_path || (op->owner && g_strcmp0(op->owner, v->import_owner) != 0)))
                return se_set(e, SE_NO_IMPORT_IN_PROGRESS, "No import in progress on %s:%s", v->pool->name,
                              vid_of(op));
        /* A staged import and a running VM exclude each other: the VM would
         * run on data the import is about to replace. Discarding is always
         * allowed. */
        if (op->kind == VOP_START && v->import_path)
                return se_set(e, SE_IMPORT_IN_PROGRESS,
                              "Cannot start %s:%s: an import is staged (ImportBegin without ImportEnd)",
                              v->pool->name, vid_of(op));
        if (op->kind == VOP_IMPORT_END && op->success && v->started)
                return se_set(e, SE_VOLUME_BUSY, "Cannot commit the import into %s:%s while it is started",
                              v->pool->name, vid_of(op));
        if (op->kind == VOP_EXPORT && !v->spec->save_on_stop)
                return se_set(e, SE_NOT_SUPPORTED, "Cannot export %s:%s: the volume is not save_on_stop",
                              v->pool->name, vid_of(op));
        if (op->kind == VOP_EXPORT_END && !volume_find_export(v, op->path, op->owner))
                return se_set(e, SE_INVALID_ARGUMENT, "Volume %s:%s has no export %s", v->pool->name, vid_of(op),
                              op->path ? op->path : "");
        if (op->kind == VOP_IMPORT_VOLUME && op->source && (op->source->removed || op->source->pool->removed))
                return se_set(e, SE_NO_SUCH_VOLUME, "The source volume %s was removed", op->source->spec->vid);
        return 0;
}

static int need(VolumeOp *op, const Driver *d, const void *fn, const char *what) {
        if (fn)
                return 0;
        return se_set(&op->err, SE_NOT_SUPPORTED, "The %s driver cannot %s (volume %s)", d->name, what, op->spec->vid);
}

/* Opens a staging target or export view a driver named. A file in a pool
 * directory is never followed if it is a symlink (ELOOP); a device node's
 * name in /dev (lvm_thin: /dev/VG/LV) is a udev symlink by design. */
static int open_path(VolumeOp *op, const char *path, int flags) {
        if (!g_str_has_prefix(path, "/dev/"))
                flags |= O_NOFOLLOW;
        int fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                se_errno(&op->err, errno, "Cannot open %s", path);
        return fd;
}

static int not_dirty(VolumeOp *op, const Driver *d, void *drv, VolumeInfo *cur) {
        d->volume_query(drv, op->spec, cur, NULL);
        if (cur->dirty)
                return se_set(&op->err, SE_VOLUME_BUSY, "Cannot import into %s: the volume is dirty (start and stop it to clean up)",
                              op->spec->vid);
        return 0;
}

/* Stage size bytes, fill them with fill(), commit or discard. */
static int import_with(VolumeOp *op, uint64_t size, int in, bool exact) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        g_autofree char *path = NULL;
        if (d->volume_import_begin(p->drv, op->spec, size, &path, &op->err) < 0)
                return -1;
        int out = open_path(op, path, O_WRONLY);
        int r = out < 0 ? -1 : stream_copy(in, out, size, exact, op->progress, &op->err);
        if (out >= 0)
                close(out);
        if (d->volume_import_end(p->drv, op->spec, r >= 0, false, r >= 0 ? &op->err : NULL) < 0)
                return -1;
        return r;
}

static int run_import(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        g_auto(VolumeInfo) cur = { 0 };
        if (need(op, d, d->volume_import_begin, "import data") < 0 || not_dirty(op, d, p->drv, &cur) < 0)
                return -1;
        return import_with(op, op->size ? op->size : cur.size, op->fd, true);
}

static int run_import_begin(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        g_auto(VolumeInfo) cur = { 0 };
        if (need(op, d, d->volume_import_begin, "import data") < 0 || not_dirty(op, d, p->drv, &cur) < 0)
                return -1;
        g_autofree char *path = NULL;
        if (d->volume_import_begin(p->drv, op->spec, op->size ? op->size : cur.size, &path, &op->err) < 0)
                return -1;
        op->fd = open_path(op, path, O_WRONLY);
        if (op->fd < 0) {
                d->volume_import_end(p->drv, op->spec, false, true, NULL);
                return -1;
        }
        op->path = g_steal_pointer(&path);
        return 0;
}

static int run_import_end(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        bool ok = op->success;
        if (ok) {
                /* the client wrote through its own fd: flush before commit */
                int fd = open_path(op, op->path, O_RDONLY);
                if (fd >= 0 && fdatasync(fd) < 0)
                        se_errno(&op->err, errno, "Cannot flush the staged data %s", op->path);
                if (fd >= 0)
                        close(fd);
                ok = op->err.code == SE_OK;
        }
        StorageError discard = STORAGE_ERROR_INIT;
        int r = d->volume_import_end(p->drv, op->spec, ok, true, ok ? &op->err : &discard);
        if (!op->success) {
                se_set(&op->err, SE_IMPORT_FAILED, "Data import failed: %s%s%s", op->message ? op->message : "",
                       discard.message ? "; discarding the staged data failed too: " : "",
                       discard.message ? discard.message : "");
        } else if (r < 0 && op->err.code == SE_OK)
                se_move(&op->err, &discard);
        se_clear(&discard);
        return op->err.code == SE_OK && r >= 0 ? 0 : -1;
}

static int run_import_volume(VolumeOp *op) {
        Pool *p = op->volume->pool, *sp = op->source->pool;
        const Driver *d = p->driver, *sd = sp->driver;
        g_auto(VolumeInfo) cur = { 0 }, src = { 0 };
        if (!op->spec->save_on_stop)
                return 0; /* nothing to keep: the next start makes the data */
        if (need(op, d, d->volume_import_begin, "import data") < 0 || need(op, sd, sd->volume_export, "export") < 0 ||
            not_dirty(op, d, p->drv, &cur) < 0)
                return -1;
        g_autofree char *path = NULL;
        bool stable = false;
        if (sd->volume_export(sp->drv, op->source_spec, &path, &stable, &op->err) < 0)
                return -1;
        int r;
        if (sp == p && d->volume_import_clone) {
                r = d->volume_import_clone(p->drv, op->spec, op->source_spec, &op->err);
                if (r >= 0)
                        r = d->volume_import_end(p->drv, op->spec, true, false, &op->err);
        } else {
                sd->volume_query(sp->drv, op->source_spec, &src, NULL);
                int in = open_path(op, path, O_RDONLY);
                r = in < 0 ? -1 : import_with(op, src.size, in, false);
                if (in >= 0)
                        close(in);
        }
        /* always, whatever happened */
        sd->volume_export_end(sp->drv, op->source_spec, path, NULL);
        return r;
}

static int run_export(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        if (need(op, d, d->volume_export, "export") < 0)
                return -1;
        g_autofree char *path = NULL;
        if (d->volume_export(p->drv, op->spec, &path, &op->stable, &op->err) < 0)
                return -1;
        op->fd = open_path(op, path, O_RDONLY);
        if (op->fd < 0) {
                d->volume_export_end(p->drv, op->spec, path, NULL);
                return -1;
        }
        op->path = g_steal_pointer(&path);
        return 0;
}

int volume_data_run(VolumeOp *op) {
        const Driver *d = op->volume->pool->driver;
        switch (op->kind) {
        case VOP_IMPORT:
                return run_import(op);
        case VOP_IMPORT_BEGIN:
                return run_import_begin(op);
        case VOP_IMPORT_END:
                return run_import_end(op);
        case VOP_IMPORT_VOLUME:
                return run_import_volume(op);
        case VOP_EXPORT:
                return run_export(op);
        case VOP_EXPORT_END:
                return d->volume_export_end(op->volume->pool->drv, op->spec, op->path, &op->err);
        default:
                return 0;
        }
}

void volume_data_done(VolumeOp *op) {
        Volume *v = op->volume;
        bool ok = op->err.code == SE_OK;
        if (op->kind == VOP_IMPORT_BEGIN && ok) {
                v->import_path = g_strdup(op->path);
                v->import_owner = g_strdup(op->owner);
        } else if (op->kind == VOP_IMPORT_END) {
                g_clear_pointer(&v->import_path, g_free);
                g_clear_pointer(&v->import_owner, g_free);
        } else if (op->kind == VOP_EXPORT && ok)
                volume_add_export(v, op->path, op->stable, op->owner);
        else if (op->kind == VOP_EXPORT_END && ok)
                volume_remove_export(v, op->path, op->owner);
}
