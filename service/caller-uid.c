#include "caller-uid.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "caller-limits.h"
#include "errors.h"
#include "manager.h"

typedef struct Entry {
        Manager *manager;
        char *name;
        bool known;
        bool gone;          /* left the bus while we asked */
        uid_t uid;
        sd_bus_slot *slot;  /* GetConnectionUnixUser in flight */
        GPtrArray *waiting; /* sd_bus_message*, each a reference */
} Entry;

static void message_unref(gpointer m) {
        sd_bus_message_unref(m);
}
static void entry_free(Entry *e) {
        sd_bus_slot_unref(e->slot);
        e->manager->callers_waiting -= e->waiting->len;
        g_ptr_array_unref(e->waiting);
        g_free(e->name);
        g_free(e);
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *manager = userdata;
        GHashTable *cache = manager->callers;
        const char *name, *old_owner, *new_owner;
        if (!cache || sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] != ':' || *new_owner)
                return 0;
        Entry *e = g_hash_table_lookup(cache, name);
        if (!e)
                return 0; /* never called: holds nothing */
        if (e->slot)
                e->gone = true; /* forgotten once the answer is in */
        else
                g_hash_table_remove(cache, name);
        for (unsigned i = 0; i < manager->n_caller_left; i++)
                manager->caller_left[i].fn(name, manager->caller_left[i].userdata);
        return 0;
}

static int on_uid(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Entry *e = userdata;
        e->slot = sd_bus_slot_unref(e->slot);
        uint32_t uid = 0;
        const sd_bus_error *err = sd_bus_message_get_error(reply);
        bool ok = !err && sd_bus_message_read(reply, "u", &uid) >= 0;
        g_autoptr(GPtrArray) waiting = g_steal_pointer(&e->waiting);
        e->manager->callers_waiting -= waiting->len;
        e->waiting = g_ptr_array_new_with_free_func(message_unref);
        e->known = ok;
        e->uid = (uid_t) uid;
        for (guint i = 0; i < waiting->len; i++) {
                sd_bus_message *m = waiting->pdata[i];
                if (!ok) {
                        sd_bus_reply_method_errorf(m, error_name(SE_NOT_AUTHORIZED),
                                                   "Not authorized: the uid of caller %s is unknown (%s)", e->name,
                                                   err && err->message ? err->message : "no answer");
                        continue;
                }
                sd_bus_message_rewind(m, true);
                int r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(m), m);
                if (r < 0)
                        sd_bus_reply_method_errorf(m, error_name(SE_FAILED), "Cannot dispatch the call again: %s",
                                                   strerror(-r));
        }
        if (!ok || e->gone)
                g_hash_table_remove(e->manager->callers, e->name);
        return 0;
}

int caller_uid_watch(Manager *manager) {
        if (manager->owner_match)
                return 0;
        return sd_bus_match_signal_async(manager->bus, &manager->owner_match, "org.freedesktop.DBus",
                                         "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged",
                                         on_owner_changed, NULL, manager);
}

int caller_uid(Manager *manager, sd_bus_message *m, uid_t *uid, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        sd_bus *bus = sd_bus_message_get_bus(m);
        if (!sender)
                return error_set(error, SE_NOT_AUTHORIZED, "Not authorized: the caller has no bus name");
        if (!manager->callers)
                manager->callers = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) entry_free);
        GHashTable *cache = manager->callers;
        caller_uid_watch(manager);
        Entry *e = g_hash_table_lookup(cache, sender);
        if (e && e->known) {
                *uid = e->uid;
                return 1;
        }
        if (!e) {
                e = g_new0(Entry, 1);
                e->manager = manager;
                e->name = g_strdup(sender);
                e->waiting = g_ptr_array_new_with_free_func(message_unref);
                int r = sd_bus_call_method_async(bus, &e->slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                 "org.freedesktop.DBus", "GetConnectionUnixUser", on_uid, e, "s",
                                                 sender);
                if (r < 0) {
                        entry_free(e);
                        return error_set(error, SE_NOT_AUTHORIZED, "Not authorized: cannot ask the uid of %s: %s",
                                         sender, strerror(-r));
                }
                g_hash_table_insert(cache, e->name, e);
        }
        if (e->waiting->len >= LIMIT_PENDING_PER_NAME)
                return error_set(error, SE_LIMITS_EXCEEDED, "Caller %s has %u calls waiting already (at most %u)", sender,
                                 e->waiting->len, LIMIT_PENDING_PER_NAME);
        g_ptr_array_add(e->waiting, sd_bus_message_ref(m));
        manager->callers_waiting++;
        return 0;
}

int caller_uid_cached(Manager *manager, const char *name, uid_t *uid) {
        Entry *e = manager->callers && name ? g_hash_table_lookup(manager->callers, name) : NULL;
        if (!e || !e->known)
                return -ENOENT;
        *uid = e->uid;
        return 0;
}

int caller_uid_limited(Manager *manager, const char *name, uid_t *uid, sd_bus_error *error) {
        if (caller_uid_cached(manager, name, uid) < 0)
                return error_set(error, SE_NOT_AUTHORIZED, "Not authorized: the uid of caller %s is unknown",
                                 name ? name : "(none)");
        return *uid != 0;
}

bool caller_uid_left(Manager *manager, const char *name) {
        Entry *e = manager->callers && name ? g_hash_table_lookup(manager->callers, name) : NULL;
        return !e || e->gone;
}

void caller_uid_on_leave(Manager *manager, CallerLeftFn fn, void *userdata) {
        for (unsigned i = 0; i < manager->n_caller_left; i++)
                if (manager->caller_left[i].fn == fn && manager->caller_left[i].userdata == userdata)
                        return;
        g_assert(manager->n_caller_left < G_N_ELEMENTS(manager->caller_left));
        manager->caller_left[manager->n_caller_left].fn = fn;
        manager->caller_left[manager->n_caller_left++].userdata = userdata;
}

unsigned caller_uid_waiting(Manager *manager) {
        return manager->callers_waiting;
}

void caller_uid_shutdown(Manager *manager) {
        manager->owner_match = sd_bus_slot_unref(manager->owner_match);
        g_clear_pointer(&manager->callers, g_hash_table_destroy);
}
