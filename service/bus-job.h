/* Job objects (/org/qubes/Storage1/job/<N>) for long operations. A job is
 * cancelled when its caller (owner) leaves the bus (service/caller-uid.h). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "stream.h"

typedef struct Manager Manager; /* manager.h */

typedef struct BusJob {
        Manager *manager;
        unsigned id;
        char *path;
        char *operation;          /* volume-import, volume-clone, ... */
        char **objects;
        uint64_t start_usec;      /* CLOCK_REALTIME */
        uid_t uid;                /* of the caller that started it; -1: unknown */
        char *owner;              /* its unique bus name */
        bool cancelable;
        uint64_t total;           /* bytes */
        double progress_value;
        uint64_t rate;            /* bytes/s */
        uint64_t last_bytes, last_usec;
        CopyProgress progress;    /* updated by the worker */
        sd_bus *bus;
        sd_bus_slot *slot;
        sd_event_source *timer;
} BusJob;

/* Publishes a job for the call m about object (a volume path). */
BusJob *bus_job_start(Manager *manager, sd_bus_message *m, const char *operation, const char *object, uint64_t total);
/* 0 when the caller of m (authorized already) may start one more job;
 * else LimitsExceeded (service/caller-limits.h; uid 0 has no limit). */
int bus_job_check_limits(Manager *manager, sd_bus_message *m, sd_bus_error *error);
/* Emits Completed (err NULL or SE_OK: success), unpublishes and frees. */
void bus_job_finish(BusJob *j, const StorageError *err);
/* Cancels every running job (the service is stopping): each stops at its
 * next safe point and completes as Cancelled. */
void bus_jobs_cancel_all(Manager *manager);
/* At exit, once no task runs. */
void bus_jobs_free(Manager *manager);
