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

static struct {
        GThreadPool *pool;
        GThreadPool *data_pool; /* streaming tasks */
        int efd;
        sd_event_source *source;
        GMutex lock;
        GQueue finished; /* protected by lock */
        GQueue unrun;    /* submitted after the workers stopped: never run */
        unsigned pending;
} runner = { .efd = -1 };

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

static void post_finished(Task *t) {
        g_mutex_lock(&runner.lock);
        g_queue_push_tail(&runner.finished, t);
        g_mutex_unlock(&runner.lock);
        uint64_t one = 1;
        while (write(runner.efd, &one, sizeof(one)) < 0 && errno == EINTR)
                ;
}

/* Workers yield the CPU to the loop thread: a property read is answered
 * promptly while imports copy. */
#define WORKER_NICE 10

static void worker(gpointer data, gpointer user_data) {
        static __thread bool niced;
        if (!niced) {
                niced = true;
                setpriority(PRIO_PROCESS, (id_t) gettid(), WORKER_NICE);
        }
        Task *t = data;
        t->work(t);
        post_finished(t);
}

static void dispatch(Task *t) {
        if (t->prepare)
                t->prepare(t);
        GThreadPool *pool = t->streaming ? runner.data_pool : runner.pool;
        if (t->skip || !t->work)
                post_finished(t);
        else if (pool)
                /* GLib queues t even when it cannot start one more thread:
                 * a running worker takes it */
                g_thread_pool_push(pool, t, NULL);
        else
                g_queue_push_tail(&runner.unrun, t);
}

void task_submit(Task *t, TaskQueue *q) {
        runner.pending++;
        t->skip = false;
        t->queue = task_queue_ref(q);
        if (!q) {
                dispatch(t);
                return;
        }
        if (q->busy) {
                g_queue_push_tail(&q->waiting, t);
                return;
        }
        q->busy = true;
        dispatch(t);
}

static void finish(Task *t) {
        TaskQueue *q = t->queue;
        t->queue = NULL;
        runner.pending--;
        t->done(t);
        if (!q)
                return;
        Task *next = g_queue_pop_head(&q->waiting);
        if (next)
                dispatch(next);
        else
                q->busy = false;
        task_queue_unref(q);
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint64_t n;
        while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
                ;
        for (;;) {
                g_mutex_lock(&runner.lock);
                Task *t = g_queue_pop_head(&runner.finished);
                g_mutex_unlock(&runner.lock);
                if (!t)
                        break;
                finish(t);
        }
        return 0;
}

int tasks_init(sd_event *event, unsigned max_threads, unsigned data_threads) {
        runner.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (runner.efd < 0)
                return -errno;
        g_queue_init(&runner.finished);
        g_queue_init(&runner.unrun);
        /* not exclusive: threads start on demand, so making the pools
         * cannot fail */
        runner.pool = g_thread_pool_new(worker, NULL, (gint) max_threads, FALSE, NULL);
        runner.data_pool = g_thread_pool_new(worker, NULL, (gint) data_threads, FALSE, NULL);
        return sd_event_add_io(event, &runner.source, runner.efd, EPOLLIN, on_eventfd, NULL);
}

/* After the loop: the workers finish what they run; the tasks that finished
 * since the loop stopped complete here (their done frees them and sends the
 * reply while the bus is still open). What they or their queues submit now
 * never runs: it stays in runner.unrun until the process exits. */
void tasks_shutdown(void) {
        if (runner.pool)
                g_thread_pool_free(runner.pool, FALSE, TRUE);
        if (runner.data_pool)
                g_thread_pool_free(runner.data_pool, FALSE, TRUE);
        runner.pool = runner.data_pool = NULL;
        runner.source = sd_event_source_disable_unref(runner.source);
        for (;;) {
                g_mutex_lock(&runner.lock);
                Task *t = g_queue_pop_head(&runner.finished);
                g_mutex_unlock(&runner.lock);
                if (!t)
                        break;
                finish(t);
        }
        if (runner.efd >= 0)
                close(runner.efd);
        runner.efd = -1;
}

unsigned tasks_pending(void) {
        return runner.pending;
}
