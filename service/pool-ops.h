/* Pool operations: one op per AddPool, RemovePool, SetRevisionsToKeep,
 * SetUsageLimits and RefreshUsage call (the counterpart of volume-ops.c): whether it may run
 * asked of pool-rules.c on the loop when it is submitted, the storage and the
 * state record changed on a worker, the model updated on the loop when it
 * completes. Also the pools' life outside the
 * calls: loading the state at start, the default pools (added through the
 * same op as AddPool), the periodic refresh, and the volumes that a pool's
 * storage defines (linux-kernel), published and dropped as its scans find
 * them. No sd-bus here. */
#pragma once

#include <systemd/sd-event.h>

#include "model.h"
#include "pool-claims.h"

#define POOL_REFRESH_PERIOD_SEC 30

typedef enum PoolOpKind {
        POP_ADD,            /* the pool is published when the add succeeds */
        POP_REMOVE,
        POP_SET_REVISIONS,  /* revisions_to_keep */
        POP_SET_LIMITS,     /* usage_warning, usage_critical (checked already) */
        POP_REFRESH,        /* usage read again (no cached answers), then every volume */
        _POP_MAX,
} PoolOpKind;

typedef struct PoolOp PoolOp;
typedef void (*PoolOpDone)(PoolOp *op, void *userdata);

struct PoolOp {
        Task task;
        PoolOpKind kind;
        Pool *pool;
        /* arguments */
        int revisions_to_keep;
        unsigned usage_warning, usage_critical;
        /* result, valid in the done callback */
        StorageError err;
        /* private */
        GHashTable *config;       /* set revisions, set limits: the config to save */
        PoolUsage usage;          /* add: read before the pool is published */
        PoolClaims *others;       /* add: the pools it may not overlap */
        bool now;                 /* run before the loop (the default pools) */
        PoolOpDone done;
        void *userdata;
};

/* AddPool's arguments, before authorization: a valid name and a known
 * driver (returned in *d). Whether the name is free is a rule of
 * pool-rules.c, asked when the op is submitted. */
int pool_add_check(const char *name, const char *driver, const Driver **d, StorageError *err);
/* Add: checks config against the driver (normalising it) and opens the
 * driver's pool, no I/O; NULL with err when it does not fit. */
PoolOp *pool_op_new_add(Manager *m, const char *name, const Driver *d, GHashTable *config, PoolOpDone done,
                        void *userdata, StorageError *err);
/* An op on an existing pool; takes a reference to p. */
PoolOp *pool_op_new(PoolOpKind kind, Pool *p, PoolOpDone done, void *userdata);
/* Asks pool_may_run (pool-rules.h) first; done runs on the loop (at once
 * when the op is refused: a RemovePool of a pool that still has volumes);
 * the op is freed after it returns. */
void pool_op_submit(PoolOp *op);
void pool_op_free(PoolOp *op);

/* Before the loop runs (blocking I/O is fine): loads the state, adds the
 * default pools when there is none, cleans up and reads every volume. */
int pool_ops_load(Manager *m, const char *base_dir);
/* The periodic refresh and the scans' publication, on m->event. */
int pool_ops_init(Manager *m);
/* Stopping: no more periodic refreshes (see usage_shutdown). */
void pool_ops_shutdown(Manager *m);
