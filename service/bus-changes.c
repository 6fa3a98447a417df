/* PropertiesChanged, coalesced: a change of the model marks its object's
 * properties, and one signal per object carries every property marked since
 * the last one. A defer event source sends them on the next loop iteration;
 * a method reply sends them first, so that a caller sees the signals of what
 * its call changed before the reply (docs/api.md). An object announced or
 * withdrawn meanwhile (InterfacesAdded/-Removed carry the whole object) drops
 * what was marked for it. */
#include <string.h>

#include <glib.h>

#include "bus.h"
#include "manager.h"

typedef struct Pending {
        char *path;
        const char *interface; /* one of the static interface names */
        GPtrArray *props;      /* char *, NULL-terminated when sent */
        uint64_t order;        /* of the first mark: signals go out in this order */
} Pending;

static void pending_free(Pending *p) {
        g_free(p->path);
        g_ptr_array_unref(p->props);
        g_free(p);
}

static int on_flush(sd_event_source *s, void *userdata) {
        bus_changes_flush(userdata);
        return 0;
}

static void schedule(Manager *m) {
        if (m->changes_flush)
                return;
        sd_event *event = sd_bus_get_event(m->bus);
        if (!event || sd_event_add_defer(event, &m->changes_flush, on_flush, m) < 0)
                bus_changes_flush(m); /* no loop to wait for: at once */
}

void bus_changes_mark(Manager *m, const char *path, const char *interface, const char *const *props) {
        if (!m->bus || !props || !props[0])
                return;
        if (!m->changes)
                m->changes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) pending_free);
        Pending *p = g_hash_table_lookup(m->changes, path);
        if (!p) {
                p = g_new0(Pending, 1);
                p->path = g_strdup(path);
                p->interface = interface;
                p->props = g_ptr_array_new_with_free_func(g_free);
                p->order = m->changes_marks++;
                g_hash_table_insert(m->changes, p->path, p);
        }
        for (size_t i = 0; props[i]; i++) {
                bool known = false;
                for (guint k = 0; k < p->props->len && !known; k++)
                        known = strcmp(p->props->pdata[k], props[i]) == 0;
                if (!known)
                        g_ptr_array_add(p->props, g_strdup(props[i]));
        }
        schedule(m);
}

void bus_changes_forget(Manager *m, const char *path) {
        if (m->changes)
                g_hash_table_remove(m->changes, path);
}

static int cmp_order(gconstpointer a, gconstpointer b) {
        const Pending *x = *(Pending *const *) a, *y = *(Pending *const *) b;
        return x->order < y->order ? -1 : x->order > y->order;
}

void bus_changes_flush(Manager *m) {
        m->changes_flush = sd_event_source_disable_unref(m->changes_flush);
        if (!m->changes || g_hash_table_size(m->changes) == 0)
                return;
        /* What is marked while sending waits for the next flush. */
        g_autoptr(GHashTable) sending = g_steal_pointer(&m->changes);
        g_autoptr(GPtrArray) list = g_ptr_array_sized_new(g_hash_table_size(sending));
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, sending);
        while (g_hash_table_iter_next(&it, NULL, &v))
                g_ptr_array_add(list, v);
        g_ptr_array_sort(list, cmp_order);
        for (guint i = 0; i < list->len; i++) {
                Pending *p = list->pdata[i];
                g_ptr_array_add(p->props, NULL);
                if (m->bus)
                        sd_bus_emit_properties_changed_strv(m->bus, p->path, p->interface,
                                                            (char **) p->props->pdata);
        }
}

void bus_changes_shutdown(Manager *m) {
        bus_changes_flush(m);
        g_clear_pointer(&m->changes, g_hash_table_unref);
}
