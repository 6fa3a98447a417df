/* Moving data in and out of volumes: Import (a stream), ImportBegin/End,
 * ImportVolume (from another volume, any pool), Export/ExportEnd. The data
 * paths only: what may run is volume-rules.c's; drivers stage, commit and
 * export. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "volume-data.h"
#include "volume-rules.h"

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

/* Reads the volume and asks the rules again with what the storage says. */
static int storage_allows(VolumeOp *op, const Driver *d, void *drv, VolumeInfo *cur) {
        /* NULL: a failed read still fills every field (driver.h); what the
         * storage cannot say, the driver's next call reports by name */
        d->volume_query(drv, op->spec, cur, NULL);
        return volume_recheck(op, cur);
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
        /* after a failed copy, the copy's error is the one to report: a
         * staging that cannot be discarded is replaced by the next import
         * and cleaned at the next Start or service start */
        if (d->volume_import_end(p->drv, op->spec, r >= 0, false, r >= 0 ? &op->err : NULL) < 0)
                return -1;
        return r;
}

static int run_import(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        g_auto(VolumeInfo) cur = { 0 };
        if (storage_allows(op, d, p->drv, &cur) < 0)
                return -1;
        return import_with(op, op->size ? op->size : cur.size, op->fd, true);
}

static int run_import_begin(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        g_auto(VolumeInfo) cur = { 0 };
        if (storage_allows(op, d, p->drv, &cur) < 0)
                return -1;
        g_autofree char *path = NULL;
        if (d->volume_import_begin(p->drv, op->spec, op->size ? op->size : cur.size, &path, &op->err) < 0)
                return -1;
        op->fd = open_path(op, path, O_WRONLY);
        if (op->fd < 0) {
                /* the open's error is reported; see import_with for a discard that fails */
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
        if (storage_allows(op, d, p->drv, &cur) < 0)
                return -1;
        if (sp == p && d->volume_import_clone) {
                /* one pool: the clone is itself a stable copy of the source's
                 * committed data, no export view needed */
                int r = d->volume_import_clone(p->drv, op->spec, op->source_spec, &op->err);
                return r < 0 ? -1 : d->volume_import_end(p->drv, op->spec, true, false, &op->err);
        }
        g_autofree char *path = NULL;
        bool stable = false;
        if (sd->volume_export(sp->drv, op->source_spec, &path, &stable, &op->err) < 0)
                return -1;
        /* the copy's size is the source's: no copy when it cannot be read */
        int in = sd->volume_query(sp->drv, op->source_spec, &src, &op->err) < 0 ? -1
                                                                                 : open_path(op, path, O_RDONLY);
        int r = in < 0 ? -1 : import_with(op, src.size, in, false);
        if (in >= 0)
                close(in);
        /* always, whatever happened; NULL: the import's own result is what
         * the caller asked for, and an export view left behind is removed at
         * the next service start (volume_cleanup) */
        sd->volume_export_end(sp->drv, op->source_spec, path, NULL);
        return r;
}

static int run_export(VolumeOp *op) {
        Pool *p = op->volume->pool;
        const Driver *d = p->driver;
        g_autofree char *path = NULL;
        if (d->volume_export(p->drv, op->spec, &path, &op->stable, &op->err) < 0)
                return -1;
        op->fd = open_path(op, path, O_RDONLY);
        if (op->fd < 0) {
                /* the open's error is reported; a view left behind goes at the next service start */
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
