#include "volume-rules.h"

#include <inttypes.h>
#include <string.h>

static bool imports(VolumeOpKind k) {
        return k == VOP_IMPORT || k == VOP_IMPORT_BEGIN || k == VOP_IMPORT_VOLUME;
}

/* Import-volume into a volume that is not save_on_stop keeps nothing (its
 * next Start makes the data): no driver or storage rule applies. */
static bool moves_data(const VolumeOp *op) {
        return imports(op->kind) && (op->kind != VOP_IMPORT_VOLUME || op->spec->save_on_stop);
}

void volume_facts_take(const VolumeOp *op, VolumeFacts *f) {
        Volume *v = op->volume;
        *f = (VolumeFacts) {
                .driver = v->pool->driver,
                .source_driver = op->source ? op->source->pool->driver : NULL,
                .removed = v->removed || v->pool->removed,
                .started = op->started,
                .exported = volume_has_export(v, false),
                .exported_unstable = volume_has_export(v, true),
                .import_staged = v->import_path != NULL,
                .import_ours = v->import_path && (!op->owner || g_strcmp0(op->owner, v->import_owner) == 0),
                .export_ours = op->kind == VOP_EXPORT_END && volume_find_export(v, op->path, op->owner),
                .source_gone = op->source && (op->source->removed || op->source->pool->removed),
        };
}

static bool has_revision(const VolumeInfo *info, const char *rev) {
        for (size_t i = 0; i < info->n_revisions; i++)
                if (strcmp(info->revisions[i].id, rev) == 0)
                        return true;
        return false;
}

/* What the volume's state (started, exported, staged) allows. */
static int state_rules(const VolumeOp *op, const VolumeFacts *f, StorageError *e) {
        const VolumeSpec *s = op->spec;
        VolumeOpKind k = op->kind;
        if (f->removed)
                return se_set(e, SE_NO_SUCH_VOLUME, "The volume was removed");
        if (k == VOP_REMOVE && (f->started || f->exported))
                return se_set(e, SE_VOLUME_BUSY, "Cannot remove the volume while it is %s",
                              f->started ? "started" : "exported");
        if ((k == VOP_START || k == VOP_RESIZE || imports(k)) && f->exported_unstable)
                return se_set(e, SE_VOLUME_BUSY, "The volume is exported: its data must not change until ExportEnd");
        if ((k == VOP_IMPORT || k == VOP_IMPORT_BEGIN) && !s->save_on_stop)
                return se_set(e, SE_NOT_SUPPORTED, "Cannot import: the volume is not save_on_stop");
        if (imports(k) && f->import_staged)
                return se_set(e, SE_IMPORT_IN_PROGRESS, "An import into the volume is already in progress");
        if (imports(k) && f->started && s->save_on_stop)
                return se_set(e, SE_VOLUME_BUSY, "Cannot import while the volume is started");
        if (k == VOP_IMPORT_END && !f->import_ours)
                return se_set(e, SE_NO_IMPORT_IN_PROGRESS, "No import in progress on the volume");
        /* A staged import and a running VM exclude each other: the VM would
         * run on data the import is about to replace. Discarding is always
         * allowed. */
        if (k == VOP_START && f->import_staged)
                return se_set(e, SE_IMPORT_IN_PROGRESS, "Cannot start: an import is staged (ImportBegin without ImportEnd)");
        if (k == VOP_IMPORT_END && op->success && f->started)
                return se_set(e, SE_VOLUME_BUSY, "Cannot commit the import while the volume is started");
        if (k == VOP_EXPORT && !s->save_on_stop)
                return se_set(e, SE_NOT_SUPPORTED, "Cannot export: the volume is not save_on_stop");
        if (k == VOP_EXPORT_END && !f->export_ours)
                return se_set(e, SE_INVALID_ARGUMENT, "The volume has no export %s", op->path ? op->path : "");
        if (k == VOP_IMPORT_VOLUME && f->source_gone)
                return se_set(e, SE_NO_SUCH_VOLUME, "The source volume %s was removed",
                              op->source_spec ? op->source_spec->vid : "");
        if (k == VOP_SET_RW && f->started)
                return se_set(e, SE_VOLUME_BUSY, "Cannot change rw while the volume is started");
        if (k == VOP_RESIZE && !s->rw)
                return se_set(e, SE_READ_ONLY, "Cannot resize: the volume is read-only");
        return 0;
}

/* What the drivers can do at all. */
static int driver_rules(const VolumeOp *op, const VolumeFacts *f, StorageError *e) {
        const Driver *d = f->driver, *sd = f->source_driver;
        if (op->kind == VOP_REVERT && !d->volume_revert)
                return se_set(e, SE_NOT_SUPPORTED, "Cannot revert: the %s driver keeps no revisions to revert to",
                              d->name);
        if (moves_data(op) && !d->volume_import_begin)
                return se_set(e, SE_NOT_SUPPORTED, "The %s driver cannot import data", d->name);
        if (op->kind == VOP_IMPORT_VOLUME && moves_data(op) && sd && !sd->volume_export)
                return se_set(e, SE_NOT_SUPPORTED, "The %s driver cannot export (the source)", sd->name);
        if (op->kind == VOP_EXPORT && !d->volume_export)
                return se_set(e, SE_NOT_SUPPORTED, "The %s driver cannot export", d->name);
        return 0;
}

/* What the storage says now (once a worker has read it; a started volume
 * is as good as dirty for Revert). */
static int storage_rules(const VolumeOp *op, const VolumeFacts *f, StorageError *e) {
        const VolumeInfo *cur = f->storage;
        if (op->kind == VOP_REVERT && (f->started || (cur && cur->dirty)))
                return se_set(e, SE_VOLUME_BUSY, "Cannot revert: the volume is not cleanly stopped");
        if (!cur)
                return 0;
        if (op->kind == VOP_RESIZE && op->size < cur->size && !op->allow_shrink)
                return se_set(e, SE_SHRINK_REFUSED,
                              "For your own safety, shrinking of %s is disabled (%" PRIu64 " < %" PRIu64
                              "); pass allow_shrink if you really mean it",
                              op->spec->vid, op->size, cur->size);
        if (op->kind == VOP_RESIZE && op->size < cur->size && !f->driver->can_shrink)
                return se_set(e, SE_NOT_SUPPORTED, "Cannot shrink: the %s driver cannot shrink volumes",
                              f->driver->name);
        if (op->kind == VOP_REVERT && op->revision && !has_revision(cur, op->revision))
                return se_set(e, SE_NO_SUCH_REVISION, "The volume has no revision '%s'", op->revision);
        if (op->kind == VOP_REVERT && !op->revision && cur->n_revisions == 0)
                return se_set(e, SE_NO_SUCH_REVISION, "The volume has no revision to revert to");
        if (moves_data(op) && cur->dirty)
                return se_set(e, SE_VOLUME_BUSY, "Cannot import: the volume is dirty (start and stop it to clean up)");
        return 0;
}

int volume_may_run(const VolumeOp *op, const VolumeFacts *f, StorageError *e) {
        if (state_rules(op, f, e) < 0 || driver_rules(op, f, e) < 0 || storage_rules(op, f, e) < 0)
                return -1;
        return 0;
}

int volume_recheck(VolumeOp *op, const VolumeInfo *cur) {
        op->facts.storage = cur;
        int r = volume_may_run(op, &op->facts, &op->err);
        op->facts.storage = NULL;
        return r;
}
