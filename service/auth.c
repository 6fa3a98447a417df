#include "auth.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "caller-limits.h"
#include "caller-uid.h"
#include "errors.h"
#include <systemd/sd-event.h>
#include "macros.h"
#include "manager.h"

#define POLKIT_NAME "org.freedesktop.PolicyKit1"
#define POLKIT_PATH "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_INTERFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_ALLOW_USER_INTERACTION 1u
#define INTERACTIVE_TIMEOUT_USEC (5 * 60 * USEC_PER_SEC)

typedef struct Query Query;

/* One CheckAuthorization in flight. */
typedef struct Ask {
        Query *query;
        sd_bus_slot *slot;
        char *what; /* the details, for the message of a refusal */
} Ask;

struct Query {
        Manager *manager;
        sd_bus_message *request;
        char *sender;
        uid_t uid;
        char *asked;     /* action and details as asked: what an answer is for */
        GPtrArray *asks; /* Ask*, one per set of details */
        unsigned waiting;
        int result;      /* 0: waiting, 1: allowed (every ask), -1: denied (one ask) */
        char *why;       /* why, when denied or polkit could not answer */
        sd_event_source *reaper;
};

static void ask_free(Ask *a) {
        sd_bus_slot_unref(a->slot);
        g_free(a->what);
        g_free(a);
}

static void query_free(Query *q) {
        sd_event_source_disable_unref(q->reaper);
        g_ptr_array_unref(q->asks);
        sd_bus_message_unref(q->request);
        g_free(q->sender);
        g_free(q->asked);
        g_free(q->why);
        g_free(q);
}

/* After the re-dispatch: a handler that failed before it asked again (its
 * object vanished, a check failed) leaves the answer unclaimed. */
static int on_reap(sd_event_source *s, void *userdata) {
        Query *q = userdata;
        GHashTable *queries = q->manager->polkit_queries;
        if (g_hash_table_lookup(queries, q->request) == q)
                g_hash_table_remove(queries, q->request);
        return 0;
}

/* The action and every set of details, in order: the key an answer is for. */
static char *describe(const char *action, const char *const *const *details, size_t n) {
        GString *s = g_string_new(action);
        for (size_t k = 0; k < n; k++) {
                g_string_append_c(s, '\n');
                for (size_t i = 0; details[k] && details[k][i] && details[k][i + 1]; i += 2)
                        g_string_append_printf(s, "%s=%s;", details[k][i], details[k][i + 1]);
        }
        return g_string_free(s, FALSE);
}

static char *describe_details(const char *const *details) {
        GString *s = g_string_new(NULL);
        for (size_t i = 0; details && details[i] && details[i + 1]; i += 2)
                g_string_append_printf(s, "%s%s %s", s->len ? ", " : "", details[i], details[i + 1]);
        return g_string_free(s, FALSE);
}

static void redispatch(Query *q) {
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
                g_hash_table_remove(q->manager->polkit_queries, q->request);
        }
}

static int on_polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Ask *a = userdata;
        Query *q = a->query;
        a->slot = sd_bus_slot_unref(a->slot);
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized = 0, challenge = 0;
        char *why = NULL;
        if (e)
                why = g_strdup_printf("polkit could not decide: %s", e->message ? e->message : e->name);
        else if (sd_bus_message_enter_container(reply, 'r', "bba{ss}") < 0 ||
                 sd_bus_message_read(reply, "bb", &authorized, &challenge) < 0)
                why = g_strdup("polkit sent an answer that cannot be read");
        else if (!authorized && q->asks->len > 1)
                why = g_strdup_printf("not for %s", a->what);
        if (!authorized && q->result == 0) {
                q->result = -1;
                q->why = why;
        } else
                g_free(why);
        if (--q->waiting > 0)
                return 0;
        if (q->result == 0)
                q->result = 1;
        redispatch(q);
        return 0;
}

static int deny(const char *action, const char *why, sd_bus_error *error) {
        error_set(error, SE_NOT_AUTHORIZED, "Not authorized for %s%s%s", action, why ? ": " : "", why ? why : "");
        return -EACCES;
}

static int send_check(sd_bus *bus, const char *sender, const char *action, const char *const *details,
                      bool interactive, Ask *a) {
        g_autoptr(sd_bus_message) call = NULL;
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
        if (r >= 0)
                r = sd_bus_call_async(bus, &a->slot, call, on_polkit_reply, a,
                                      interactive ? INTERACTIVE_TIMEOUT_USEC : 0);
        return r;
}

/* Calls of the caller (and of its uid) waiting for polkit: each holds its
 * message and the fds it carries. */
static int check_pending_limits(Manager *manager, const char *sender, uid_t uid, sd_bus_error *error) {
        unsigned by_name = 0, by_uid = 0;
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, manager->polkit_queries);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Query *q = v;
                if (q->result != 0)
                        continue;
                by_name += strcmp(q->sender, sender) == 0;
                by_uid += q->uid == uid;
        }
        return limits_check(sender, uid, "calls waiting for authorization", by_name, LIMIT_PENDING_PER_NAME, by_uid,
                            LIMIT_PENDING_PER_UID, error);
}

static int ask_polkit(Manager *manager, sd_bus_message *m, uid_t uid, const char *action,
                      const char *const *const *details, size_t n, char *asked, bool interactive,
                      sd_bus_error *error) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        if (!sender) {
                g_free(asked);
                return deny(action, "the caller has no bus name", error);
        }
        int r = check_pending_limits(manager, sender, uid, error);
        if (r < 0) {
                g_free(asked);
                return r;
        }
        Query *q = g_new0(Query, 1);
        q->manager = manager;
        q->request = sd_bus_message_ref(m);
        q->sender = g_strdup(sender);
        q->uid = uid;
        q->asked = asked;
        q->asks = g_ptr_array_new_with_free_func((GDestroyNotify) ask_free);
        /* no details at all (an empty batch): one question without them */
        size_t asks = n > 0 ? n : 1;
        for (size_t k = 0; k < asks; k++) {
                Ask *a = g_new0(Ask, 1);
                a->query = q;
                a->what = describe_details(n > 0 ? details[k] : NULL);
                g_ptr_array_add(q->asks, a);
                if (send_check(bus, sender, action, n > 0 ? details[k] : NULL, interactive, a) < 0) {
                        query_free(q);
                        return deny(action, "polkit cannot be reached", error);
                }
                q->waiting++;
        }
        g_hash_table_insert(manager->polkit_queries, m, q);
        return 0;
}

int auth_check_each(Manager *manager, sd_bus_message *m, const char *action, const char *const *const *details,
                    size_t n, bool no_user_interaction, sd_bus_error *error) {
        if (!manager->polkit_queries)
                manager->polkit_queries = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                                                (GDestroyNotify) query_free);
        GHashTable *queries = manager->polkit_queries;
        g_autofree char *asked = describe(action, details, n);
        Query *q = g_hash_table_lookup(queries, m);
        if (q) {
                /* The answer must be for this very question: never let an
                 * answer about one action or object authorize another. */
                if (strcmp(q->asked, asked) != 0) {
                        g_hash_table_remove(queries, m);
                        return deny(action, "the answer polkit gave was for another request", error);
                }
                if (q->result == 0)
                        return 0;
                int allowed = q->result > 0;
                g_autofree char *why = g_steal_pointer(&q->why);
                g_hash_table_remove(queries, m);
                return allowed ? 1 : deny(action, why, error);
        }
        if (manager->refusing)
                return error_set(error, SE_FAILED, "%s: %s refused", manager->refusing, sd_bus_message_get_member(m));
        uid_t uid;
        int r = caller_uid(manager, m, &uid, error);
        if (r <= 0)
                return r;
        if (uid == 0)
                return 1;
        bool interactive = !no_user_interaction && sd_bus_message_get_allow_interactive_authorization(m) > 0;
        return ask_polkit(manager, m, uid, action, details, n, g_steal_pointer(&asked), interactive, error);
}

int auth_check(Manager *manager, sd_bus_message *m, const char *action, const char *const *details,
               bool no_user_interaction, sd_bus_error *error) {
        return auth_check_each(manager, m, action, &details, 1, no_user_interaction, error);
}

unsigned auth_pending(Manager *manager) {
        unsigned n = 0;
        GHashTableIter it;
        gpointer q;
        n = caller_uid_waiting(manager);
        if (!manager->polkit_queries)
                return n;
        g_hash_table_iter_init(&it, manager->polkit_queries);
        while (g_hash_table_iter_next(&it, NULL, &q))
                n += ((Query *) q)->result == 0;
        return n;
}

void auth_refuse_new(Manager *manager, const char *why) {
        g_free(manager->refusing);
        manager->refusing = g_strdup(why);
}

void auth_shutdown(Manager *manager) {
        g_clear_pointer(&manager->refusing, g_free);
        caller_uid_shutdown(manager);
        g_clear_pointer(&manager->polkit_queries, g_hash_table_destroy);
}
