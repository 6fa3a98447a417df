/* The state store: what the storage cannot tell (pool definitions, volume
 * attributes), one record per pool and per volume under the state directory:
 *   <dir>/pools/<pool>.pool
 *   <dir>/volumes/<pool>/<vid with '/' as '%'>.volume
 * Each record is written atomically (temp file, fdatasync, rename, fsync of the
 * directory). Loading skips (and logs) torn or invalid records. All functions
 * do disk I/O: call them from workers, or before the event loop runs. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "driver.h"

int store_init(const char *dir, StorageError *err);

/* config: the pool's saved configuration (driver parameters and
 * revisions_to_keep), string to string. */
int store_save_pool(const char *dir, const char *name, const char *driver, GHashTable *config, StorageError *err);
int store_remove_pool(const char *dir, const char *name, StorageError *err);

/* Whether the records of (a, a_started) and (b, b_started) differ: what
 * store_save_volume writes, field by field. */
bool store_volume_record_differs(const VolumeSpec *a, bool a_started, const VolumeSpec *b, bool b_started);
int store_save_volume(const char *dir, const char *pool, const VolumeSpec *v, bool started, StorageError *err);
int store_remove_volume(const char *dir, const char *pool, const char *vid, StorageError *err);

typedef struct StoreLoader {
        void (*pool)(const char *name, const char *driver, GHashTable *config, void *userdata);
        void (*volume)(const char *pool, const VolumeSpec *v, bool started, void *userdata);
        void *userdata;
} StoreLoader;

/* Calls loader->pool for every valid pool record (sorted by name), then
 * loader->volume for every valid volume record of a pool that was loaded.
 * Returns the number of records skipped. */
int store_load(const char *dir, const StoreLoader *loader);
