#include "pool-rules.h"

#include "manager.h"

void pool_facts_take(const PoolOp *op, PoolFacts *f) {
        Pool *p = op->pool;
        Manager *m = p->manager;
        bool add = op->kind == POP_ADD;
        *f = (PoolFacts) {
                .name = p->name,
                .driver = p->driver,
                .name_taken = add && model_find_pool(m, p->name),
                .adding = add && m->adding && g_hash_table_contains(m->adding, p->name),
                .removed = p->removed,
                .volumes = pool_created_volumes(p),
        };
}

int pool_may_run(const PoolOp *op, const PoolFacts *f, StorageError *e) {
        switch (op->kind) {
        case POP_ADD:
                if (f->name_taken || f->adding)
                        return se_set(e, SE_ALREADY_EXISTS, "Pool %s already exists", f->name);
                return 0;
        case POP_REMOVE:
                if (f->removed)
                        return se_set(e, SE_NO_SUCH_POOL, "Unknown storage pool %s", f->name);
                /* the volumes its storage defines go with it; created ones
                 * must be removed first */
                if (f->volumes > 0)
                        return se_set(e, SE_POOL_IN_USE, "Storage pool is in use: '%s' has %u volumes", f->name,
                                      f->volumes);
                return 0;
        case POP_SET_REVISIONS: {
                if (f->removed)
                        return se_set(e, SE_NO_SUCH_POOL, "Unknown storage pool %s", f->name);
                g_autofree char *what = g_strdup_printf("pool %s", f->name);
                return revisions_check(f->driver, op->revisions_to_keep, what, e);
        }
        case POP_SET_LIMITS:
                if (f->removed)
                        return se_set(e, SE_NO_SUCH_POOL, "Unknown storage pool %s", f->name);
                return usage_limits_check(op->usage_warning, op->usage_critical, f->name, e);
        case POP_REFRESH:
                if (f->removed)
                        return se_set(e, SE_NO_SUCH_POOL, "Storage pool %s was removed", f->name);
                return 0;
        case _POP_MAX:
                break;
        }
        return se_set(e, SE_FAILED, "Unknown operation on pool %s", f->name);
}

int pool_recheck(PoolOp *op) {
        PoolFacts f;
        pool_facts_take(op, &f);
        return pool_may_run(op, &f, &op->err);
}
