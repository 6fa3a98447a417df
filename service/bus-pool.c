/* org.qubes.Storage1.Pool: one object per pool, through a fallback vtable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bus.h"
#include "errors.h"
#include "macros.h"
#include "options.h"
#include "paths.h"
#include "store.h"
#include "usage.h"
#include "validate.h"

static int find_pool(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error) {
        g_autofree char *name = NULL;
        if (!parse_pool_path(path, &name))
                return 0;
        Pool *p = model_find_pool(name);
        if (!p)
                return 0;
        *found = p;
        return 1;
}

static int property_driver(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        return sd_bus_message_append(reply, "s", p->driver->name);
}

static int cmp_keys(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int append_sorted_dict(sd_bus_message *reply, GHashTable *t, char type) {
        g_autofree gpointer *keys = g_hash_table_get_keys_as_array(t, NULL);
        guint n = g_hash_table_size(t);
        qsort(keys, n, sizeof(*keys), cmp_keys);
        char sig[] = { '{', 's', type, '}', 0 };
        int r = sd_bus_message_open_container(reply, 'a', sig);
        for (guint i = 0; r >= 0 && i < n; i++) {
                char entry[] = { 's', type, 0 };
                r = sd_bus_message_open_container(reply, 'e', entry);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, 's', keys[i]);
                if (r >= 0)
                        r = sd_bus_message_append_basic(reply, type, g_hash_table_lookup(t, keys[i]));
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_config(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        g_autoptr(GHashTable) t = g_hash_table_new(g_str_hash, g_str_equal);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, p->config);
        while (g_hash_table_iter_next(&it, &k, &v))
                g_hash_table_insert(t, k, v);
        g_hash_table_insert(t, "name", p->name);
        g_hash_table_insert(t, "driver", (char *) p->driver->name);
        return append_sorted_dict(reply, t, 's');
}

static int property_usage_details(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        const PoolUsage *u = &p->usage;
        g_autoptr(GHashTable) t = g_hash_table_new(g_str_hash, g_str_equal);
        if (u->has_data) {
                g_hash_table_insert(t, "data_size", (gpointer) &u->size);
                g_hash_table_insert(t, "data_usage", (gpointer) &u->usage);
        }
        if (u->has_metadata) {
                g_hash_table_insert(t, "metadata_size", (gpointer) &u->metadata_size);
                g_hash_table_insert(t, "metadata_usage", (gpointer) &u->metadata_usage);
        }
        return append_sorted_dict(reply, t, 't');
}

static int method_list_volumes(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GPtrArray) vols = pool_volumes_sorted(p);
        int r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(so)");
        for (size_t i = 0; r >= 0 && i < vols->len; i++) {
                Volume *v = vols->pdata[i];
                r = sd_bus_message_append(reply, "(so)", v->spec->vid, v->object_path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int method_get_volume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        const char *vid;
        int r = sd_bus_message_read(m, "s", &vid);
        if (r < 0)
                return r;
        Volume *v = g_hash_table_lookup(p->volumes, vid);
        if (!v)
                return error_set(error, SE_NO_SUCH_VOLUME, "No volume %s in pool %s", vid, p->name);
        return sd_bus_reply_method_return(m, "o", v->object_path);
}

static void volume_spec_freep(VolumeSpec **s) {
        volume_spec_free(*s);
}

/* Reads CreateVolume's config into *s; checks what needs no driver. */
static int read_volume_config(sd_bus_message *m, Pool *p, VolumeSpec *s, sd_bus_error *error) {
        s->revisions_to_keep = -1;
        Field f[] = {
                { "name", FIELD_STRING, &s->name, false },
                { "vm", FIELD_STRING, &s->vm, false },
                { "template", FIELD_BOOL, &s->template_vm, false },
                { "vid", FIELD_STRING, &s->vid, false },
                { "size", FIELD_SIZE, &s->size, false },
                { "rw", FIELD_BOOL, &s->rw, false },
                { "snap_on_start", FIELD_BOOL, &s->snap_on_start, false },
                { "save_on_stop", FIELD_BOOL, &s->save_on_stop, false },
                { "source", FIELD_STRING, &s->source, false },
                { "revisions_to_keep", FIELD_INT, &s->revisions_to_keep, false },
                { "ephemeral", FIELD_BOOL, &s->ephemeral, false },
        };
        g_autofree char *object = g_strdup_printf("a new volume of pool %s", p->name);
        int r = read_dict(m, f, G_N_ELEMENTS(f), "config key", object, error);
        if (r < 0)
                return r;
        if (!s->name || !valid_vm_name(s->name))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid or missing volume name '%s' (pool %s)",
                                 s->name ? s->name : "", p->name);
        if (!s->vm || !valid_vm_name(s->vm))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid or missing vm '%s' for volume %s (pool %s)",
                                 s->vm ? s->vm : "", s->name, p->name);
        if (s->vid && !valid_vid(s->vid))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid vid '%s' (pool %s)", s->vid, p->name);
        if (s->snap_on_start && !s->source)
                return error_set(error, SE_INVALID_ARGUMENT,
                                 "snap_on_start specified on '%s' but no volume source set (pool %s)", s->name, p->name);
        if (s->source && !s->snap_on_start)
                return error_set(error, SE_INVALID_ARGUMENT,
                                 "source specified on '%s' but no snap_on_start set (pool %s)", s->name, p->name);
        if (f[4].seen && !valid_size(s->size))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid size %" G_GUINT64_FORMAT " for volume %s (pool %s)",
                                 s->size, s->name, p->name);
        return 0;
}

static int method_create_volume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        _cleanup_(volume_spec_freep) VolumeSpec *s = g_new0(VolumeSpec, 1);
        int r = read_volume_config(m, p, s, error);
        if (r < 0)
                return r;
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", p->name);
        r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        if (p->removed)
                return error_set(error, SE_NO_SUCH_POOL, "Unknown storage pool %s", p->name);
        if (!p->driver->creates_volumes)
                return error_set(error, SE_NOT_SUPPORTED, "Pool %s (driver %s) does not create volumes", p->name,
                                 p->driver->name);
        /* No driver encrypts volatile data with a throw-away key yet: refused
         * rather than written in clear. */
        if (s->ephemeral)
                return error_set(error, SE_NOT_SUPPORTED,
                                 "Volume %s (pool %s): the %s driver does not support ephemeral volumes", s->name,
                                 p->name, p->driver->name);
        Volume *src = NULL;
        if (s->source) {
                src = g_hash_table_lookup(p->volumes, s->source);
                if (!src)
                        return error_set(error, SE_NO_SUCH_VOLUME, "Source volume %s not found in pool %s", s->source,
                                         p->name);
                s->source_spec = volume_spec_copy(src->spec);
                if (s->size == 0)
                        s->size = src->info.size;
        }
        if (s->size == 0)
                return error_set(error, SE_INVALID_ARGUMENT, "Missing size for volume %s (pool %s)", s->name, p->name);
        StorageError serr = STORAGE_ERROR_INIT;
        if (s->revisions_to_keep < 0)
                s->revisions_to_keep = p->revisions_to_keep;
        else if (revisions_check(p->driver, s->revisions_to_keep, s->name, &serr) < 0)
                return error_take(error, &serr);
        if (p->driver->volume_init(p->drv, s, &serr) < 0)
                return error_take(error, &serr);
        if (!valid_vid(s->vid))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid vid '%s' (pool %s)", s->vid, p->name);
        char size_s[32];
        snprintf(size_s, sizeof(size_s), "%" G_GUINT64_FORMAT, s->size);
        const char *details[] = { "pool", p->name, "vid", s->vid, "size", size_s, NULL };
        r = auth_check(m, ACTION_MANAGE_VOLUMES, details, o.no_user_interaction, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        if (g_hash_table_contains(p->volumes, s->vid) || g_hash_table_contains(p->reserved, s->vid))
                return error_set(error, SE_ALREADY_EXISTS, "Volume %s already exists in pool %s", s->vid, p->name);
        g_hash_table_add(p->reserved, g_strdup(s->vid));
        Volume *v = volume_new(p, TAKE_PTR(s), false);
        VolumeOp *op = volume_op_new(VOP_CREATE, v, NULL, NULL);
        volume_unref(v);
        return bus_submit_volume_op(m, op);
}

typedef struct SetPoolRevisions {
        Task task;
        Pool *pool;
        GHashTable *config;
        int n;
        sd_bus_message *message;
        StorageError err;
} SetPoolRevisions;

static void set_revisions_work(Task *t) {
        SetPoolRevisions *a = (SetPoolRevisions *) t;
        store_save_pool(model_state_dir, a->pool->name, a->pool->driver->name, a->config, &a->err);
}

static void set_revisions_done(Task *t) {
        SetPoolRevisions *a = (SetPoolRevisions *) t;
        Pool *p = a->pool;
        if (a->err.code != SE_OK)
                error_reply(a->message, &a->err);
        else if (p->removed)
                sd_bus_reply_method_errorf(a->message, error_name(SE_NO_SUCH_POOL), "Unknown storage pool %s", p->name);
        else {
                bool changed = p->revisions_to_keep != a->n;
                g_hash_table_unref(p->config);
                p->config = g_hash_table_ref(a->config);
                p->revisions_to_keep = a->n;
                if (changed)
                        bus_pool_changed(p, (const char *const[]) { "RevisionsToKeep", "Config", NULL });
                sd_bus_reply_method_return(a->message, "");
        }
        se_clear(&a->err);
        g_hash_table_unref(a->config);
        sd_bus_message_unref(a->message);
        pool_unref(p);
        g_free(a);
}

static int method_set_revisions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        int32_t n;
        int r = sd_bus_message_read(m, "i", &n);
        if (r < 0)
                return r;
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", p->name);
        r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        g_autofree char *what = g_strdup_printf("pool %s", p->name);
        StorageError serr = STORAGE_ERROR_INIT;
        if (revisions_check(p->driver, n, what, &serr) < 0)
                return error_take(error, &serr);
        r = auth_check(m, ACTION_MANAGE_POOLS, (const char *const[]) { "pool", p->name, NULL }, o.no_user_interaction,
                       error);
        if (r <= 0)
                return r < 0 ? r : 1;
        SetPoolRevisions *a = g_new0(SetPoolRevisions, 1);
        a->task.work = set_revisions_work;
        a->task.done = set_revisions_done;
        a->pool = pool_ref(p);
        a->n = n;
        a->config = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, p->config);
        while (g_hash_table_iter_next(&it, &k, &v))
                g_hash_table_insert(a->config, g_strdup(k), g_strdup(v));
        if (g_strv_contains(p->driver->params, "revisions_to_keep"))
                g_hash_table_replace(a->config, g_strdup("revisions_to_keep"), g_strdup_printf("%d", n));
        a->message = sd_bus_message_ref(m);
        task_submit(&a->task, p->queue);
        return 1;
}

/* The pool's usage is fresh (and the driver's caches): the volumes next. */
static void refresh_done(Pool *p, void *userdata) {
        sd_bus_message *m = userdata;
        if (p->removed) {
                StorageError e = STORAGE_ERROR_INIT;
                se_set(&e, SE_NO_SUCH_POOL, "Storage pool %s was removed", p->name);
                error_reply(m, &e);
                se_clear(&e);
        } else {
                pool_refresh_volumes(p);
                sd_bus_reply_method_return(m, "");
        }
        sd_bus_message_unref(m);
}

static int method_refresh_usage(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", p->name);
        int r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        r = auth_check(m, ACTION_MANAGE_VOLUMES, (const char *const[]) { "pool", p->name, NULL },
                       o.no_user_interaction, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        pool_usage_refresh(p, refresh_done, sd_bus_message_ref(m));
        return 1;
}

static const sd_bus_vtable pool_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(Pool, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Driver", "s", property_driver, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Config", "a{ss}", property_config, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Size", "t", NULL, offsetof(Pool, usage.size), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Usage", "t", NULL, offsetof(Pool, usage.usage), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UsageDetails", "a{st}", property_usage_details, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RevisionsToKeep", "i", NULL, offsetof(Pool, revisions_to_keep),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListVolumes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(so)", volumes), method_list_volumes,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVolume", SD_BUS_ARGS("s", vid), SD_BUS_RESULT("o", volume), method_get_volume,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateVolume", SD_BUS_ARGS("a{sv}", config, "a{sv}", options),
                                SD_BUS_RESULT("o", volume), method_create_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRevisionsToKeep", SD_BUS_ARGS("i", n, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_set_revisions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RefreshUsage", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT,
                                method_refresh_usage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_pool_register(sd_bus *bus) {
        return sd_bus_add_fallback_vtable(bus, NULL, POOLS_PATH, POOL_INTERFACE, pool_vtable, find_pool, NULL);
}

void bus_pool_added(Pool *p) {
        if (bus_connection)
                sd_bus_emit_interfaces_added(bus_connection, p->object_path, POOL_INTERFACE, NULL);
}

void bus_pool_removed(Pool *p) {
        if (bus_connection)
                sd_bus_emit_interfaces_removed(bus_connection, p->object_path, POOL_INTERFACE, NULL);
}

void bus_pool_changed(Pool *p, const char *const *props) {
        if (bus_connection && !p->removed)
                sd_bus_emit_properties_changed_strv(bus_connection, p->object_path, POOL_INTERFACE, (char **) props);
}
