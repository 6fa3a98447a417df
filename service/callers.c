#include "callers.h"

#include <glib.h>
#include <string.h>

#include "caller-uid.h"

const char *callers_owner_of(sd_bus_message *m) {
        return sd_bus_message_get_sender(m);
}

static void released(VolumeOp *op, void *userdata) {
        /* a discarded import answers ImportFailed by design */
        if (op->err.code != SE_OK && op->err.code != SE_IMPORT_FAILED && op->err.code != SE_NO_SUCH_VOLUME)
                g_warning("Releasing what a departed caller held: %s", op->err.message);
}

static void release_one(Volume *v, VolumeOpKind kind, const char *owner, const char *path) {
        VolumeOp *op = volume_op_new(kind, v, released, NULL);
        op->owner = g_strdup(owner);
        op->path = g_strdup(path);
        op->success = false;
        op->message = g_strdup("the caller left the bus");
        volume_op_submit(op);
}

/* Discards the imports owner staged and ends its exports; how many. */
static unsigned release(Manager *m, const char *owner) {
        unsigned n = 0;
        g_autoptr(GPtrArray) pools = model_pools(m);
        for (guint i = 0; i < pools->len; i++) {
                g_autoptr(GPtrArray) vols = pool_volumes_sorted(pools->pdata[i]);
                for (guint j = 0; j < vols->len; j++) {
                        Volume *v = vols->pdata[j];
                        if (v->import_path && g_strcmp0(v->import_owner, owner) == 0) {
                                release_one(v, VOP_IMPORT_END, owner, NULL);
                                n++;
                        }
                        for (guint k = 0; v->exports && k < v->exports->len; k++) {
                                Export *e = v->exports->pdata[k];
                                if (g_strcmp0(e->owner, owner) == 0) {
                                        release_one(v, VOP_EXPORT_END, owner, e->path);
                                        n++;
                                }
                        }
                }
        }
        return n;
}

/* A caller left the bus (service/caller-uid.c tells). */
static void on_left(const char *owner, void *userdata) {
        unsigned n = release(userdata, owner);
        if (n > 0)
                g_message("Caller %s left the bus: releasing the %u imports and exports it held", owner, n);
}

void callers_op_done(sd_bus_message *m, VolumeOp *op) {
        if (op->err.code != SE_OK || !op->owner || (op->kind != VOP_IMPORT_BEGIN && op->kind != VOP_EXPORT))
                return;
        /* registered with the first holding: nothing to release before */
        Manager *manager = op->volume->pool->manager;
        caller_uid_on_leave(manager, on_left, manager);
        if (caller_uid_left(manager, op->owner)) {
                g_message("Caller %s left the bus before its %s was answered: releasing it", op->owner,
                          volume_op_name(op->kind));
                release(manager, op->owner);
        }
}

unsigned callers_count(Manager *m, const char *owner, HoldingKind kind) {
        unsigned n = 0;
        g_autoptr(GPtrArray) pools = model_pools(m);
        for (guint i = 0; i < pools->len; i++) {
                g_autoptr(GPtrArray) vols = pool_volumes_sorted(pools->pdata[i]);
                for (guint j = 0; j < vols->len; j++) {
                        Volume *v = vols->pdata[j];
                        if (kind == HOLDING_IMPORT && v->import_path && (!owner || g_strcmp0(v->import_owner, owner) == 0))
                                n++;
                        for (guint k = 0; kind == HOLDING_EXPORT && v->exports && k < v->exports->len; k++)
                                n += !owner || g_strcmp0(((Export *) v->exports->pdata[k])->owner, owner) == 0;
                }
        }
        return n;
}

unsigned callers_holdings(Manager *m) {
        return callers_count(m, NULL, HOLDING_IMPORT) + callers_count(m, NULL, HOLDING_EXPORT);
}
