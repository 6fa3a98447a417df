#include "pool-ops.h"

#include <errno.h>
#include <string.h>

#include "macros.h"
#include "manager.h"
#include "pool-rules.h"
#include "store.h"
#include "usage.h"
#include "validate.h"
#include "volume-ops.h"

int pool_add_check(const char *name, const char *driver, const Driver **d, StorageError *err) {
        if (!valid_pool_name(name))
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid pool name '%s'", name);
        *d = driver_find(driver);
        if (!*d)
                return se_set(err, SE_UNKNOWN_DRIVER, "No driver %s for pool %s", driver, name);
        return 0;
}

/* Config keys of every pool, read by the service, not the driver. */
static bool is_service_key(const char *k) {
        return strcmp(k, "usage_warning") == 0 || strcmp(k, "usage_critical") == 0;
}

/* Checks the parameters against the driver (normalising config in place,
 * filling revisions_to_keep) and the usage limits, and opens the driver's
 * pool. No I/O. */
static Pool *pool_open_config(Manager *m, const char *name, const Driver *d, GHashTable *config, StorageError *err) {
        GHashTableIter it;
        gpointer k;
        g_hash_table_iter_init(&it, config);
        while (g_hash_table_iter_next(&it, &k, NULL))
                if (!g_strv_contains(d->params, k) && !is_service_key(k)) {
                        se_set(err, SE_INVALID_ARGUMENT, "Unknown parameter '%s' for driver %s (pool %s)",
                               (const char *) k, d->name, name);
                        return NULL;
                }
        int revisions = 0;
        if (g_strv_contains(d->params, "revisions_to_keep")) {
                const char *s = g_hash_table_lookup(config, "revisions_to_keep");
                revisions = 1;
                if (s && parse_revisions(s, &revisions) < 0) {
                        se_set(err, SE_INVALID_ARGUMENT, "Invalid revisions_to_keep '%s' for pool %s", s, name);
                        return NULL;
                }
                g_autofree char *what = g_strdup_printf("Pool %s", name);
                if (revisions_check(d, revisions, what, err) < 0)
                        return NULL;
                g_hash_table_replace(config, g_strdup("revisions_to_keep"), g_strdup_printf("%d", revisions));
        }
        unsigned warning, critical;
        if (usage_limits_from_config(config, name, &warning, &critical, err) < 0)
                return NULL;
        void *drv = NULL;
        StorageError e = STORAGE_ERROR_INIT;
        if (d->pool_open(config, &drv, &e) < 0) {
                se_set(err, e.code, "Pool %s: %s", name, e.message);
                se_clear(&e);
                return NULL;
        }
        return pool_new(m, name, d, drv, config, revisions);
}

/* Loop side: queues a VOP_QUERY for every volume of the pool. */
static void pool_refresh_volumes(Pool *p) {
        g_autoptr(GPtrArray) vols = pool_volumes_sorted(p);
        for (size_t i = 0; i < vols->len; i++)
                volume_op_submit(volume_op_new(VOP_QUERY, vols->pdata[i], NULL, NULL));
}

static void op_prepare(Task *t) {
        PoolOp *op = (PoolOp *) t;
        if (op->kind == POP_ADD)
                op->others = pool_claims_snapshot(op->pool->manager);
}

static void op_work(Task *t) {
        PoolOp *op = (PoolOp *) t;
        Pool *p = op->pool;
        const char *state_dir = p->manager->state_dir;
        switch (op->kind) {
        case POP_ADD:
                if (pool_claims_check(op->others, p->name, p->driver, p->config, &op->err) < 0)
                        return;
                if (p->driver->pool_setup(p->drv, &op->err) < 0)
                        return;
                /* the pool is added: a usage it cannot read yet stays 0 until
                 * the next refresh, it does not fail AddPool */
                if (store_save_pool(state_dir, p->name, p->driver->name, p->config, &op->err) == 0)
                        p->driver->pool_usage(p->drv, &op->usage, NULL);
                return;
        case POP_REMOVE:
                store_remove_pool(state_dir, p->name, &op->err);
                return;
        case POP_SET_REVISIONS:
        case POP_SET_LIMITS:
                store_save_pool(state_dir, p->name, p->driver->name, op->config, &op->err);
                return;
        case POP_REFRESH:
        case _POP_MAX:
                break;
        }
}

static void op_finish(PoolOp *op) {
        if (op->done)
                op->done(op, op->userdata);
        pool_op_free(op);
}

static void op_done(Task *t) {
        PoolOp *op = (PoolOp *) t;
        Pool *p = op->pool;
        if (t->abandoned)
                se_set(&op->err, SE_FAILED, "Not run for pool %s: qubes-storaged is stopping", p->name);
        bool ok = op->err.code == SE_OK;
        switch (op->kind) {
        case POP_ADD:
                if (p->manager->adding)
                        g_hash_table_remove(p->manager->adding, p->name);
                if (!ok)
                        break;
                /* published with its usage already known */
                p->usage = op->usage;
                model_add_pool(pool_ref(p));
                if (!op->now) /* before the loop, the start reads every pool */
                        pool_usage_request(p);
                break;
        case POP_REMOVE:
                if (ok)
                        model_remove_pool(p);
                else
                        p->removed = false;
                break;
        case POP_SET_REVISIONS:
                if (ok && pool_recheck(op) == 0)
                        pool_set_config(p, op->config, op->revisions_to_keep);
                break;
        case POP_SET_LIMITS:
                if (ok && pool_recheck(op) == 0)
                        pool_set_config(p, op->config, p->revisions_to_keep);
                break;
        case POP_REFRESH:
        case _POP_MAX:
                break;
        }
        op_finish(op);
}

/* The pool's usage is fresh (and the driver's caches): the volumes next. */
static void refresh_done(Pool *p, void *userdata) {
        PoolOp *op = userdata;
        if (pool_recheck(op) == 0)
                pool_refresh_volumes(p);
        op_finish(op);
}

static PoolOp *op_new(PoolOpKind kind, Pool *p, PoolOpDone done, void *userdata) {
        PoolOp *op = g_new0(PoolOp, 1);
        op->task.prepare = op_prepare;
        op->task.work = op_work;
        op->task.done = op_done;
        op->kind = kind;
        op->pool = p;
        op->done = done;
        op->userdata = userdata;
        return op;
}

PoolOp *pool_op_new_add(Manager *m, const char *name, const Driver *d, GHashTable *config, PoolOpDone done,
                        void *userdata, StorageError *err) {
        Pool *p = pool_open_config(m, name, d, config, err);
        return p ? op_new(POP_ADD, p, done, userdata) : NULL;
}

PoolOp *pool_op_new(PoolOpKind kind, Pool *p, PoolOpDone done, void *userdata) {
        return op_new(kind, pool_ref(p), done, userdata);
}

void pool_op_free(PoolOp *op) {
        se_clear(&op->err);
        if (op->config)
                g_hash_table_unref(op->config);
        pool_claims_free(op->others);
        pool_unref(op->pool);
        g_free(op);
}

void pool_op_submit(PoolOp *op) {
        Pool *p = op->pool;
        Manager *m = p->manager;
        PoolFacts facts;
        pool_facts_take(op, &facts);
        if (pool_may_run(op, &facts, &op->err) < 0) {
                op_finish(op);
                return;
        }
        switch (op->kind) {
        case POP_ADD:
                if (!m->adding)
                        m->adding = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                g_hash_table_add(m->adding, g_strdup(p->name));
                if (!m->add_queue)
                        m->add_queue = task_queue_new();
                task_submit(m->tasks, &op->task, m->add_queue);
                return;
        case POP_REMOVE:
                p->removed = true;
                task_submit(m->tasks, &op->task, p->queue);
                return;
        case POP_SET_REVISIONS:
        case POP_SET_LIMITS: {
                /* the config to save: the pool's, with the new values */
                op->config = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
                GHashTableIter it;
                gpointer k, v;
                g_hash_table_iter_init(&it, p->config);
                while (g_hash_table_iter_next(&it, &k, &v))
                        g_hash_table_insert(op->config, g_strdup(k), g_strdup(v));
                if (op->kind == POP_SET_LIMITS) {
                        g_hash_table_replace(op->config, g_strdup("usage_warning"),
                                             g_strdup_printf("%u", op->usage_warning));
                        g_hash_table_replace(op->config, g_strdup("usage_critical"),
                                             g_strdup_printf("%u", op->usage_critical));
                } else if (g_strv_contains(p->driver->params, "revisions_to_keep"))
                        g_hash_table_replace(op->config, g_strdup("revisions_to_keep"),
                                             g_strdup_printf("%d", op->revisions_to_keep));
                task_submit(m->tasks, &op->task, p->queue);
                return;
        }
        case POP_REFRESH:
                pool_usage_refresh(p, refresh_done, op);
                return;
        case _POP_MAX:
                break;
        }
        g_assert_not_reached();
}

/* Before the loop: the same op, its steps run here (no rule of pool-rules.c
 * can refuse it: there are no pools yet). */
static void op_run_now(PoolOp *op) {
        op->now = true;
        op_prepare(&op->task);
        op_work(&op->task);
        op_done(&op->task);
}

/* A name the storage shows that cannot be a vid (not UTF-8, characters a vid
 * cannot hold) is skipped, with one warning per pool and name: publishing it
 * would break ListVolumes and GetManagedObjects for every client. */
static bool scanned_vid_ok(Pool *p, const char *vid) {
        Manager *m = p->manager;
        if (valid_vid(vid))
                return true;
        if (!m->warned_vids)
                m->warned_vids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        char *key = g_strconcat(p->name, "\n", vid, NULL);
        if (g_hash_table_add(m->warned_vids, key)) {
                g_autofree char *shown = g_strescape(vid, NULL);
                g_warning("Pool %s: skipping '%s': not a valid volume id", p->name, shown);
        }
        return false;
}

/* Publishes the volumes the storage defines and drops those that vanished;
 * now: before the loop, each new volume is read here. */
static void apply_scan(Pool *p, char **vids, bool now) {
        g_autoptr(GPtrArray) current = pool_volumes_sorted(p);
        for (size_t i = 0; i < current->len; i++) {
                Volume *v = current->pdata[i];
                if (v->discovered && (!vids || !g_strv_contains((const char *const *) vids, v->spec->vid)))
                        model_remove_volume(v);
        }
        for (size_t i = 0; vids && vids[i]; i++) {
                if (g_hash_table_contains(p->volumes, vids[i]) || !scanned_vid_ok(p, vids[i]))
                        continue;
                VolumeSpec *s = g_new0(VolumeSpec, 1);
                s->vid = g_strdup(vids[i]);
                s->name = g_strdup(vids[i]);
                s->vm = g_strdup("");
                Volume *v = volume_new(p, s, false);
                v->discovered = true;
                if (now)
                        volume_query_now(v);
                model_add_volume(v);
                if (!now)
                        volume_op_submit(volume_op_new(VOP_QUERY, v, NULL, NULL));
        }
}

static void on_scanned(Pool *p, char **vids) {
        apply_scan(p, vids, false);
}

static void load_pool(const char *name, const char *driver, GHashTable *config, void *userdata) {
        const Driver *d = driver_find(driver);
        if (!d || !valid_pool_name(name)) {
                g_warning("Skipping pool %s: unknown driver '%s' or invalid name", name, driver);
                return;
        }
        StorageError err = STORAGE_ERROR_INIT;
        Pool *p = pool_open_config(userdata, name, d, config, &err);
        if (!p) {
                g_warning("Skipping pool %s: %s", name, err.message);
                se_clear(&err);
                return;
        }
        model_add_pool(p);
}

static void load_volume(const char *pool, const VolumeSpec *spec, bool started, void *userdata) {
        Pool *p = model_find_pool(userdata, pool);
        if (!p || !p->driver->creates_volumes)
                return;
        VolumeSpec *s = volume_spec_copy(spec);
        StorageError err = STORAGE_ERROR_INIT;
        if (!valid_vid(s->vid) || !valid_vm_name(s->name) || !valid_vm_name(s->vm) ||
            p->driver->volume_init(p->drv, s, &err) < 0 || !valid_vid(s->vid) || strcmp(s->vid, spec->vid) != 0 ||
            g_hash_table_contains(p->volumes, s->vid)) {
                g_warning("Skipping volume %s:%s: invalid record%s%s", pool, spec->vid, err.message ? ": " : "",
                          err.message ? err.message : "");
                se_clear(&err);
                volume_spec_free(s);
                return;
        }
        model_add_volume(volume_new(p, s, started));
}

static void default_added(PoolOp *op, void *userdata) {
        int *r = userdata;
        if (op->err.code == SE_OK)
                return;
        g_warning("Cannot create the default pool %s on %s: %s", op->pool->name,
                  (const char *) g_hash_table_lookup(op->pool->config, "dir_path"), op->err.message);
        *r = -EIO;
}

static int add_default_pool(Manager *m, const char *name, const char *driver, const char *dir) {
        const Driver *d = driver_find(driver);
        g_autoptr(GHashTable) config = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_hash_table_insert(config, g_strdup("dir_path"), g_strdup(dir));
        StorageError err = STORAGE_ERROR_INIT;
        int r = 0;
        PoolOp *op = pool_op_new_add(m, name, d, config, default_added, &r, &err);
        if (!op) {
                g_warning("Cannot create the default pool %s on %s: %s", name, dir, err.message);
                se_clear(&err);
                return -EIO;
        }
        op_run_now(op);
        return r;
}

int pool_ops_load(Manager *m, const char *base_dir) {
        StorageError err = STORAGE_ERROR_INIT;
        if (store_init(m->state_dir, &err) < 0) {
                g_critical("%s", err.message);
                se_clear(&err);
                return -EIO;
        }
        StoreLoader loader = { load_pool, load_volume, m };
        int skipped = store_load(m->state_dir, &loader);
        g_autoptr(GPtrArray) pools = model_pools(m);
        if (pools->len == 0 && skipped == 0) {
                g_autofree char *kernels = g_build_filename(base_dir, "vm-kernels", NULL);
                /* file-reflink where the base directory can share extents */
                g_mkdir_with_parents(base_dir, 0755);
                const char *driver = driver_for_dir(base_dir)->name;
                if (add_default_pool(m, "varlibqubes", driver, base_dir) < 0 ||
                    add_default_pool(m, "linux-kernel", "linux-kernel", kernels) < 0)
                        return -EIO;
                g_ptr_array_unref(pools);
                pools = model_pools(m);
        }
        for (size_t i = 0; i < pools->len; i++) {
                Pool *p = pools->pdata[i];
                char **vids = NULL;
                if (pool_usage_read_now(p, &vids))
                        apply_scan(p, vids, true);
                g_strfreev(vids);
                g_autoptr(GPtrArray) vols = pool_volumes_sorted(p);
                for (size_t j = 0; j < vols->len; j++) {
                        Volume *v = vols->pdata[j];
                        if (v->discovered)
                                continue;
                        if (p->driver->volume_cleanup && p->driver->volume_cleanup(p->drv, v->spec, &err) < 0) {
                                g_warning("%s:%s: %s", p->name, v->spec->vid, err.message);
                                se_clear(&err);
                        }
                        volume_query_now(v);
                }
        }
        return 0;
}

static int on_period(sd_event_source *s, uint64_t usec, void *userdata) {
        g_autoptr(GPtrArray) pools = model_pools(userdata);
        for (size_t i = 0; i < pools->len; i++) {
                pool_usage_request(pools->pdata[i]);
                pool_refresh_volumes(pools->pdata[i]);
        }
        int r = sd_event_source_set_time_relative(s, POOL_REFRESH_PERIOD_SEC * USEC_PER_SEC);
        return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

int pool_ops_init(Manager *m) {
        usage_init(m, on_scanned);
        return sd_event_add_time_relative(m->event, &m->periodic, CLOCK_MONOTONIC,
                                          POOL_REFRESH_PERIOD_SEC * USEC_PER_SEC, 0, on_period, m);
}

void pool_ops_shutdown(Manager *m) {
        m->periodic = sd_event_source_disable_unref(m->periodic);
        /* an add op still queued holds the queue */
        g_clear_pointer(&m->add_queue, task_queue_unref);
        g_clear_pointer(&m->adding, g_hash_table_destroy);
        g_clear_pointer(&m->warned_vids, g_hash_table_destroy);
        usage_shutdown(m);
}
