/* The task runner (service/jobs.c) on a real sd-event loop and real worker
 * threads: tasks of one queue run one at a time in submission order (each
 * prepared only when the one before is done), tasks of different queues and
 * streaming tasks run beside each other, done runs on the loop thread and
 * only when the loop dispatches, a skipped task's work never runs, and what
 * a queue submits after tasks_shutdown never runs.
 *
 * Waits for another thread have a 60 s deadlock guard; no assertion is about
 * how long anything takes. */
#include <glib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "jobs.h"

#define GUARD_US (60 * G_USEC_PER_SEC)

static GThread *loop_thread;

/* What happened, in order: "p1 w1 d1 ..." (prepare, work, done of task 1). */
static struct {
        GMutex lock;
        GCond cond;
        GString *log;
        unsigned done;
} rec;

static void rec_reset(void) {
        g_mutex_lock(&rec.lock);
        if (rec.log)
                g_string_free(rec.log, TRUE);
        rec.log = g_string_new(NULL);
        rec.done = 0;
        g_mutex_unlock(&rec.lock);
}

static void rec_add(char what, int id) {
        g_mutex_lock(&rec.lock);
        g_string_append_printf(rec.log, "%s%c%d", rec.log->len ? " " : "", what, id);
        if (what == 'd')
                rec.done++;
        g_cond_broadcast(&rec.cond);
        g_mutex_unlock(&rec.lock);
}

static char *rec_log(void) {
        g_mutex_lock(&rec.lock);
        char *s = g_strdup(rec.log->str);
        g_mutex_unlock(&rec.lock);
        return s;
}

/* A gate a worker waits at until the loop thread opens it. */
typedef struct Gate {
        bool entered;
        bool open;
} Gate;

typedef struct TestTask {
        Task task; /* first: the runner hands back &task */
        int id;
        bool skip_in_prepare;
        Gate *gate;          /* work waits until it opens */
        int *wait_for;       /* work waits until every listed id (0-ended) has worked */
        bool gave_up;        /* a wait hit the deadlock guard */
} TestTask;

static bool has_worked(int id) {
        g_autofree char *needle = g_strdup_printf("w%d", id);
        gchar **words = g_strsplit(rec.log->str, " ", -1);
        bool found = g_strv_contains((const char *const *) words, needle);
        g_strfreev(words);
        return found;
}

static void on_prepare(Task *t) {
        TestTask *tt = (TestTask *) t;
        g_assert_true(g_thread_self() == loop_thread);
        rec_add('p', tt->id);
        if (tt->skip_in_prepare)
                t->skip = true;
}

static void on_work(Task *t) {
        TestTask *tt = (TestTask *) t;
        g_assert_true(g_thread_self() != loop_thread);
        gint64 deadline = g_get_monotonic_time() + GUARD_US;
        g_mutex_lock(&rec.lock);
        if (tt->gate) {
                tt->gate->entered = true;
                g_cond_broadcast(&rec.cond);
                while (!tt->gate->open && !tt->gave_up)
                        if (!g_cond_wait_until(&rec.cond, &rec.lock, deadline))
                                tt->gave_up = true;
        }
        for (int *w = tt->wait_for; w && *w && !tt->gave_up; w++)
                while (!has_worked(*w) && !tt->gave_up)
                        if (!g_cond_wait_until(&rec.cond, &rec.lock, deadline))
                                tt->gave_up = true;
        g_mutex_unlock(&rec.lock);
        rec_add('w', tt->id);
}

static void on_done(Task *t) {
        TestTask *tt = (TestTask *) t;
        g_assert_true(g_thread_self() == loop_thread);
        rec_add('d', tt->id);
}

static void task_setup(TestTask *tt, int id) {
        *tt = (TestTask) { .task = { .prepare = on_prepare, .work = on_work, .done = on_done }, .id = id };
}

static TaskRunner *runner; /* the test's, from loop_new to loop_free */

static sd_event *loop_new(unsigned threads, unsigned data_threads) {
        sd_event *e = NULL;
        g_assert_cmpint(sd_event_new(&e), >=, 0);
        g_assert_cmpint(tasks_init(e, threads, data_threads, &runner), >=, 0);
        rec_reset();
        return e;
}

static void loop_free(sd_event *e) {
        tasks_shutdown(runner); /* after test_shutdown's own: does nothing */
        tasks_free(runner);
        runner = NULL;
        sd_event_unref(e);
}

/* Runs the loop until n tasks are done (deadlock guard: 60 s). */
static void run_until_done(sd_event *e, unsigned n) {
        gint64 deadline = g_get_monotonic_time() + GUARD_US;
        for (;;) {
                g_mutex_lock(&rec.lock);
                unsigned done = rec.done;
                g_mutex_unlock(&rec.lock);
                if (done >= n)
                        return;
                if (g_get_monotonic_time() > deadline) {
                        g_autofree char *log = rec_log();
                        g_error("deadlock guard: %u of %u tasks done after 60 s (%s)", done, n, log);
                }
                g_assert_cmpint(sd_event_run(e, 100 * 1000), >=, 0);
        }
}

/* Waits (without running the loop) until the gate's worker is at it. */
static void wait_entered(Gate *g) {
        gint64 deadline = g_get_monotonic_time() + GUARD_US;
        g_mutex_lock(&rec.lock);
        while (!g->entered)
                if (!g_cond_wait_until(&rec.cond, &rec.lock, deadline))
                        g_error("deadlock guard: no worker reached the gate in 60 s (%s)", rec.log->str);
        g_mutex_unlock(&rec.lock);
}

static void gate_open(Gate *g) {
        g_mutex_lock(&rec.lock);
        g->open = true;
        g_cond_broadcast(&rec.cond);
        g_mutex_unlock(&rec.lock);
}

/* Waits (without running the loop) until task id has worked. */
static void wait_worked(int id) {
        gint64 deadline = g_get_monotonic_time() + GUARD_US;
        g_mutex_lock(&rec.lock);
        while (!has_worked(id))
                if (!g_cond_wait_until(&rec.cond, &rec.lock, deadline))
                        g_error("deadlock guard: task %d did not work in 60 s (%s)", id, rec.log->str);
        g_mutex_unlock(&rec.lock);
}

#define N_ORDER 8

/* Eight tasks on one queue with four idle workers: only the first is
 * prepared at submission; each next one is prepared after the one before
 * is done, and they run in submission order. */
static void test_queue_order(void) {
        sd_event *e = loop_new(4, 1);
        unsigned base = tasks_pending(runner);
        TaskQueue *q = task_queue_new();
        Gate gate = { 0 };
        TestTask t[N_ORDER];
        for (int i = 0; i < N_ORDER; i++) {
                task_setup(&t[i], i + 1);
                if (i == 0)
                        t[i].gate = &gate;
                task_submit(runner, &t[i].task, q);
        }
        g_assert_cmpuint(tasks_pending(runner), ==, base + N_ORDER);
        wait_entered(&gate);
        g_autofree char *early = rec_log();
        g_assert_cmpstr(early, ==, "p1");
        gate_open(&gate);
        run_until_done(e, N_ORDER);

        g_autoptr(GString) want = g_string_new(NULL);
        for (int i = 1; i <= N_ORDER; i++)
                g_string_append_printf(want, "%sp%d w%d d%d", i > 1 ? " " : "", i, i, i);
        g_autofree char *log = rec_log();
        g_assert_cmpstr(log, ==, want->str);
        g_assert_cmpuint(tasks_pending(runner), ==, base);
        task_queue_unref(q);
        loop_free(e);
}

/* A task of queue A waits in its work until a task of queue B and a task
 * of no queue have worked: they run beside it. */
static void test_queues_run_in_parallel(void) {
        sd_event *e = loop_new(3, 1);
        TaskQueue *qa = task_queue_new(), *qb = task_queue_new();
        static int others[] = { 2, 3, 0 };
        TestTask a, b, c;
        task_setup(&a, 1);
        a.wait_for = others;
        task_setup(&b, 2);
        task_setup(&c, 3);
        task_submit(runner, &a.task, qa);
        task_submit(runner, &b.task, qb);
        task_submit(runner, &c.task, NULL);
        run_until_done(e, 3);
        g_autofree char *log = rec_log();
        if (a.gave_up)
                g_error("the task of queue A waited 60 s for the others to work: %s", log);
        task_queue_unref(qa);
        task_queue_unref(qb);
        loop_free(e);
}

/* A streaming task runs on the data workers: with one short worker and one
 * data worker, a streaming task that waits for a short task does not keep
 * it from running. */
static void test_streaming_apart(void) {
        sd_event *e = loop_new(1, 1);
        static int shorts[] = { 2, 0 };
        TestTask s, t;
        task_setup(&s, 1);
        s.task.streaming = true;
        s.wait_for = shorts;
        task_setup(&t, 2);
        task_submit(runner, &s.task, NULL);
        task_submit(runner, &t.task, NULL);
        run_until_done(e, 2);
        if (s.gave_up)
                g_error("the streaming task waited 60 s for the short task to work");
        loop_free(e);
}

/* done comes on the loop thread (asserted in on_done), and only when the
 * loop dispatches: a task whose work has finished is still pending until
 * then. */
static void test_done_on_loop(void) {
        sd_event *e = loop_new(2, 1);
        unsigned base = tasks_pending(runner);
        TestTask t;
        task_setup(&t, 1);
        task_submit(runner, &t.task, NULL);
        wait_worked(1);
        g_autofree char *before = rec_log();
        g_assert_cmpstr(before, ==, "p1 w1");
        g_assert_cmpuint(tasks_pending(runner), ==, base + 1);
        run_until_done(e, 1);
        g_autofree char *after = rec_log();
        g_assert_cmpstr(after, ==, "p1 w1 d1");
        g_assert_cmpuint(tasks_pending(runner), ==, base);
        loop_free(e);
}

/* A task its prepare skips, and one with no work, complete without work
 * and the queue goes on; a skip set before submission is no skip. */
static void test_skip(void) {
        sd_event *e = loop_new(2, 1);
        TaskQueue *q = task_queue_new();
        TestTask t[4];
        for (int i = 0; i < 4; i++)
                task_setup(&t[i], i + 1);
        t[1].skip_in_prepare = true;
        t[2].task.work = NULL;
        t[3].task.skip = true;
        for (int i = 0; i < 4; i++)
                task_submit(runner, &t[i].task, q);
        run_until_done(e, 4);
        g_autofree char *log = rec_log();
        g_assert_cmpstr(log, ==, "p1 w1 d1 p2 d2 p3 d3 p4 w4 d4");
        task_queue_unref(q);
        loop_free(e);
}

/* tasks_shutdown completes a task that finished after the loop stopped;
 * the next task of its queue is abandoned: neither prepared nor run, but
 * done (told it was abandoned), so nothing stays pending. */
static void test_shutdown(void) {
        sd_event *e = loop_new(2, 1);
        unsigned base = tasks_pending(runner);
        TaskQueue *q = task_queue_new();
        Gate gate = { 0 };
        TestTask x, y;
        task_setup(&x, 1);
        x.gate = &gate;
        task_setup(&y, 2);
        task_submit(runner, &x.task, q);
        task_submit(runner, &y.task, q);
        wait_entered(&gate);
        gate_open(&gate);
        wait_worked(1);
        g_autofree char *before = rec_log();
        g_assert_cmpstr(before, ==, "p1 w1");
        tasks_shutdown(runner);
        g_autofree char *after = rec_log();
        g_assert_cmpstr(after, ==, "p1 w1 d1 d2");
        g_assert_false(x.task.abandoned);
        g_assert_true(y.task.abandoned);
        g_assert_cmpuint(tasks_pending(runner), ==, base);
        task_queue_unref(q);
        loop_free(e);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        loop_thread = g_thread_self();
        g_test_add_func("/jobs/queue-order", test_queue_order);
        g_test_add_func("/jobs/queues-run-in-parallel", test_queues_run_in_parallel);
        g_test_add_func("/jobs/streaming-apart", test_streaming_apart);
        g_test_add_func("/jobs/done-on-loop", test_done_on_loop);
        g_test_add_func("/jobs/skip", test_skip);
        g_test_add_func("/jobs/shutdown", test_shutdown);
        return g_test_run();
}
