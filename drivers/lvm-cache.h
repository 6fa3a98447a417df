/* LVM for the lvm_thin driver: one cached view of every LV, the lvm commands
 * (through libblockdev's lvm plugin), and their serialisation.
 *
 * The cache is one table for all lvm_thin pools, filled by one
 *   lvm lvs --noheadings --units b --separator ; -o vg_name,pool_lv,lv_name,
 *       lv_size,data_percent,lv_attr,origin,lv_metadata_size,metadata_percent
 * and protected by a mutex: workers read it concurrently. Every command that
 * changes LVs runs inside a transaction (LvmTx) that holds the volume group's
 * mutex, applies its effect to the cache at once (so the rest of the
 * operation sees it without another lvs), and ends with a refresh. An lvs
 * never overlaps a transaction: it waits for those in flight to end (holding
 * new ones back), so transactions that run together (StartVolumes of one VM)
 * share one lvs.
 *
 * Threads: everything here may be called from any worker. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage-error.h"

/* How old the cache may be for an answer: under the service's 30 s usage
 * period for pool usage and checks (so each periodic refresh runs one lvs),
 * and 1 s for a volume's view, which the service re-reads when a property
 * read finds it older than 1 s (docs/api.md, "Freshness"): an LV changed
 * behind the service's back shows within 2 s of a read. */
#define LVM_CACHE_MAX_AGE_USEC (29 * G_USEC_PER_SEC)
#define LVM_VIEW_MAX_AGE_USEC (1 * G_USEC_PER_SEC)

typedef struct LvmLv {
        char *vg, *pool_lv, *name, *attr, *origin;
        uint64_t size, metadata_size;
        double data_percent, metadata_percent; /* 0 when lvs gave none */
} LvmLv;

void lvm_lv_free(LvmLv *lv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LvmLv, lvm_lv_free)

/* Initialises libblockdev with only the LVM plugin (dependency checks off).
 * Idempotent; call it once before threads start. 0 or -1 with *err. */
int lvm_init(StorageError *err);

/* Reads lvs again if the cache is older than max_age_usec (or was never
 * read); 0 forces a read. */
int lvm_cache_ensure(int64_t max_age_usec, StorageError *err);

/* Copies of cache entries; NULL when absent. */
LvmLv *lvm_cache_get(const char *vg, const char *name);
bool lvm_cache_has(const char *vg, const char *name);
/* Every LV of vg whose name starts with prefix (copies, unsorted). */
GPtrArray *lvm_cache_list(const char *vg, const char *prefix);

/* A transaction: the volume group's lock plus a refresh at the end. */
typedef struct LvmTx {
        char *vg;
        void *lock;
        bool changed;
        bool ended;
} LvmTx;

void lvm_tx_begin(LvmTx *tx, const char *vg);
/* Releases the lock; if anything changed, waits until the cache has been
 * read again after the change (refresh=false: the caller's next transaction
 * refreshes for it). Cannot fail: a failed lvs is logged, as the change is
 * made, and the cache is read again by the next reader. */
void lvm_tx_end(LvmTx *tx, bool refresh);

/* The commands: one `lvm` execution each. size in bytes (rounded up to KiB,
 * LVM rounds up to its extents). Errors name the LV and carry LVM's stderr. */
int lvm_create_thin(LvmTx *tx, const char *pool, const char *name, uint64_t size, StorageError *err);
/* A thin snapshot, active and without the activation-skip flag. */
int lvm_snapshot(LvmTx *tx, const char *origin, const char *name, StorageError *err);
/* Removes every LV of names (NULL-terminated) in one lvremove. */
int lvm_remove(LvmTx *tx, const char *const *names, StorageError *err);
int lvm_rename(LvmTx *tx, const char *from, const char *to, StorageError *err);
/* Grows only: a smaller size is refused (libblockdev would force it). */
int lvm_extend(LvmTx *tx, const char *name, uint64_t size, StorageError *err);
int lvm_activate(LvmTx *tx, const char *name, StorageError *err);

/* Handed-out devices: a device-mapper linear device over an LV, handed to a
 * client (ImportBegin) instead of the LV itself, so that the client can be
 * cut off while it still holds the device open. Named <prefix>_<n>; prefix
 * holds only letters, digits and '_' (never an LVM device name: those hold
 * a '-'). One `dmsetup` execution. size: the LV's size in bytes. */
int lvm_handout_create(const char *vg, const char *lv, uint64_t size, const char *prefix, char **path,
                       StorageError *err);
/* Cuts off every handed-out device named <prefix>_*: its table becomes an
 * error target (I/O through it fails from now on and the LV is no longer
 * held open), and it goes away when its last opener closes it. dmsetup: 1
 * (ls), + 2 per device found. */
int lvm_handout_fence(const char *prefix, StorageError *err);

/* LVM's name rules for VG and LV names. */
bool lvm_valid_name(const char *name);
