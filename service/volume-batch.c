#include "volume-batch.h"

#include <stdio.h>

#include "batch-mode.h"
#include "clock.h"
#include "fileops.h"
#include "manager.h"

typedef struct Batch Batch;

/* The batch's operations on one pool. */
typedef struct Group {
        Batch *batch;
        Pool *pool;               /* a reference */
        GPtrArray *vols;          /* Volume*, references */
        guint next;               /* serial: the next one to submit */
        unsigned left;            /* operations not done yet */
        BatchMode mode;
        uint64_t start_usec;
} Group;

struct Batch {
        Task flush;               /* after the last operation: the shared directory flushes */
        Manager *manager;
        VolumeOpKind kind;
        FoFlushes *flushes;
        GPtrArray *groups;        /* Group* */
        unsigned groups_left;
        StorageError err;         /* the first failure */
        VolumeBatchDone done;
        void *userdata;
};

static BatchCost *cost_of(Pool *p, VolumeOpKind kind) {
        return &p->batch_cost[kind == VOP_START ? 0 : kind == VOP_STOP ? 1 : 2];
}

static void group_free(gpointer p) {
        Group *g = p;
        g_ptr_array_unref(g->vols);
        pool_unref(g->pool);
        g_free(g);
}

static void batch_finish(Batch *b) {
        b->done(&b->err, b->userdata);
        se_clear(&b->err);
        fo_flushes_free(b->flushes);
        g_ptr_array_unref(b->groups);
        g_free(b);
}

static void flush_work(Task *t) {
        Batch *b = (Batch *) t;
        StorageError e = STORAGE_ERROR_INIT;
        if (fo_flushes_run(b->flushes, &e) < 0 && b->err.code == SE_OK)
                se_move(&b->err, &e);
        se_clear(&e);
}

static void flush_done(Task *t) {
        Batch *b = (Batch *) t;
        /* the loop has ended (shutdown): what the operations changed is still
         * made durable before anything is answered */
        if (t->abandoned)
                flush_work(t);
        batch_finish(b);
}

static void submit_next(Group *g);

/* Records what the group cost; logs when the cheaper mode for its pool
 * changes, with both costs. */
static void note_cost(Group *g, uint64_t usec) {
        BatchCost *c = cost_of(g->pool, g->batch->kind);
        if (batch_mode_record(c, g->mode, usec, g->vols->len))
                fprintf(stderr, "Pool %s: %s batches now run %s (%.1f ms per volume in parallel, %.1f ms one at a time)\n",
                        g->pool->name, volume_op_name(g->batch->kind), batch_mode_name(batch_mode_cheaper(c)),
                        c->usec_per_volume[BATCH_PARALLEL] / 1000, c->usec_per_volume[BATCH_SERIAL] / 1000);
}

/* A group is done (or the submission is): the flushes follow the last. */
static void group_done(Batch *b) {
        if (--b->groups_left > 0)
                return;
        if (fo_flushes_owed(b->flushes) == 0) {
                batch_finish(b);
                return;
        }
        task_submit(b->manager->tasks, &b->flush, NULL);
}

static void one_done(VolumeOp *op, void *userdata) {
        Group *g = userdata;
        Batch *b = g->batch;
        if (op->err.code != SE_OK && b->err.code == SE_OK)
                se_move(&b->err, &op->err);
        if (--g->left > 0) {
                if (g->mode == BATCH_SERIAL)
                        submit_next(g);
                return;
        }
        if (g->vols->len > 1)
                note_cost(g, clock_usec(CLOCK_MONOTONIC) - g->start_usec);
        group_done(b);
}

static void submit_next(Group *g) {
        VolumeOp *op = volume_op_new(g->batch->kind, g->vols->pdata[g->next++], one_done, g);
        op->flushes = g->batch->flushes;
        volume_op_submit(op);
}

static Group *group_for(Batch *b, Pool *p) {
        for (guint i = 0; i < b->groups->len; i++) {
                Group *g = b->groups->pdata[i];
                if (g->pool == p)
                        return g;
        }
        Group *g = g_new0(Group, 1);
        g->batch = b;
        g->pool = pool_ref(p);
        g->vols = g_ptr_array_new_with_free_func((GDestroyNotify) volume_unref);
        g_ptr_array_add(b->groups, g);
        return g;
}

void volume_batch_run(Manager *m, VolumeOpKind kind, Volume *const *vols, size_t n, VolumeBatchDone done,
                      void *userdata) {
        Batch *b = g_new0(Batch, 1);
        b->flush.work = flush_work;
        b->flush.done = flush_done;
        b->manager = m;
        b->kind = kind;
        b->flushes = fo_flushes_new();
        b->groups = g_ptr_array_new_with_free_func(group_free);
        b->done = done;
        b->userdata = userdata;
        for (size_t i = 0; i < n; i++)
                g_ptr_array_add(group_for(b, vols[i]->pool)->vols, volume_ref(vols[i]));
        /* held while submitting, so that the batch cannot finish (and be
         * freed) under this loop */
        b->groups_left = b->groups->len + 1;
        /* every group is set up before any operation can complete */
        for (guint i = 0; i < b->groups->len; i++) {
                Group *g = b->groups->pdata[i];
                g->left = g->vols->len;
                g->mode = g->vols->len > 1 ? batch_mode_choose(cost_of(g->pool, kind)) : BATCH_PARALLEL;
                g->start_usec = clock_usec(CLOCK_MONOTONIC);
        }
        for (guint i = 0; i < b->groups->len; i++) {
                Group *g = b->groups->pdata[i];
                for (guint k = 0; k < (g->mode == BATCH_SERIAL ? 1 : g->vols->len); k++)
                        submit_next(g);
        }
        group_done(b);
}
