/* org.qubes.Storage1.Manager and the ObjectManager at /org/qubes/Storage1. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bus.h"
#include "caller-uid.h"
#include "errors.h"
#include "macros.h"
#include "manager.h"
#include "options.h"
#include "paths.h"

static int method_list_drivers(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        g_autoptr(sd_bus_message) reply = NULL;
        int r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sas)");
        for (const Driver *const *d = driver_list(); r >= 0 && *d; d++) {
                r = sd_bus_message_open_container(reply, 'r', "sas");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", (*d)->name);
                if (r >= 0)
                        r = sd_bus_message_append_strv(reply, (char **) (*d)->params);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int method_list_pools(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        g_autoptr(sd_bus_message) reply = NULL;
        g_autoptr(GPtrArray) pools = model_pools(userdata);
        int r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(so)");
        for (size_t i = 0; r >= 0 && i < pools->len; i++) {
                Pool *p = pools->pdata[i];
                r = sd_bus_message_append(reply, "(so)", p->name, p->object_path);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_send(NULL, reply, NULL);
}

static int method_get_pool(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name;
        int r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        Pool *p = model_find_pool(userdata, name);
        if (!p)
                return error_set(error, SE_NO_SUCH_POOL, "Unknown storage pool %s", name);
        return sd_bus_reply_method_return(m, "o", p->object_path);
}

/* The reply of a pool op: its object for AddPool, empty otherwise. */
static void pool_op_reply(PoolOp *op, void *userdata) {
        sd_bus_message *m = userdata;
        bus_changes_flush(op->pool->manager);
        if (op->err.code != SE_OK)
                error_reply(m, &op->err);
        else if (op->kind == POP_ADD)
                sd_bus_reply_method_return(m, "o", op->pool->object_path);
        else
                sd_bus_reply_method_return(m, "");
        sd_bus_message_unref(m);
}

int bus_submit_pool_op(sd_bus_message *m, PoolOp *op) {
        op->done = pool_op_reply;
        op->userdata = sd_bus_message_ref(m);
        pool_op_submit(op);
        return 1;
}

static int read_pool_config(sd_bus_message *m, GHashTable *config) {
        int r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        const char *k, *v;
        while ((r = sd_bus_message_read(m, "{ss}", &k, &v)) > 0)
                g_hash_table_replace(config, g_strdup(k), g_strdup(v));
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

static int method_add_pool(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name, *driver;
        int r = sd_bus_message_read(m, "ss", &name, &driver);
        if (r < 0)
                return r;
        const Driver *d;
        StorageError serr = STORAGE_ERROR_INIT;
        if (pool_add_check(name, driver, &d, &serr) < 0)
                return error_take(error, &serr);
        g_autoptr(GHashTable) config = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        r = read_pool_config(m, config);
        if (r < 0)
                return r;
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", name);
        r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        r = auth_check(userdata, m, ACTION_MANAGE_POOLS, (const char *const[]) { "pool", name, NULL },
                       o.no_user_interaction, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        PoolOp *op = pool_op_new_add(userdata, name, d, config, NULL, NULL, &serr);
        if (!op)
                return error_take(error, &serr);
        return bus_submit_pool_op(m, op);
}

static int method_remove_pool(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name;
        int r = sd_bus_message_read(m, "s", &name);
        if (r < 0)
                return r;
        Options o;
        g_autofree char *object = g_strdup_printf("pool %s", name);
        r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        Pool *p = model_find_pool(userdata, name);
        if (!p) /* the op needs the pool; a removed one is the rules' (pool-rules.c) */
                return error_set(error, SE_NO_SUCH_POOL, "Unknown storage pool %s", name);
        r = auth_check(userdata, m, ACTION_MANAGE_POOLS, (const char *const[]) { "pool", name, NULL },
                       o.no_user_interaction, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        return bus_submit_pool_op(m, pool_op_new(POP_REMOVE, p, NULL, NULL));
}

static int method_start_volumes(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_volumes_batch(m, userdata, VOP_START, error);
}

static int method_stop_volumes(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_volumes_batch(m, userdata, VOP_STOP, error);
}

static int method_verify_volumes(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_volumes_batch(m, userdata, VOP_VERIFY, error);
}

static int property_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", VERSION);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("ListDrivers", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sas)", drivers),
                                method_list_drivers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPools", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(so)", pools), method_list_pools,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetPool", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", pool), method_get_pool,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddPool", SD_BUS_ARGS("s", name, "s", driver, "a{ss}", config, "a{sv}", options),
                                SD_BUS_RESULT("o", pool), method_add_pool, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemovePool", SD_BUS_ARGS("s", name, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_remove_pool, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartVolumes", SD_BUS_ARGS("ao", volumes, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_start_volumes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StopVolumes", SD_BUS_ARGS("ao", volumes, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_stop_volumes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("VerifyVolumes", SD_BUS_ARGS("ao", volumes, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_verify_volumes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* Every pool and volume object, for introspection and the ObjectManager. */
static int enumerate_objects(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        g_autoptr(GPtrArray) pools = model_pools(userdata);
        GPtrArray *out = g_ptr_array_new();
        for (size_t i = 0; i < pools->len; i++) {
                Pool *p = pools->pdata[i];
                g_ptr_array_add(out, strdup(p->object_path));
                g_autoptr(GPtrArray) vols = pool_volumes_sorted(p);
                for (size_t j = 0; j < vols->len; j++)
                        g_ptr_array_add(out, strdup(((Volume *) vols->pdata[j])->object_path));
        }
        g_ptr_array_add(out, NULL);
        *nodes = (char **) g_ptr_array_free(out, FALSE);
        return 1;
}

int bus_manager_register(Manager *m) {
        sd_bus *bus = m->bus;
        int r = sd_bus_add_object_vtable(bus, NULL, MANAGER_PATH, MANAGER_INTERFACE, manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(bus, NULL, MANAGER_PATH);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(bus, NULL, POOLS_PATH, enumerate_objects, m);
        if (r >= 0)
                r = caller_uid_watch(m);
        return r;
}
