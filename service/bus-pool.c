/* org.qubes.Storage1.Pool: one object per pool, through a fallback vtable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bus.h"
#include "errors.h"
#include "macros.h"
#include "manager.h"
#include "options.h"
#include "paths.h"
#include "validate.h"

static int find_pool(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                     sd_bus_error *error) {
        g_autofree char *name = NULL;
        if (!parse_pool_path(path, &name))
                return 0;
        Pool *p = model_find_pool(userdata, name);
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
        uint64_t provisioned = pool_provisioned(p);
        g_hash_table_insert(t, "provisioned", &provisioned);
        return append_sorted_dict(reply, t, 't');
}

static int property_provisioned(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", pool_provisioned(userdata));
}

static int property_usage_limits(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        return sd_bus_message_append(reply, "(uu)", p->usage_warning, p->usage_critical);
}

static int property_usage_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", pool_usage_state(userdata));
}

static int method_list_volumes(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        g_autoptr(sd_bus_message) reply = NULL;
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
        g_autoptr(VolumeSpec) s = g_new0(VolumeSpec, 1);
        int r = read_volume_config(m, p, s, error);
        if (r < 0)
                return r;
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", p->name);
        r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        StorageError serr = STORAGE_ERROR_INIT;
        if (volume_create_check(p, s, &serr) < 0)
                return error_take(error, &serr);
        char size_s[32];
        snprintf(size_s, sizeof(size_s), "%" G_GUINT64_FORMAT, s->size);
        const char *details[] = { "pool", p->name, "vid", s->vid, "size", size_s, NULL };
        r = auth_check(p->manager, m, ACTION_MANAGE_VOLUMES, details, o.no_user_interaction, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        VolumeOp *op = volume_op_new_create(p, g_steal_pointer(&s), &serr);
        if (!op)
                return error_take(error, &serr);
        return bus_submit_volume_op(m, op);
}

/* The trailing options of a call about pool p, then polkit for action with
 * the pool as detail: as auth_check (1: go on; 0: asked, return 1; < 0). */
static int pool_call_authorized(sd_bus_message *m, Pool *p, const char *action, sd_bus_error *error) {
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", p->name);
        int r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        return auth_check(p->manager, m, action, (const char *const[]) { "pool", p->name, NULL },
                          o.no_user_interaction, error);
}

static int method_set_revisions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        int32_t n;
        int r = sd_bus_message_read(m, "i", &n);
        if (r < 0)
                return r;
        r = pool_call_authorized(m, p, ACTION_MANAGE_POOLS, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        PoolOp *op = pool_op_new(POP_SET_REVISIONS, p, NULL, NULL);
        op->revisions_to_keep = n;
        return bus_submit_pool_op(m, op);
}

static int method_set_usage_limits(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        uint32_t warning, critical;
        int r = sd_bus_message_read(m, "uu", &warning, &critical);
        if (r < 0)
                return r;
        /* bad input is refused before anything is asked or changed */
        StorageError serr = STORAGE_ERROR_INIT;
        if (usage_limits_check(warning, critical, p->name, &serr) < 0)
                return error_take(error, &serr);
        r = pool_call_authorized(m, p, ACTION_MANAGE_POOLS, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        PoolOp *op = pool_op_new(POP_SET_LIMITS, p, NULL, NULL);
        op->usage_warning = warning;
        op->usage_critical = critical;
        return bus_submit_pool_op(m, op);
}

static int method_refresh_usage(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Pool *p = userdata;
        int r = pool_call_authorized(m, p, ACTION_MANAGE_VOLUMES, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return bus_submit_pool_op(m, pool_op_new(POP_REFRESH, p, NULL, NULL));
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
        SD_BUS_PROPERTY("Provisioned", "t", property_provisioned, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UsageLimits", "(uu)", property_usage_limits, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UsageState", "s", property_usage_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListVolumes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(so)", volumes), method_list_volumes,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVolume", SD_BUS_ARGS("s", vid), SD_BUS_RESULT("o", volume), method_get_volume,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CreateVolume", SD_BUS_ARGS("a{sv}", config, "a{sv}", options),
                                SD_BUS_RESULT("o", volume), method_create_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRevisionsToKeep", SD_BUS_ARGS("i", n, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_set_revisions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetUsageLimits", SD_BUS_ARGS("u", warning, "u", critical, "a{sv}", options),
                                SD_BUS_NO_RESULT, method_set_usage_limits, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RefreshUsage", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT,
                                method_refresh_usage, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int bus_pool_register(Manager *m) {
        return sd_bus_add_fallback_vtable(m->bus, NULL, POOLS_PATH, POOL_INTERFACE, pool_vtable, find_pool, m);
}

void bus_pool_added(Pool *p) {
        sd_bus *bus = p->manager->bus;
        bus_changes_forget(p->manager, p->object_path);
        if (bus)
                sd_bus_emit_interfaces_added(bus, p->object_path, POOL_INTERFACE, NULL);
}

void bus_pool_removed(Pool *p) {
        sd_bus *bus = p->manager->bus;
        bus_changes_forget(p->manager, p->object_path);
        if (bus)
                sd_bus_emit_interfaces_removed(bus, p->object_path, POOL_INTERFACE, NULL);
}

void bus_pool_changed(Pool *p, const char *const *props) {
        if (!p->removed)
                bus_changes_mark(p->manager, p->object_path, POOL_INTERFACE, props);
}
