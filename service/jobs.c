#include "jobs.h"

#include <errno.h>
#include <glib.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

struct TaskQueue {
        unsigned ref;
        GQueue waiting;
        bool busy;
};

struct TaskRunner {
        GThreadPool *pool;
        GThreadPool *data_pool; /* streaming tasks */
        int efd;
        sd_event_source *source;
        GMutex lock;
        GQueue finished; /* protected by lock */
        unsigned pending;
};

TaskQueue *task_queue_new(void) {
        TaskQueue *q = g_new0(TaskQueue, 1);
        q->ref = 1;
        g_queue_init(&q->waiting);
        return q;
}

TaskQueue *task_queue_ref(TaskQueue *q) {
        if (q)
                q->ref++;
        return q;
}

void task_queue_unref(TaskQueue *q) {
        if (!q || --q->ref > 0)
                return;
        g_assert(g_queue_is_empty(&q->waiting));
        g_free(q);
}

static void post_finished(TaskRunner *r, Task *t) {
        g_mutex_lock(&r->lock);
        g_queue_push_tail(&r->finished, t);
        g_mutex_unlock(&r->lock);
        uint64_t one = 1;
        while (write(r->efd, &one, sizeof(one)) < 0 && errno == EINTR)
                ;
}

/* Workers yield the CPU to the loop thread: a property read is answered
 * promptly while imports copy. */
#define WORKER_NICE 10

static void worker(gpointer data, gpointer user_data) {
        TaskRunner *r = user_data;
        static __thread bool niced;
        if (!niced) {
                niced = true;
                setpriority(PRIO_PROCESS, (id_t) gettid(), WORKER_NICE);
        }
        Task *t = data;
        t->work(t);
        post_finished(r, t);
}

static void dispatch(TaskRunner *r, Task *t) {
        GThreadPool *pool = t->streaming ? r->data_pool : r->pool;
        if (!pool) {
                /* shut down: tasks_shutdown's drain completes it */
                t->abandoned = t->skip = true;
                g_mutex_lock(&r->lock);
                g_queue_push_tail(&r->finished, t);
                g_mutex_unlock(&r->lock);
                return;
        }
        if (t->prepare)
                t->prepare(t);
        if (t->skip || !t->work)
                post_finished(r, t);
        else
                /* GLib queues t even when it cannot start one more thread:
                 * a running worker takes it */
                g_thread_pool_push(pool, t, NULL);
}

void task_submit(TaskRunner *r, Task *t, TaskQueue *q) {
        r->pending++;
        t->skip = t->abandoned = false;
        t->queue = task_queue_ref(q);
        if (!q) {
                dispatch(r, t);
                return;
        }
        if (q->busy) {
                g_queue_push_tail(&q->waiting, t);
                return;
        }
        q->busy = true;
        dispatch(r, t);
}

static void finish(TaskRunner *r, Task *t) {
        TaskQueue *q = t->queue;
        t->queue = NULL;
        r->pending--;
        t->done(t);
        if (!q)
                return;
        Task *next = g_queue_pop_head(&q->waiting);
        if (next)
                dispatch(r, next);
        else
                q->busy = false;
        task_queue_unref(q);
}

static void drain(TaskRunner *r);

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        TaskRunner *r = userdata;
        uint64_t n;
        while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
                ;
        drain(r);
        return 0;
}

int tasks_init(sd_event *event, unsigned max_threads, unsigned data_threads, TaskRunner **out) {
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0)
                return -errno;
        TaskRunner *r = g_new0(TaskRunner, 1);
        r->efd = efd;
        g_mutex_init(&r->lock);
        g_queue_init(&r->finished);
        /* not exclusive: threads start on demand, so making the pools
         * cannot fail */
        r->pool = g_thread_pool_new(worker, r, (gint) max_threads, FALSE, NULL);
        r->data_pool = g_thread_pool_new(worker, r, (gint) data_threads, FALSE, NULL);
        *out = r;
        return sd_event_add_io(event, &r->source, r->efd, EPOLLIN, on_eventfd, r);
}

/* Completes every finished task, and those their done callbacks submit. */
static void drain(TaskRunner *r) {
        for (;;) {
                g_mutex_lock(&r->lock);
                Task *t = g_queue_pop_head(&r->finished);
                g_mutex_unlock(&r->lock);
                if (!t)
                        break;
                finish(r, t);
        }
}

/* After the loop: the workers finish what they run; the tasks that finished
 * since the loop stopped complete here (their done frees them and sends the
 * reply while the bus is still open). What they or their queues submit now
 * never runs: it is abandoned (Task.abandoned), completed here too. */
void tasks_shutdown(TaskRunner *r) {
        if (!r)
                return;
        if (r->pool)
                g_thread_pool_free(r->pool, FALSE, TRUE);
        if (r->data_pool)
                g_thread_pool_free(r->data_pool, FALSE, TRUE);
        r->pool = r->data_pool = NULL;
        r->source = sd_event_source_disable_unref(r->source);
        drain(r);
        if (r->efd >= 0)
                close(r->efd);
        r->efd = -1;
}

void tasks_free(TaskRunner *r) {
        if (!r)
                return;
        g_assert(!r->pool && !r->data_pool);
        drain(r); /* abandoned since tasks_shutdown */
        g_mutex_clear(&r->lock);
        g_free(r);
}

unsigned tasks_pending(TaskRunner *r) {
        return r->pending;
}
