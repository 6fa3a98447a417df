/* The job runner: blocking storage work runs on worker threads; completions
 * come back to the event loop through an eventfd. Tasks submitted to the same
 * TaskQueue run one at a time in submission order; tasks of different queues
 * (or with no queue) run in parallel. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

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
        /* private */
        TaskQueue *queue;
};

int tasks_init(sd_event *event, unsigned max_threads);
void tasks_shutdown(void);

TaskQueue *task_queue_new(void);
TaskQueue *task_queue_ref(TaskQueue *q);
void task_queue_unref(TaskQueue *q);

/* Loop thread only. q may be NULL. */
void task_submit(Task *t, TaskQueue *q);

/* Tasks submitted and not yet done. */
unsigned tasks_pending(void);
