#include "usage.h"

#include <string.h>

#include "clock.h"
#include "macros.h"
#include "manager.h"

typedef struct Waiter {
        UsageDone done;
        void *userdata;
} Waiter;

typedef struct UsageTask {
        Task task;
        Pool *pool;
        PoolUsage usage;
        char **vids;
        bool scanned;
        GPtrArray *waiters;
} UsageTask;


static void read_storage(Pool *p, PoolUsage *u, char ***vids, bool *scanned) {
        *u = (PoolUsage) { 0 };
        /* no caller to tell: a failed read leaves what it could not read at 0
         * (zeroed above), and a failed scan keeps the volumes known (scanned false) */
        p->driver->pool_usage(p->drv, u, NULL);
        *scanned = p->driver->pool_scan && p->driver->pool_scan(p->drv, vids, NULL) >= 0;
}

bool pool_usage_read_now(Pool *p, char ***vids) {
        PoolUsage u;
        bool scanned;
        read_storage(p, &u, vids, &scanned);
        pool_set_usage(p, &u);
        p->usage_read_usec = clock_usec(CLOCK_MONOTONIC);
        return scanned;
}

static void usage_work(Task *t) {
        UsageTask *u = (UsageTask *) t;
        Pool *p = u->pool;
        /* asked for explicitly (RefreshUsage): no cached answers */
        /* a failed refresh shows in the read that follows, which uses what
         * the driver still has */
        if (u->waiters && p->driver->pool_refresh)
                p->driver->pool_refresh(p->drv, NULL);
        read_storage(p, &u->usage, &u->vids, &u->scanned);
}

static void start_refresh(Pool *p);

/* Every waiter gets its answer: after a refresh, or at once when the pool
 * was removed meanwhile (done sees p->removed). */
static void answer(Pool *p, GPtrArray *waiters) {
        for (size_t i = 0; waiters && i < waiters->len; i++) {
                Waiter *w = waiters->pdata[i];
                w->done(p, w->userdata);
        }
        if (waiters)
                g_ptr_array_unref(waiters);
}

static void usage_done(Task *t) {
        UsageTask *u = (UsageTask *) t;
        Pool *p = u->pool;
        p->usage_busy = false;
        if (t->abandoned) {
                /* never read: what is known stays, and nothing more is asked */
                answer(p, g_steal_pointer(&u->waiters));
                pool_unref(p);
                g_free(u);
                return;
        }
        p->usage_read_usec = clock_usec(CLOCK_MONOTONIC);
        if (!p->removed) {
                pool_set_usage(p, &u->usage);
                if (u->scanned && p->manager->scanned)
                        p->manager->scanned(p, u->vids);
        }
        answer(p, g_steal_pointer(&u->waiters));
        if (p->removed)
                answer(p, g_steal_pointer(&p->usage_waiters)); /* no refresh will come */
        else if (p->usage_again) {
                p->usage_again = false;
                pool_usage_request(p);
        }
        g_strfreev(u->vids);
        pool_unref(p);
        g_free(u);
}

static void start_refresh(Pool *p) {
        UsageTask *u = g_new0(UsageTask, 1);
        u->task.work = usage_work;
        u->task.done = usage_done;
        u->pool = pool_ref(p);
        u->waiters = g_steal_pointer(&p->usage_waiters);
        p->usage_busy = true;
        task_submit(p->manager->tasks, &u->task, NULL);
}

static int on_delay(sd_event_source *s, uint64_t usec, void *userdata) {
        Pool *p = userdata;
        g_ptr_array_remove_fast(p->manager->delayed, p);
        p->usage_timer = sd_event_source_disable_unref(p->usage_timer);
        if (!p->removed)
                start_refresh(p);
        else
                answer(p, g_steal_pointer(&p->usage_waiters));
        pool_unref(p);
        return 0;
}

void pool_usage_request(Pool *p) {
        if (p->removed || p->usage_timer)
                return;
        if (p->usage_busy) {
                p->usage_again = true;
                return;
        }
        uint64_t now = clock_usec(CLOCK_MONOTONIC), next = p->usage_read_usec + USEC_PER_SEC;
        sd_event *event = p->manager->usage_event;
        if (!event || next <= now) {
                start_refresh(p);
                return;
        }
        sd_event_source *s = NULL;
        if (sd_event_add_time(event, &s, CLOCK_MONOTONIC, next, 0, on_delay, pool_ref(p)) < 0) {
                pool_unref(p);
                start_refresh(p);
                return;
        }
        p->usage_timer = s;
        Manager *m = p->manager;
        if (!m->delayed)
                m->delayed = g_ptr_array_new();
        g_ptr_array_add(m->delayed, p);
}

void pool_usage_refresh(Pool *p, UsageDone done, void *userdata) {
        if (p->removed) {
                done(p, userdata);
                return;
        }
        Waiter *w = g_new0(Waiter, 1);
        w->done = done;
        w->userdata = userdata;
        if (!p->usage_waiters)
                p->usage_waiters = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(p->usage_waiters, w);
        pool_usage_request(p);
}

void usage_init(Manager *m, UsageScanned scanned) {
        m->usage_event = m->event;
        m->scanned = scanned;
}

/* Stopping (SIGTERM, while the loop still runs): a refresh waiting for its
 * delay runs now, so that the RefreshUsage calls waiting on it are answered
 * while the service drains. After the loop has
 * ended nothing can run: a delayed refresh is dropped. */
void usage_shutdown(Manager *m) {
        bool running = m->usage_event && sd_event_get_state(m->usage_event) != SD_EVENT_FINISHED;
        m->usage_event = NULL;
        GPtrArray *delayed = m->delayed;
        while (running && delayed && delayed->len > 0) {
                Pool *p = delayed->pdata[delayed->len - 1];
                on_delay(p->usage_timer, 0, p);
        }
        /* the loop has ended (the bus was lost): a delayed refresh is
         * dropped, its waiters answered with what is known (the answers go
         * nowhere, but what waits is freed), its timer's pool reference too */
        while (!running && delayed && delayed->len > 0) {
                Pool *p = g_ptr_array_steal_index_fast(delayed, delayed->len - 1);
                p->usage_timer = sd_event_source_disable_unref(p->usage_timer);
                answer(p, g_steal_pointer(&p->usage_waiters));
                pool_unref(p);
        }
        if (delayed && delayed->len == 0)
                g_clear_pointer(&m->delayed, g_ptr_array_unref);
}
