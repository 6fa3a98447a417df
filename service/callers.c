#include "callers.h"

#include <glib.h>
#include <string.h>

static GHashTable *watched; /* unique name -> sd_bus_track* */

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

/* Discards the imports owner staged and ends its exports. */
static void release(const char *owner) {
        g_autoptr(GPtrArray) pools = model_pools();
        for (guint i = 0; i < pools->len; i++) {
                g_autoptr(GPtrArray) vols = pool_volumes_sorted(pools->pdata[i]);
                for (guint j = 0; j < vols->len; j++) {
                        Volume *v = vols->pdata[j];
                        if (v->import_path && g_strcmp0(v->import_owner, owner) == 0)
                                release_one(v, VOP_IMPORT_END, owner, NULL);
                        for (guint k = 0; v->exports && k < v->exports->len; k++) {
                                Export *e = v->exports->pdata[k];
                                if (g_strcmp0(e->owner, owner) == 0)
                                        release_one(v, VOP_EXPORT_END, owner, e->path);
                        }
                }
        }
}

static int on_gone(sd_bus_track *t, void *userdata) {
        char *owner = userdata;
        g_message("Caller %s left the bus: releasing what it held", owner);
        release(owner);
        /* frees owner (the key) and t */
        g_hash_table_remove(watched, owner);
        return 0;
}

static void track_free(gpointer t) {
        sd_bus_track_unref(t);
}

/* 0 when owner is (now) watched, negative when it is not on the bus. */
static int watch(sd_bus *bus, const char *owner) {
        if (!watched)
                watched = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, track_free);
        if (g_hash_table_contains(watched, owner))
                return 0;
        char *key = g_strdup(owner);
        sd_bus_track *t = NULL;
        int r = sd_bus_track_new(bus, &t, on_gone, key);
        if (r >= 0)
                r = sd_bus_track_add_name(t, owner);
        if (r < 0) {
                sd_bus_track_unref(t);
                g_free(key);
                return r;
        }
        g_hash_table_insert(watched, key, t);
        return 0;
}

void callers_op_done(sd_bus_message *m, VolumeOp *op) {
        if (op->err.code != SE_OK || !op->owner || (op->kind != VOP_IMPORT_BEGIN && op->kind != VOP_EXPORT))
                return;
        if (watch(sd_bus_message_get_bus(m), op->owner) < 0) {
                g_message("Caller %s left the bus before its %s was answered: releasing it", op->owner,
                          volume_op_name(op->kind));
                release(op->owner);
        }
}

unsigned callers_count(const char *owner, HoldingKind kind) {
        unsigned n = 0;
        g_autoptr(GPtrArray) pools = model_pools();
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

unsigned callers_holdings(void) {
        return callers_count(NULL, HOLDING_IMPORT) + callers_count(NULL, HOLDING_EXPORT);
}

void callers_shutdown(void) {
        if (watched)
                g_hash_table_destroy(watched);
        watched = NULL;
}
