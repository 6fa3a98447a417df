#include "caller-uid.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "caller-limits.h"
#include "errors.h"

typedef struct Entry {
        char *name;
        bool known;
        bool gone;          /* left the bus while we asked */
        uid_t uid;
        sd_bus_slot *slot;  /* GetConnectionUnixUser in flight */
        GPtrArray *waiting; /* sd_bus_message*, each a reference */
} Entry;

static GHashTable *cache; /* unique name -> Entry */

static void message_unref(gpointer m) {
        sd_bus_message_unref(m);
}
static sd_bus_slot *owner_match;
static unsigned waiting_total;
static struct {
        CallerLeftFn fn;
        void *userdata;
} listeners[4];
static unsigned n_listeners;

static void entry_free(Entry *e) {
        sd_bus_slot_unref(e->slot);
        waiting_total -= e->waiting->len;
        g_ptr_array_unref(e->waiting);
        g_free(e->name);
        g_free(e);
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
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
        for (unsigned i = 0; i < n_listeners; i++)
                listeners[i].fn(name, listeners[i].userdata);
        return 0;
}

static int on_uid(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Entry *e = userdata;
        e->slot = sd_bus_slot_unref(e->slot);
        uint32_t uid = 0;
        const sd_bus_error *err = sd_bus_message_get_error(reply);
        bool ok = !err && sd_bus_message_read(reply, "u", &uid) >= 0;
        g_autoptr(GPtrArray) waiting = g_steal_pointer(&e->waiting);
        waiting_total -= waiting->len;
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
                g_hash_table_remove(cache, e->name);
        return 0;
}

int caller_uid_watch(sd_bus *bus) {
        if (owner_match)
                return 0;
        return sd_bus_match_signal_async(bus, &owner_match, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                         "org.freedesktop.DBus", "NameOwnerChanged", on_owner_changed, NULL, NULL);
}

int caller_uid(sd_bus_message *m, uid_t *uid, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        sd_bus *bus = sd_bus_message_get_bus(m);
        if (!sender)
                return error_set(error, SE_NOT_AUTHORIZED, "Not authorized: the caller has no bus name");
        if (!cache)
                cache = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) entry_free);
        caller_uid_watch(bus);
        Entry *e = g_hash_table_lookup(cache, sender);
        if (e && e->known) {
                *uid = e->uid;
                return 1;
        }
        if (!e) {
                e = g_new0(Entry, 1);
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
        waiting_total++;
        return 0;
}

int caller_uid_cached(const char *name, uid_t *uid) {
        Entry *e = cache && name ? g_hash_table_lookup(cache, name) : NULL;
        if (!e || !e->known)
                return -ENOENT;
        *uid = e->uid;
        return 0;
}

bool caller_uid_left(const char *name) {
        Entry *e = cache && name ? g_hash_table_lookup(cache, name) : NULL;
        return !e || e->gone;
}

void caller_uid_on_leave(CallerLeftFn fn, void *userdata) {
        for (unsigned i = 0; i < n_listeners; i++)
                if (listeners[i].fn == fn && listeners[i].userdata == userdata)
                        return;
        g_assert(n_listeners < G_N_ELEMENTS(listeners));
        listeners[n_listeners].fn = fn;
        listeners[n_listeners++].userdata = userdata;
}

unsigned caller_uid_waiting(void) {
        return waiting_total;
}

void caller_uid_shutdown(void) {
        owner_match = sd_bus_slot_unref(owner_match);
        if (cache)
                g_hash_table_destroy(cache);
        cache = NULL;
}
