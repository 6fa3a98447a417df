/* The in-memory model: pools and their volumes as the loop thread sees them.
 * Only the loop thread touches these structures. Workers get copies. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch-mode.h"
#include "driver.h"
#include "jobs.h"

typedef struct Manager Manager; /* manager.h */
typedef struct Pool Pool;
typedef struct Export {
        char *path;
        bool stable;              /* false: the volume may not change meanwhile */
        char *owner;              /* the caller's unique bus name, or NULL */
} Export;
typedef struct Volume Volume;

struct Pool {
        unsigned ref;
        Manager *manager;
        char *name;
        char *object_path;
        const Driver *driver;
        void *drv;                /* the driver's pool handle */
        GHashTable *config;       /* as saved: parameters and revisions_to_keep */
        int revisions_to_keep;
        GHashTable *volumes;      /* vid -> Volume* (published volumes) */
        GHashTable *reserved;     /* vids being created */
        TaskQueue *queue;         /* pool-level operations */
        bool removed;             /* RemovePool done or in progress */
        PoolUsage usage;          /* last read */
        uint64_t usage_read_usec; /* CLOCK_MONOTONIC of the last read, 0 = never */
        bool usage_busy, usage_again;
        void *usage_timer;        /* sd_event_source of a delayed refresh */
        GPtrArray *usage_waiters; /* callbacks for the next refresh */
        BatchCost batch_cost[3];  /* volume-batch.c: StartVolumes, StopVolumes, VerifyVolumes */
        unsigned usage_warning;   /* UsageLimits, percent of the data (and metadata) space */
        unsigned usage_critical;
        uint64_t provisioned;     /* sum of the volumes' sizes, as last announced */
};

struct Volume {
        unsigned ref;
        Pool *pool;               /* a reference */
        char *object_path;
        VolumeSpec *spec;
        bool started;
        bool started_here;        /* started by this run of the service */
        bool discovered;          /* defined by the storage (linux-kernel) */
        bool removed;
        char *import_path;        /* ImportBegin staged data here; ImportEnd pending */
        char *import_owner;       /* the caller that staged it (unique bus name), or NULL */
        GPtrArray *exports;       /* Export* still open */
        VolumeInfo info;          /* last read from the storage */
        uint64_t info_usec;       /* CLOCK_MONOTONIC when info was read, 0 = never */
        bool reread_queued;       /* a read found info stale: a re-read is queued */
        TaskQueue *queue;
};

/* Notifications for the bus layer; every callback is optional. */
typedef struct ModelHooks {
        void (*pool_added)(Pool *p);
        void (*pool_removed)(Pool *p);
        void (*pool_changed)(Pool *p, const char *const *props);
        void (*volume_added)(Volume *v);
        void (*volume_removed)(Volume *v);
        void (*volume_changed)(Volume *v, const char *const *props);
        void (*volume_size_changed)(Volume *v, uint64_t old_size, uint64_t new_size);
        void (*volume_exported)(Volume *v, const char *path, bool ended);
} ModelHooks;

/* Pools */
Pool *pool_new(Manager *m, const char *name, const Driver *driver, void *drv, GHashTable *config,
               int revisions_to_keep);
/* revisions_to_keep n within what driver d keeps? what names the object
 * ("pool P", "volume P:V"). */
int revisions_check(const Driver *d, int n, const char *what, StorageError *err);
Pool *pool_ref(Pool *p);
void pool_unref(Pool *p);
void model_add_pool(Pool *p);          /* takes the reference */
void model_remove_pool(Pool *p);
Pool *model_find_pool(Manager *m, const char *name);
/* At exit, once no task runs: every pool and volume goes, unannounced. */
void model_free(Manager *m);
/* Sorted by name; the array does not own the pools. */
GPtrArray *model_pools(Manager *m);
/* Sorted by vid; the array does not own the volumes. */
GPtrArray *pool_volumes_sorted(Pool *p);
unsigned pool_created_volumes(Pool *p);
void pool_set_usage(Pool *p, const PoolUsage *u);
/* Replaces the saved config (takes a reference), revisions_to_keep and the
 * usage limits read from it, and announces what changed. */
void pool_set_config(Pool *p, GHashTable *config, int revisions_to_keep);
/* "ok", "warning", "critical" (data or metadata usage at or above the
 * limit), or "" where the driver has no notion of size. */
const char *pool_usage_state(const Pool *p);
/* Sum of the sizes of the pool's volumes (UsageDetails "provisioned"). */
uint64_t pool_provisioned(const Pool *p);

/* The usage limits of a pool config: usage_warning and usage_critical,
 * (90, 95) where absent; InvalidArgument naming the pool unless
 * 1 <= warning <= critical <= 100. */
#define USAGE_WARNING_DEFAULT 90
#define USAGE_CRITICAL_DEFAULT 95
int usage_limits_from_config(GHashTable *config, const char *pool, unsigned *warning, unsigned *critical,
                             StorageError *err);
int usage_limits_check(unsigned warning, unsigned critical, const char *pool, StorageError *err);

/* Volumes */
Volume *volume_new(Pool *pool, VolumeSpec *spec, bool started);  /* takes spec */
Volume *volume_ref(Volume *v);
void volume_unref(Volume *v);
void model_add_volume(Volume *v);      /* takes the reference */
void model_remove_volume(Volume *v);
Volume *model_find_volume(Manager *m, const char *pool, const char *vid);
Volume *model_find_volume_by_path(Manager *m, const char *object_path);
/* The one update of a volume after an operation: its attributes (spec and
 * started, unless spec is NULL) and what the storage said (info, unless
 * NULL); takes both. Announces what changed with one volume_changed, and
 * nothing when no value changed. */
void volume_update(Volume *v, VolumeSpec *spec, bool started, VolumeInfo *info);
/* volume_update of info alone. */
void volume_set_info(Volume *v, VolumeInfo *info);     /* takes info */

/* Record an export (and announce it), or its end. owner: the caller holding
 * it (NULL: none); removing with an owner removes only that owner's export. */
void volume_add_export(Volume *v, const char *path, bool stable, const char *owner);
bool volume_remove_export(Volume *v, const char *path, const char *owner);
Export *volume_find_export(Volume *v, const char *path, const char *owner);
bool volume_has_export(Volume *v, bool unstable_only);

/* Parses revisions_to_keep from a pool config value. */
int parse_revisions(const char *s, int *out);
