/* The storage a pool claims (its directory, or its volume group and thin
 * pool), so that AddPool refuses a pool that would share storage with
 * another. A snapshot of the existing pools is taken on the loop; the check
 * resolves paths (blocking I/O) and runs on a worker. */
#pragma once

#include <glib.h>

#include "driver.h"
#include "model.h"
#include "storage-error.h"

typedef struct PoolClaims PoolClaims;

/* Loop thread: every pool of the model, as it is now. */
PoolClaims *pool_claims_snapshot(Manager *m);
void pool_claims_free(PoolClaims *c);

/* Worker: 0 when the new pool (name, driver d, normalised config) shares no
 * storage with a pool of the snapshot; else -1 with AlreadyExists naming the
 * other pool, or InvalidArgument for a dir_path of / or a symlink. */
int pool_claims_check(const PoolClaims *c, const char *name, const Driver *d, GHashTable *config,
                      StorageError *err);
