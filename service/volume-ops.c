#include "volume-ops.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "store.h"
#include "test-seam.h"
#include "macros.h"
#include "manager.h"
#include "usage.h"
#include "validate.h"
#include "volume-data.h"
#include "volume-rules.h"

static const char *const op_names[_VOP_MAX] = {
        [VOP_CREATE] = "create", [VOP_REMOVE] = "remove",   [VOP_START] = "start",
        [VOP_STOP] = "stop",     [VOP_VERIFY] = "verify",   [VOP_RESIZE] = "resize",
        [VOP_REVERT] = "revert", [VOP_SET_RW] = "set-rw",   [VOP_SET_REVISIONS] = "set-revisions",
        [VOP_QUERY] = "query",   [VOP_IMPORT] = "import", [VOP_IMPORT_BEGIN] = "import-begin",
        [VOP_IMPORT_END] = "import-end", [VOP_IMPORT_VOLUME] = "import-volume", [VOP_EXPORT] = "export",
        [VOP_EXPORT_END] = "export-end",
};

const char *volume_op_name(VolumeOpKind kind) {
        return op_names[kind];
}

/* What the storage says of the volume now, and when it was read. */
static void read_info(VolumeOp *op) {
        Pool *p = op->volume->pool;
        op->info_usec = clock_usec(CLOCK_MONOTONIC);
        /* the op's reply is op->err; a failed read still fills op->info (driver.h) */
        p->driver->volume_query(p->drv, op->spec, &op->info, NULL);
}

static int run_driver(VolumeOp *op) {
        Volume *v = op->volume;
        const Driver *d = v->pool->driver;
        void *drv = v->pool->drv;
        VolumeSpec *s = op->spec;
        g_auto(VolumeInfo) cur = { 0 };
        int r;

        switch (op->kind) {
        case VOP_CREATE:
                return d->volume_create(drv, s, &op->err);
        case VOP_REMOVE:
                return d->volume_remove(drv, s, &op->err);
        case VOP_START:
                /* Started by an earlier run that crashed: start again, so
                 * that the driver recovers (keeps a running image, drops
                 * leftovers). Started by this run: nothing to do. */
                if (op->started && op->started_here)
                        return 0;
                r = d->volume_start(drv, s, &op->err);
                op->started = r >= 0;
                return r;
        case VOP_STOP:
                if (!op->started)
                        return 0;
                r = d->volume_stop(drv, s, &op->err);
                op->started = r < 0;
                return r;
        case VOP_VERIFY:
                r = d->volume_verify(drv, s, &op->err);
                op->verified = r >= 0;
                return r;
        case VOP_RESIZE:
                /* a failed read still fills cur (driver.h); the driver call
                 * reports the storage's own error */
                d->volume_query(drv, s, &cur, NULL);
                if (volume_recheck(op, &cur) < 0)
                        return -1;
                return op->size == cur.size ? 0 : d->volume_resize(drv, s, op->size, &op->err);
        case VOP_REVERT:
                /* as for Resize */
                d->volume_query(drv, s, &cur, NULL);
                if (volume_recheck(op, &cur) < 0)
                        return -1;
                return d->volume_revert(drv, s, op->revision, &op->err);
        case VOP_SET_RW:
                s->rw = op->rw;
                return d->volume_init(drv, s, &op->err);
        case VOP_SET_REVISIONS:
                s->revisions_to_keep = s->save_on_stop ? op->revisions_to_keep : 0;
                return 0;
        case VOP_QUERY:
        case _VOP_MAX:
                break;
        default:
                return volume_data_run(op);
        }
        return 0;
}

static bool op_persists(VolumeOpKind k) {
        return k != VOP_VERIFY && k != VOP_QUERY && k != VOP_IMPORT_BEGIN && k != VOP_EXPORT && k != VOP_EXPORT_END;
}

/* Whether a volume's record says it is started: only where the storage
 * cannot show it (Driver.shows_started). */
static bool record_started(const Driver *d, bool started) {
        return started && !d->shows_started;
}

static void op_prepare(Task *t) {
        VolumeOp *op = (VolumeOp *) t;
        Volume *v = op->volume;
        /* Copies taken now, after every earlier operation of this volume. */
        op->spec = volume_spec_copy(v->spec);
        op->started = v->started;
        op->started_here = v->started_here;
        if (v->spec->source && !op->spec->source_spec) {
                Volume *src = model_find_volume(v->pool->manager, v->pool->name, v->spec->source);
                op->spec->source_spec = src ? volume_spec_copy(src->spec) : NULL;
        }
        if (op->kind == VOP_IMPORT_END)
                op->path = g_strdup(v->import_path);
        if (op->source)
                op->source_spec = volume_spec_copy(op->source->spec);
        volume_facts_take(op, &op->facts);
        if (volume_may_run(op, &op->facts, &op->err) < 0)
                t->skip = true;
}

static void op_work(Task *t) {
        VolumeOp *op = (VolumeOp *) t;
        Volume *v = op->volume;
        const Driver *d = v->pool->driver;
        const char *state_dir = v->pool->manager->state_dir;
        StorageError serr = STORAGE_ERROR_INIT;

        if (op->kind != VOP_QUERY)
                test_seam_slow(op->spec->vid);
        /* Remove, and a first Start where the storage cannot show it,
         * write the record before the storage changes: a record that cannot
         * be written changes nothing, and a crash in between leaves what the
         * next run recovers (a vid whose leftovers the next Create replaces;
         * a volume started by an earlier run, which its next Start
         * recovers). */
        bool recorded = false;
        bool first_start = op->kind == VOP_START && !op->started;
        if (first_start && !v->discovered && d->volume_verify(v->pool->drv, op->spec, &op->err) < 0) {
                /* refused before anything is written (a missing image) */
                read_info(op);
                return;
        }
        if (!v->discovered && (op->kind == VOP_REMOVE || (first_start && !d->shows_started))) {
                int w = op->kind == VOP_REMOVE
                                ? store_remove_volume(state_dir, v->pool->name, op->spec->vid, &serr)
                                : store_save_volume(state_dir, v->pool->name, op->spec, true, &serr);
                if (w < 0) {
                        se_move(&op->err, &serr);
                        read_info(op);
                        return;
                }
                recorded = true;
        }
        /* what the record says now: written again only if that changes */
        bool may_persist = op_persists(op->kind) && !v->discovered && !recorded;
        g_autoptr(VolumeSpec) before = may_persist ? volume_spec_copy(op->spec) : NULL;
        bool was_started = record_started(d, op->started);
        fo_flushes_defer(op->flushes);
        int r = run_driver(op);
        fo_flushes_defer(NULL);

        /* the volume is as it was: so is its record (op->err says what failed) */
        if (r < 0 && recorded)
                store_save_volume(state_dir, v->pool->name, op->spec, record_started(d, op->started), NULL);
        if (op->kind == VOP_REMOVE && r >= 0)
                return;
        if (r >= 0 && may_persist &&
            (op->kind == VOP_CREATE ||
             store_volume_record_differs(before, was_started, op->spec, record_started(d, op->started))) &&
            store_save_volume(state_dir, v->pool->name, op->spec, record_started(d, op->started), &serr) < 0) {
                /* the record's error is the one to report */
                if (op->kind == VOP_CREATE)
                        d->volume_remove(v->pool->drv, op->spec, NULL);
                se_move(&op->err, &serr);
        }
        read_info(op);
}

/* Every error message names the volume it is about. */
static void name_volume(VolumeOp *op) {
        StorageError *e = &op->err;
        const char *vid = op->volume->spec->vid;
        if (e->code == SE_OK || (e->message && strstr(e->message, vid)))
                return;
        char *named = g_strdup_printf("%s:%s: %s", op->volume->pool->name, vid, e->message ? e->message : "failed");
        free(e->message);
        e->message = strdup(named);
        g_free(named);
}

static void op_finish(VolumeOp *op) {
        name_volume(op);
        if (op->done)
                op->done(op, op->userdata);
        volume_op_free(op);
}

/* Operations that change what the volume's snapshots say (IsOutdated, the
 * data their next Start copies): a commit by Stop, Revert, an import, a
 * Resize, a Remove. */
static bool changes_dependants(VolumeOpKind k) {
        return k == VOP_STOP || k == VOP_REVERT || k == VOP_RESIZE || k == VOP_IMPORT || k == VOP_IMPORT_END ||
               k == VOP_IMPORT_VOLUME || k == VOP_REMOVE;
}

static void dependant_read(VolumeOp *q, void *userdata) {
        VolumeOp *op = userdata;
        if (--op->dependants_left == 0)
                op_finish(op);
}

/* Every volume changed by op is current before op's reply: a re-read of each
 * snapshot of op's volume, in that volume's own order. True when op now
 * waits for them. */
static bool reread_dependants(VolumeOp *op) {
        Volume *v = op->volume;
        g_autoptr(GPtrArray) vols = pool_volumes_sorted(v->pool);
        op->dependants_left = 1; /* held while submitting */
        for (guint i = 0; i < vols->len; i++) {
                Volume *w = vols->pdata[i];
                if (w != v && g_strcmp0(w->spec->source, v->spec->vid) == 0) {
                        op->dependants_left++;
                        volume_op_submit(volume_op_new(VOP_QUERY, w, dependant_read, op));
                }
        }
        return --op->dependants_left > 0;
}

static void op_done(Task *t) {
        VolumeOp *op = (VolumeOp *) t;
        Volume *v = op->volume;
        if (t->abandoned)
                se_set(&op->err, SE_FAILED, "Not run: qubes-storaged is stopping");
        bool ok = op->err.code == SE_OK;

        if (!t->skip) {
                if (op->kind == VOP_REMOVE && ok)
                        model_remove_volume(v);
                else if (op->kind == VOP_CREATE) {
                        g_hash_table_remove(v->pool->reserved, v->spec->vid);
                        if (ok) {
                                volume_set_info(v, &op->info);
                                v->info_usec = op->info_usec;
                                model_add_volume(volume_ref(v));
                        }
                } else {
                        if (ok && op->kind == VOP_START)
                                v->started_here = true;
                        /* one update: one PropertiesChanged */
                        volume_update(v, ok ? g_steal_pointer(&op->spec) : NULL, op->started, &op->info);
                        v->info_usec = op->info_usec;
                }
                if (op->kind != VOP_QUERY && op->kind != VOP_VERIFY)
                        pool_usage_request(v->pool);
                volume_data_done(op);
        } else if (op->kind == VOP_CREATE)
                g_hash_table_remove(v->pool->reserved, v->spec->vid);

        if (!t->skip && changes_dependants(op->kind) && reread_dependants(op))
                return; /* replies when the last of them is read */
        op_finish(op);
}

void volume_op_free(VolumeOp *op) {
        se_clear(&op->err);
        volume_spec_free(op->spec);
        volume_info_clear(&op->info);
        g_free(op->revision);
        g_free(op->path);
        g_free(op->message);
        g_free(op->owner);
        if (op->fd >= 0)
                close(op->fd);
        volume_spec_free(op->source_spec);
        if (op->source)
                volume_unref(op->source);
        volume_unref(op->volume);
        g_free(op);
}

VolumeOp *volume_op_new(VolumeOpKind kind, Volume *v, VolumeOpDone done, void *userdata) {
        VolumeOp *op = g_new0(VolumeOp, 1);
        op->task.prepare = op_prepare;
        op->task.work = op_work;
        op->task.done = op_done;
        op->kind = kind;
        op->task.streaming = kind == VOP_IMPORT || kind == VOP_IMPORT_VOLUME;
        op->fd = -1;
        op->volume = volume_ref(v);
        op->done = done;
        op->userdata = userdata;
        return op;
}

int volume_create_check(Pool *p, VolumeSpec *s, StorageError *err) {
        if (p->removed)
                return se_set(err, SE_NO_SUCH_POOL, "Unknown storage pool %s", p->name);
        if (!p->driver->creates_volumes)
                return se_set(err, SE_NOT_SUPPORTED, "Pool %s (driver %s) does not create volumes", p->name,
                              p->driver->name);
        /* No driver encrypts volatile data with a throw-away key yet: refused
         * rather than written in clear. */
        if (s->ephemeral)
                return se_set(err, SE_NOT_SUPPORTED,
                              "Volume %s (pool %s): the %s driver does not support ephemeral volumes", s->name,
                              p->name, p->driver->name);
        if (s->source) {
                Volume *src = g_hash_table_lookup(p->volumes, s->source);
                if (!src)
                        return se_set(err, SE_NO_SUCH_VOLUME, "Source volume %s not found in pool %s", s->source,
                                      p->name);
                s->source_spec = volume_spec_copy(src->spec);
                if (s->size == 0)
                        s->size = src->info.size;
        }
        if (s->size == 0)
                return se_set(err, SE_INVALID_ARGUMENT, "Missing size for volume %s (pool %s)", s->name, p->name);
        if (s->revisions_to_keep < 0)
                s->revisions_to_keep = p->revisions_to_keep;
        else if (revisions_check(p->driver, s->revisions_to_keep, s->name, err) < 0)
                return -1;
        if (p->driver->volume_init(p->drv, s, err) < 0)
                return -1;
        if (!valid_vid(s->vid))
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid vid '%s' (pool %s)", s->vid, p->name);
        return 0;
}

VolumeOp *volume_op_new_create(Pool *p, VolumeSpec *s, StorageError *err) {
        if (g_hash_table_contains(p->volumes, s->vid) || g_hash_table_contains(p->reserved, s->vid)) {
                se_set(err, SE_ALREADY_EXISTS, "Volume %s already exists in pool %s", s->vid, p->name);
                volume_spec_free(s);
                return NULL;
        }
        g_hash_table_add(p->reserved, g_strdup(s->vid));
        Volume *v = volume_new(p, s, false);
        VolumeOp *op = volume_op_new(VOP_CREATE, v, NULL, NULL);
        volume_unref(v);
        return op;
}

void volume_op_submit(VolumeOp *op) {
        task_submit(op->volume->pool->manager->tasks, &op->task, op->volume->queue);
}

/* Startup only, before the loop runs. */
void volume_query_now(Volume *v) {
        VolumeInfo info = { 0 };
        /* no caller to tell: a failed read still fills info (driver.h) */
        uint64_t when = clock_usec(CLOCK_MONOTONIC);
        v->pool->driver->volume_query(v->pool->drv, v->spec, &info, NULL);
        if (v->pool->driver->shows_started)
                v->started = info.running; /* not recorded: the storage says */
        volume_set_info(v, &info);
        v->info_usec = when;
}

static void reread_done(VolumeOp *op, void *userdata) {
        op->volume->reread_queued = false;
}

void volume_view_read(Volume *v) {
        if (v->reread_queued || v->removed || v->pool->removed)
                return;
        if (v->info_usec > 0 && clock_usec(CLOCK_MONOTONIC) - v->info_usec <= VOLUME_VIEW_MAX_AGE_USEC)
                return;
        v->reread_queued = true;
        volume_op_submit(volume_op_new(VOP_QUERY, v, reread_done, NULL));
}
