/* The job runner: blocking storage work runs on worker threads; completions
 * come back to the event loop through an eventfd. Tasks submitted to the same
 * TaskQueue run one at a time in submission order; tasks of different queues
 * (or with no queue) run in parallel. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

typedef struct TaskRunner TaskRunner;
typedef struct TaskQueue TaskQueue;
typedef struct Task Task;

struct Task {
        /* Loop thread, when the task's turn comes; may set skip. Optional. */
        void (*prepare)(Task *t);
        /* Worker thread: the blocking part. Not called when skip is set. */
        void (*work)(Task *t);
        /* Loop thread, after work; may free the task. */
        void (*done)(Task *t);
        bool skip;
        /* Set before submitting: the work may take as long as a client
         * makes it (a stream copy); it runs on the data workers, never
         * holding a worker that short operations need. */
        bool streaming;
        /* Set by the runner for a task submitted after tasks_shutdown: it
         * never runs (nor its prepare); done is called at once and must
         * fail it, so that nothing waits on it or leaks. */
        bool abandoned;
        /* private */
        TaskQueue *queue;
};

/* A runner on event (in *out, even when attaching to event fails, so that
 * tasks_shutdown can take it down): max_threads workers for short
 * operations, data_threads for streaming. */
int tasks_init(sd_event *event, unsigned max_threads, unsigned data_threads, TaskRunner **out);
/* After the loop: see jobs.c. r stays valid: what is submitted later is
 * abandoned (Task.abandoned), completed by tasks_free at the latest. */
void tasks_shutdown(TaskRunner *r);
/* Frees a shut down runner, completing what was abandoned meanwhile. */
void tasks_free(TaskRunner *r);

TaskQueue *task_queue_new(void);
TaskQueue *task_queue_ref(TaskQueue *q);
void task_queue_unref(TaskQueue *q);

/* Loop thread only. q may be NULL. */
void task_submit(TaskRunner *r, Task *t, TaskQueue *q);

/* Tasks submitted and not yet done. */
unsigned tasks_pending(TaskRunner *r);
