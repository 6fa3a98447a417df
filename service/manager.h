/* The service's one context, as systemd's hostnamed and mctpd keep theirs:
 * what lives as long as the service does, made in main() and reached from
 * every handler and callback (as userdata, or through a pool's manager).
 * Only the loop thread touches it; workers read state_dir, which never
 * changes. The task runner (jobs.c) is not here yet: its workers and
 * completion eventfd are still one per process. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "model.h"

struct Manager {
        sd_event *event;
        sd_bus *bus;              /* set while the objects are published */
        /* bus-changes.c: PropertiesChanged waiting to be sent */
        GHashTable *changes;      /* object path -> what is marked for it */
        uint64_t changes_marks;   /* marks so far: the signals' order */
        sd_event_source *changes_flush;
        const char *state_dir;
        TaskRunner *tasks;        /* jobs.c: the workers every operation runs on */
        /* the model (model.c) */
        GHashTable *pools;        /* name -> Pool* */
        ModelHooks hooks;         /* the bus layer's, once it is published */
        /* pool-ops.c */
        TaskQueue *add_queue;     /* AddPool ops run one at a time: each sees the pools added before it */
        GHashTable *adding;       /* names of pools being added, so that two AddPool calls cannot race */
        GHashTable *warned_vids;  /* "pool\nname": scanned names skipped and warned about */
        sd_event_source *periodic;
        /* auth.c: the polkit registry */
        GHashTable *polkit_queries; /* request message -> Query */
        char *refusing;           /* auth_refuse_new() */
        /* caller-uid.c */
        GHashTable *callers;      /* unique name -> Entry */
        sd_bus_slot *owner_match;
        unsigned callers_waiting; /* calls waiting for their caller's uid */
        struct {
                void (*fn)(const char *name, void *userdata);
                void *userdata;
        } caller_left[4];
        unsigned n_caller_left;
        /* bus-job.c */
        unsigned last_job_id;
        GHashTable *jobs;         /* BusJob* running */
        unsigned import_idle_sec; /* an Import whose stream stays silent this long fails */
        /* main.c: exit when idle, drain when stopping */
        const char *bus_address;  /* --bus */
        uint64_t exit_idle_usec;  /* --exit-idle; 0: never */
        uint64_t last_activity;
        sd_event_source *idle_timer;
        bool releasing;           /* the name is released: exit once nothing is in flight */
        bool stopping;            /* SIGTERM: draining */
        /* usage.c */
        sd_event *usage_event;    /* the loop delayed refreshes run on; NULL before it runs and once stopping */
        void (*scanned)(Pool *p, char **vids);
        GPtrArray *delayed;       /* pools whose refresh waits for its delay (each holds a reference) */
};
