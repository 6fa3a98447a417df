#include "auth.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "errors.h"
#include <systemd/sd-event.h>
#include "macros.h"

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_INTERFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_ALLOW_USER_INTERACTION 1u
#define INTERACTIVE_TIMEOUT_USEC (5 * 60 * USEC_PER_SEC)

typedef struct Query {
        sd_bus_message *request;
        sd_bus_slot *slot;
        char *action;
        int result;      /* 0: waiting, 1: allowed, -1: denied */
        char *why;       /* why polkit could not answer, or NULL */
        sd_event_source *reaper;
} Query;

static GHashTable *queries; /* request message -> Query */

static void query_free(Query *q) {
        sd_event_source_disable_unref(q->reaper);
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        g_free(q->action);
        g_free(q->why);
        g_free(q);
}

/* After the re-dispatch: a handler that failed before it asked again (its
 * object vanished, a check failed) leaves the answer unclaimed. */
static int on_reap(sd_event_source *s, void *userdata) {
        Query *q = userdata;
        if (g_hash_table_lookup(queries, q->request) == q)
                g_hash_table_remove(queries, q->request);
        return 0;
}

static int on_polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Query *q = userdata;
        q->slot = sd_bus_slot_unref(q->slot);
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized = 0, challenge = 0;
        if (e)
                q->why = g_strdup_printf("polkit could not decide: %s", e->message ? e->message : e->name);
        else if (sd_bus_message_enter_container(reply, 'r', "bba{ss}") < 0 ||
                 sd_bus_message_read(reply, "bb", &authorized, &challenge) < 0)
                q->why = g_strdup("polkit sent an answer that cannot be read");
        q->result = authorized ? 1 : -1;
        /* Dispatch the request again: its handler now finds the answer. */
        sd_bus_message_rewind(q->request, true);
        sd_bus *bus = sd_bus_message_get_bus(q->request);
        int r = sd_bus_enqueue_for_read(bus, q->request);
        if (r >= 0)
                r = sd_event_add_defer(sd_bus_get_event(bus), &q->reaper, on_reap, q);
        if (r >= 0)
                r = sd_event_source_set_priority(q->reaper, SD_EVENT_PRIORITY_IDLE);
        if (r < 0) {
                g_warning("Cannot re-dispatch a call after polkit answered: %s", strerror(-r));
                g_hash_table_remove(queries, q->request);
        }
        return 0;
}

static int deny(const char *action, const char *why, sd_bus_error *error) {
        error_set(error, SE_NOT_AUTHORIZED, "Not authorized for %s%s%s", action, why ? ": " : "", why ? why : "");
        return -EACCES;
}

static int ask_polkit(sd_bus_message *m, const char *action, const char *const *details, bool interactive,
                      sd_bus_error *error) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        if (!sender)
                return deny(action, "the caller has no bus name", error);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        int r = sd_bus_message_new_method_call(bus, &call, POLKIT_NAME, POLKIT_PATH, POLKIT_INTERFACE,
                                               "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s", sender, action);
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "{ss}");
        for (size_t i = 0; r >= 0 && details && details[i] && details[i + 1]; i += 2)
                r = sd_bus_message_append(call, "{ss}", details[i], details[i + 1]);
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r >= 0)
                r = sd_bus_message_append(call, "us", interactive ? POLKIT_ALLOW_USER_INTERACTION : 0u, "");
        if (r < 0)
                return r;
        Query *q = g_new0(Query, 1);
        q->request = sd_bus_message_ref(m);
        q->action = g_strdup(action);
        r = sd_bus_call_async(bus, &q->slot, call, on_polkit_reply, q, interactive ? INTERACTIVE_TIMEOUT_USEC : 0);
        if (r < 0) {
                query_free(q);
                return deny(action, "polkit cannot be reached", error);
        }
        g_hash_table_insert(queries, m, q);
        return 0;
}

int auth_check(sd_bus_message *m, const char *action, const char *const *details, bool no_user_interaction,
               sd_bus_error *error) {
        if (!queries)
                queries = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) query_free);
        Query *q = g_hash_table_lookup(queries, m);
        if (q) {
                if (q->result == 0)
                        return 0;
                int allowed = q->result > 0;
                g_autofree char *why = g_steal_pointer(&q->why);
                g_hash_table_remove(queries, m);
                return allowed ? 1 : deny(action, why, error);
        }
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r >= 0)
                r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0)
                return deny(action, "the caller's uid is unknown", error);
        if (uid == 0)
                return 1;
        bool interactive = !no_user_interaction && sd_bus_message_get_allow_interactive_authorization(m) > 0;
        return ask_polkit(m, action, details, interactive, error);
}

unsigned auth_pending(void) {
        unsigned n = 0;
        GHashTableIter it;
        gpointer q;
        if (!queries)
                return 0;
        g_hash_table_iter_init(&it, queries);
        while (g_hash_table_iter_next(&it, NULL, &q))
                n += ((Query *) q)->result == 0;
        return n;
}

void auth_shutdown(void) {
        if (queries)
                g_hash_table_destroy(queries);
        queries = NULL;
}
