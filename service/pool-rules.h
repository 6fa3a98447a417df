/* "May this pool operation run now?": every rule that can refuse an AddPool,
 * RemovePool, SetRevisionsToKeep or RefreshUsage once its arguments have been
 * read and the caller authorized, in one function. The facts about the pool
 * are taken on the loop when the op is submitted; an op whose result the
 * pool's removal voids (SetRevisionsToKeep, RefreshUsage) asks again when it
 * completes. What needs the storage (whether a new pool's directory or thin
 * pool is another pool's) is pool-claims.c's, on a worker; what the
 * arguments must be (a valid name, a known driver, a config the driver
 * takes) is checked before authorization (pool_add_check, and
 * pool_op_new_add's config check). No I/O, no sd-bus. */
#pragma once

#include "pool-ops.h"

/* What the rules look at besides the operation. */
typedef struct PoolFacts {
        const char *name;         /* the pool's (messages name it) */
        const Driver *driver;
        bool name_taken;          /* add: a pool of the model has the name */
        bool adding;              /* add: an AddPool of the name is under way */
        bool removed;             /* RemovePool done or in progress */
        unsigned volumes;         /* created in the pool, or being created (not those its storage defines) */
} PoolFacts;

/* Loop side: the facts for op->pool as they are now. */
void pool_facts_take(const PoolOp *op, PoolFacts *f);

/* 0: op may run; -1 with *e set to the first rule that refuses it. */
int pool_may_run(const PoolOp *op, const PoolFacts *f, StorageError *e);

/* Loop side, when op completes: asks again with the facts as they are now,
 * setting op->err when refused (the pool was removed meanwhile). */
int pool_recheck(PoolOp *op);
