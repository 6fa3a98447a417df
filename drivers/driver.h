/* The storage driver interface.
 *
 * A driver turns volume operations into files or LVs. It never sees sd-bus and
 * keeps no state about volumes: everything it needs is in the VolumeSpec it is
 * handed, and everything it reports about a volume is read from the storage
 * (volume_query). Threads: pool_open and volume_init are pure (no I/O) and run
 * on the event loop; every other callback does blocking I/O and runs on a
 * worker. The service guarantees that calls for one volume never overlap.
 *
 * Every callback returns 0 on success or -1 with *err set (se_set()).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "spec.h"
#include "storage-error.h"

typedef struct Driver {
        const char *name;
        const char *const *params;       /* pool parameters, ListDrivers order */
        int max_revisions_to_keep;       /* -1: no limit */
        bool creates_volumes;            /* false: volumes come from pool_scan */
        bool can_shrink;                 /* Resize with allow_shrink works */
        /* volume_query's running tells whether a volume is started, so
         * Start and Stop need no state record: a crash is recovered from
         * what the storage shows. */
        bool shows_started;

        /* Optional, once at start before any thread (drivers_init): set-up
         * for the whole process. A failure leaves only this driver's pools
         * unusable. */
        int (*init)(StorageError *err);
        /* Optional: 0 when a pool of this driver works in dir (file-reflink:
         * the filesystem shares extents). Does I/O. */
        int (*probe)(const char *dir, StorageError *err);

        /* Validates the parameters (unknown keys are refused before this) and
         * normalises them in place (e.g. dir_path); allocates *pool. No I/O. */
        int (*pool_open)(GHashTable *config, void **pool, StorageError *err);
        void (*pool_free)(void *pool);
        int (*pool_setup)(void *pool, StorageError *err);
        int (*pool_usage)(void *pool, PoolUsage *out, StorageError *err);
        /* Optional: vids of the volumes the storage defines by itself. */
        int (*pool_scan)(void *pool, char ***vids, StorageError *err);
        /* Optional: re-reads what the driver caches about the storage, now
         * (RefreshUsage), so that the pool_usage and volume_query calls that
         * follow are fresh. */
        int (*pool_refresh)(void *pool, StorageError *err);

        /* Checks the kind is supported, fills the default vid and forces the
         * attributes the driver fixes (e.g. revisions_to_keep). No I/O. */
        int (*volume_init)(void *pool, VolumeSpec *v, StorageError *err);
        int (*volume_create)(void *pool, VolumeSpec *v, StorageError *err);
        int (*volume_remove)(void *pool, VolumeSpec *v, StorageError *err);
        int (*volume_start)(void *pool, VolumeSpec *v, StorageError *err);
        /* May update v->size (a volatile volume keeps its last size). */
        int (*volume_stop)(void *pool, VolumeSpec *v, StorageError *err);
        int (*volume_verify)(void *pool, VolumeSpec *v, StorageError *err);
        /* Called with rw, size > 0 and size != current already checked; a
         * shrink only when can_shrink. Sets v->size. */
        int (*volume_resize)(void *pool, VolumeSpec *v, uint64_t size, StorageError *err);
        /* rev NULL: the newest revision. */
        int (*volume_revert)(void *pool, VolumeSpec *v, const char *rev, StorageError *err);
        /* Reads what the storage says about the volume; fills every field
         * (strings never NULL) even when it fails. */
        int (*volume_query)(void *pool, const VolumeSpec *v, VolumeInfo *out, StorageError *err);

        /* Moving data (origin volumes only: the service checks save_on_stop,
         * started and dirty first). NULL: the driver cannot (NotSupported). */
        /* Creates the staging target (file or LV) of exactly size bytes,
         * replacing any leftover, and returns its path. */
        int (*volume_import_begin)(void *pool, VolumeSpec *v, uint64_t size, char **path, StorageError *err);
        /* success: commits the staged data (a new revision where revisions are
         * kept; the volume takes the staged size, v->size updated); otherwise
         * discards it. Either way no staging is left. handed_out: a client
         * outside the service got the staging target (ImportBegin) and may
         * still hold it open, so the committed data must not be the file or
         * LV it holds: nothing written through it later may reach any image. */
        int (*volume_import_end)(void *pool, VolumeSpec *v, bool success, bool handed_out, StorageError *err);
        /* Optional: stages a copy-on-write copy of src (same pool) as the
         * import target; import_end commits it. */
        int (*volume_import_clone)(void *pool, VolumeSpec *v, const VolumeSpec *src, StorageError *err);
        /* A view of the committed data for reading. *stable tells whether it
         * is a snapshot/reflink that cannot change until export_end (if not,
         * the service refuses changes to the volume while it is exported). */
        int (*volume_export)(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err);
        int (*volume_export_end)(void *pool, VolumeSpec *v, const char *path, StorageError *err);
        /* Optional, at service start: removes what lives only as long as the
         * service that made it (export views of an earlier run). */
        int (*volume_cleanup)(void *pool, VolumeSpec *v, StorageError *err);
} Driver;

/* drivers/registry.c */
const Driver *const *driver_list(void);       /* NULL-terminated, ListDrivers order */
const Driver *driver_find(const char *name);
/* Calls every driver's init; a failure is logged and the others still run. */
void drivers_init(void);
/* The driver of a default pool in dir: the first of file-reflink and file
 * whose probe accepts dir. */
const Driver *driver_for_dir(const char *dir);
