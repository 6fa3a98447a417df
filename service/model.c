#include "model.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "paths.h"

static GHashTable *pools_table(Manager *m) {
        if (!m->pools)
                m->pools = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) pool_unref);
        return m->pools;
}

Pool *pool_new(Manager *m, const char *name, const Driver *driver, void *drv, GHashTable *config,
               int revisions_to_keep) {
        Pool *p = g_new0(Pool, 1);
        p->ref = 1;
        p->manager = m;
        p->name = g_strdup(name);
        p->object_path = pool_object_path(name);
        p->driver = driver;
        p->drv = drv;
        p->config = g_hash_table_ref(config);
        p->revisions_to_keep = revisions_to_keep;
        /* checked before a pool is made (pool-ops.c): an error cannot happen here */
        usage_limits_from_config(config, name, &p->usage_warning, &p->usage_critical, NULL);
        p->volumes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) volume_unref);
        p->reserved = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        p->queue = task_queue_new();
        return p;
}

Pool *pool_ref(Pool *p) {
        p->ref++;
        return p;
}

void pool_unref(Pool *p) {
        if (!p || --p->ref > 0)
                return;
        g_hash_table_unref(p->volumes);
        g_hash_table_unref(p->reserved);
        g_hash_table_unref(p->config);
        if (p->usage_waiters)
                g_ptr_array_unref(p->usage_waiters);
        if (p->driver && p->drv)
                p->driver->pool_free(p->drv);
        task_queue_unref(p->queue);
        free(p->object_path);
        g_free(p->name);
        g_free(p);
}

void model_add_pool(Pool *p) {
        g_hash_table_insert(pools_table(p->manager), p->name, p);
        if (p->manager->hooks.pool_added)
                p->manager->hooks.pool_added(p);
}

void model_remove_pool(Pool *p) {
        p->removed = true;
        /* What is left are volumes the storage defined (linux-kernel): they
         * go with the pool, announced, and their references to it dropped. */
        g_autoptr(GPtrArray) vols = pool_volumes_sorted(p);
        for (size_t i = 0; i < vols->len; i++)
                model_remove_volume(vols->pdata[i]);
        if (p->manager->hooks.pool_removed)
                p->manager->hooks.pool_removed(p);
        g_hash_table_remove(pools_table(p->manager), p->name);
}

void model_free(Manager *m) {
        m->hooks = (ModelHooks) { 0 };
        if (!m->pools)
                return;
        /* a volume holds its pool: drop the volumes first */
        GHashTableIter it;
        gpointer value;
        g_hash_table_iter_init(&it, m->pools);
        while (g_hash_table_iter_next(&it, NULL, &value))
                g_hash_table_remove_all(((Pool *) value)->volumes);
        g_clear_pointer(&m->pools, g_hash_table_destroy);
}

Pool *model_find_pool(Manager *m, const char *name) {
        return g_hash_table_lookup(pools_table(m), name);
}

static int cmp_pool(gconstpointer a, gconstpointer b) {
        return strcmp((*(Pool *const *) a)->name, (*(Pool *const *) b)->name);
}

static int cmp_volume(gconstpointer a, gconstpointer b) {
        return strcmp((*(Volume *const *) a)->spec->vid, (*(Volume *const *) b)->spec->vid);
}

static GPtrArray *sorted_values(GHashTable *t, GCompareFunc cmp) {
        GPtrArray *a = g_ptr_array_sized_new(g_hash_table_size(t));
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, t);
        while (g_hash_table_iter_next(&it, NULL, &v))
                g_ptr_array_add(a, v);
        g_ptr_array_sort(a, cmp);
        return a;
}

GPtrArray *model_pools(Manager *m) {
        return sorted_values(pools_table(m), cmp_pool);
}

GPtrArray *pool_volumes_sorted(Pool *p) {
        return sorted_values(p->volumes, cmp_volume);
}

unsigned pool_created_volumes(Pool *p) {
        unsigned n = g_hash_table_size(p->reserved);
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, p->volumes);
        while (g_hash_table_iter_next(&it, NULL, &v))
                if (!((Volume *) v)->discovered)
                        n++;
        return n;
}

/* Whether used of size is at or above limit percent. */
static bool at_or_above(uint64_t used, uint64_t size, unsigned limit) {
        return size > 0 && (unsigned __int128) used * 100 >= (unsigned __int128) size * limit;
}

static const char *state_of(const PoolUsage *u, unsigned warning, unsigned critical) {
        if (!u->has_data)
                return "";
        if (at_or_above(u->usage, u->size, critical) ||
            (u->has_metadata && at_or_above(u->metadata_usage, u->metadata_size, critical)))
                return "critical";
        if (at_or_above(u->usage, u->size, warning) ||
            (u->has_metadata && at_or_above(u->metadata_usage, u->metadata_size, warning)))
                return "warning";
        return "ok";
}

const char *pool_usage_state(const Pool *p) {
        return state_of(&p->usage, p->usage_warning, p->usage_critical);
}

uint64_t pool_provisioned(const Pool *p) {
        uint64_t sum = 0;
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, p->volumes);
        while (g_hash_table_iter_next(&it, NULL, &v))
                sum += ((Volume *) v)->info.size;
        return sum;
}

/* Announces a new sum of the volumes' sizes. */
static void pool_recount(Pool *p) {
        uint64_t now = pool_provisioned(p);
        if (now == p->provisioned)
                return;
        p->provisioned = now;
        if (!p->removed && p->manager->hooks.pool_changed)
                p->manager->hooks.pool_changed(p, (const char *const[]) { "Provisioned", "UsageDetails", NULL });
}

void pool_set_usage(Pool *p, const PoolUsage *u) {
        const char *changed[5];
        size_t n = 0;
        if (u->size != p->usage.size)
                changed[n++] = "Size";
        if (u->usage != p->usage.usage)
                changed[n++] = "Usage";
        if (n > 0 || u->metadata_size != p->usage.metadata_size || u->metadata_usage != p->usage.metadata_usage ||
            u->has_data != p->usage.has_data || u->has_metadata != p->usage.has_metadata)
                changed[n++] = "UsageDetails";
        if (strcmp(state_of(u, p->usage_warning, p->usage_critical), pool_usage_state(p)) != 0)
                changed[n++] = "UsageState";
        changed[n] = NULL;
        p->usage = *u;
        if (n > 0 && p->manager->hooks.pool_changed)
                p->manager->hooks.pool_changed(p, changed);
}

void pool_set_config(Pool *p, GHashTable *config, int revisions_to_keep) {
        unsigned warning = USAGE_WARNING_DEFAULT, critical = USAGE_CRITICAL_DEFAULT;
        usage_limits_from_config(config, p->name, &warning, &critical, NULL); /* checked when it was made */
        const char *before = pool_usage_state(p);
        const char *changed[5];
        size_t n = 0;
        if (p->revisions_to_keep != revisions_to_keep)
                changed[n++] = "RevisionsToKeep";
        if (p->usage_warning != warning || p->usage_critical != critical)
                changed[n++] = "UsageLimits";
        g_hash_table_unref(p->config);
        p->config = g_hash_table_ref(config);
        p->revisions_to_keep = revisions_to_keep;
        p->usage_warning = warning;
        p->usage_critical = critical;
        if (strcmp(before, pool_usage_state(p)) != 0)
                changed[n++] = "UsageState";
        if (n > 0)
                changed[n++] = "Config";
        changed[n] = NULL;
        if (n > 0 && p->manager->hooks.pool_changed)
                p->manager->hooks.pool_changed(p, changed);
}

static int parse_percent(const char *s, unsigned *out) {
        if (!s || !*s || strlen(s) > 3)
                return -EINVAL;
        unsigned n = 0;
        for (const char *c = s; *c; c++) {
                if (*c < '0' || *c > '9')
                        return -EINVAL;
                n = n * 10 + (unsigned) (*c - '0');
        }
        *out = n;
        return 0;
}

int usage_limits_check(unsigned warning, unsigned critical, const char *pool, StorageError *err) {
        if (warning < 1 || warning > critical || critical > 100)
                return se_set(err, SE_INVALID_ARGUMENT,
                              "Invalid usage limits %u, %u for pool %s: needs 1 <= warning <= critical <= 100",
                              warning, critical, pool);
        return 0;
}

int usage_limits_from_config(GHashTable *config, const char *pool, unsigned *warning, unsigned *critical,
                             StorageError *err) {
        *warning = USAGE_WARNING_DEFAULT;
        *critical = USAGE_CRITICAL_DEFAULT;
        const char *keys[] = { "usage_warning", "usage_critical" };
        unsigned *out[] = { warning, critical };
        for (int i = 0; i < 2; i++) {
                const char *s = g_hash_table_lookup(config, keys[i]);
                if (s && parse_percent(s, out[i]) < 0)
                        return se_set(err, SE_INVALID_ARGUMENT, "Invalid %s '%s' for pool %s: a percentage, 1-100",
                                      keys[i], s, pool);
        }
        return usage_limits_check(*warning, *critical, pool, err);
}

Volume *volume_new(Pool *pool, VolumeSpec *spec, bool started) {
        Volume *v = g_new0(Volume, 1);
        v->ref = 1;
        v->pool = pool_ref(pool);
        v->spec = spec;
        v->started = started;
        v->object_path = volume_object_path(pool->name, spec->vid);
        v->queue = task_queue_new();
        v->info.size = spec->size;
        volume_info_fill_defaults(&v->info);
        return v;
}

Volume *volume_ref(Volume *v) {
        v->ref++;
        return v;
}

void volume_unref(Volume *v) {
        if (!v || --v->ref > 0)
                return;
        volume_spec_free(v->spec);
        volume_info_clear(&v->info);
        if (v->exports)
                g_ptr_array_unref(v->exports);
        g_free(v->import_path);
        g_free(v->import_owner);
        task_queue_unref(v->queue);
        free(v->object_path);
        pool_unref(v->pool);
        g_free(v);
}

void model_add_volume(Volume *v) {
        g_hash_table_insert(v->pool->volumes, v->spec->vid, v);
        const ModelHooks *hooks = &v->pool->manager->hooks;
        if (hooks->volume_added)
                hooks->volume_added(v);
        pool_recount(v->pool);
}

void model_remove_volume(Volume *v) {
        v->removed = true;
        const ModelHooks *hooks = &v->pool->manager->hooks;
        if (hooks->volume_removed)
                hooks->volume_removed(v);
        Pool *p = v->pool;
        g_hash_table_remove(p->volumes, v->spec->vid); /* may drop the last reference to v */
        pool_recount(p);
}

Volume *model_find_volume(Manager *m, const char *pool, const char *vid) {
        Pool *p = model_find_pool(m, pool);
        return p ? g_hash_table_lookup(p->volumes, vid) : NULL;
}

Volume *model_find_volume_by_path(Manager *m, const char *object_path) {
        g_autofree char *pool = NULL, *vid = NULL;
        if (!parse_volume_path(object_path, &pool, &vid))
                return NULL;
        return model_find_volume(m, pool, vid);
}

static bool revisions_equal(const VolumeInfo *a, const VolumeInfo *b) {
        if (a->n_revisions != b->n_revisions)
                return false;
        for (size_t i = 0; i < a->n_revisions; i++)
                if (strcmp(a->revisions[i].id, b->revisions[i].id) != 0 ||
                    strcmp(a->revisions[i].timestamp, b->revisions[i].timestamp) != 0)
                        return false;
        return true;
}

/* A volume clients know of: in its pool's table, not removed. Changes of
 * any other volume (one being created) are not announced: its
 * InterfacesAdded, when it comes, carries its values. */
static bool volume_published(Volume *v) {
        return !v->removed && g_hash_table_lookup(v->pool->volumes, v->spec->vid) == v;
}

static size_t take_spec(Volume *v, VolumeSpec *spec, bool started, const char **changed, size_t n) {
        if (spec->rw != v->spec->rw)
                changed[n++] = "Rw";
        if (spec->revisions_to_keep != v->spec->revisions_to_keep)
                changed[n++] = "RevisionsToKeep";
        if (started != v->started)
                changed[n++] = "Started";
        /* The vid keys the pool's table: keep the same string. */
        g_assert(strcmp(spec->vid, v->spec->vid) == 0);
        char *vid = v->spec->vid;
        v->spec->vid = spec->vid;
        spec->vid = vid;
        volume_spec_free(v->spec);
        v->spec = spec;
        v->started = started;
        return n;
}

static size_t take_info(Volume *v, VolumeInfo *info, const char **changed, size_t n) {
        volume_info_fill_defaults(info);
        VolumeInfo *o = &v->info;
        if (o->size != info->size)
                changed[n++] = "Size";
        if (o->usage != info->usage)
                changed[n++] = "Usage";
        if (o->dirty != info->dirty)
                changed[n++] = "IsDirty";
        if (o->outdated != info->outdated)
                changed[n++] = "IsOutdated";
        if (!revisions_equal(o, info))
                changed[n++] = "Revisions";
        if (strcmp(o->path, info->path) != 0)
                changed[n++] = "Path";
        if (strcmp(o->bdev_path, info->bdev_path) != 0 || strcmp(o->bdev_script, info->bdev_script) != 0 ||
            strcmp(o->bdev_devtype, info->bdev_devtype) != 0 || o->bdev_rw != info->bdev_rw)
                changed[n++] = "BlockDevice";
        if (strcmp(o->kernels_dir, info->kernels_dir) != 0)
                changed[n++] = "KernelsDir";
        volume_info_clear(o);
        *o = *info;
        memset(info, 0, sizeof(*info));
        return n;
}

void volume_update(Volume *v, VolumeSpec *spec, bool started, VolumeInfo *info) {
        const char *changed[16];
        size_t n = 0;
        uint64_t old_size = v->info.size;
        if (spec)
                n = take_spec(v, spec, started, changed, n);
        if (info)
                n = take_info(v, info, changed, n);
        changed[n] = NULL;
        if (!volume_published(v))
                return;
        const ModelHooks *hooks = &v->pool->manager->hooks;
        if (old_size != v->info.size && hooks->volume_size_changed)
                hooks->volume_size_changed(v, old_size, v->info.size);
        if (old_size != v->info.size)
                pool_recount(v->pool);
        if (n > 0 && hooks->volume_changed)
                hooks->volume_changed(v, changed);
}

void volume_set_info(Volume *v, VolumeInfo *info) {
        volume_update(v, NULL, v->started, info);
}

static void export_free(Export *e) {
        g_free(e->path);
        g_free(e->owner);
        g_free(e);
}

void volume_add_export(Volume *v, const char *path, bool stable, const char *owner) {
        if (!v->exports)
                v->exports = g_ptr_array_new_with_free_func((GDestroyNotify) export_free);
        Export *e = g_new0(Export, 1);
        e->path = g_strdup(path);
        e->stable = stable;
        e->owner = g_strdup(owner);
        g_ptr_array_add(v->exports, e);
        const ModelHooks *hooks = &v->pool->manager->hooks;
        if (hooks->volume_exported)
                hooks->volume_exported(v, path, false);
}

Export *volume_find_export(Volume *v, const char *path, const char *owner) {
        for (guint i = 0; path && v->exports && i < v->exports->len; i++) {
                Export *e = v->exports->pdata[i];
                if (strcmp(e->path, path) == 0 && (!owner || g_strcmp0(e->owner, owner) == 0))
                        return e;
        }
        return NULL;
}

bool volume_remove_export(Volume *v, const char *path, const char *owner) {
        Export *e = volume_find_export(v, path, owner);
        if (!e)
                return false;
        g_autofree char *ended = g_strdup(e->path);
        g_ptr_array_remove(v->exports, e);
        const ModelHooks *hooks = &v->pool->manager->hooks;
        if (hooks->volume_exported && !v->removed)
                hooks->volume_exported(v, ended, true);
        return true;
}

bool volume_has_export(Volume *v, bool unstable_only) {
        for (guint i = 0; v->exports && i < v->exports->len; i++)
                if (!unstable_only || !((Export *) v->exports->pdata[i])->stable)
                        return true;
        return false;
}

int parse_revisions(const char *s, int *out) {
        if (!s || !*s)
                return -EINVAL;
        char *end = NULL;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || *end || n < 0 || n > INT_MAX)
                return -EINVAL;
        *out = (int) n;
        return 0;
}

int revisions_check(const Driver *d, int n, const char *what, StorageError *err) {
        if (n < 0)
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid revisions_to_keep %d for %s", n, what);
        if (d->max_revisions_to_keep >= 0 && n > d->max_revisions_to_keep)
                return se_set(err, SE_NOT_SUPPORTED, "%s: the %s driver keeps at most %d revisions, not %d", what,
                              d->name, d->max_revisions_to_keep, n);
        return 0;
}
