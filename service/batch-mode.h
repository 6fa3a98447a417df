/* How a batch (StartVolumes, StopVolumes, VerifyVolumes) runs the operations
 * it has for one pool: all at once on the workers, or one after another.
 * Neither is right everywhere: fsyncs of one btrfs filesystem contend, so
 * there a VM's volumes go faster one at a time, while XFS takes them in
 * parallel. So the choice is measured, per pool and per kind of batch: each
 * batch's cost per volume is kept for the mode it ran in, the cheaper mode
 * is used, and the other one is tried again now and then so that the choice
 * follows the storage when it changes (an aged image, another load). Pure:
 * no I/O, no clock. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum BatchMode {
        BATCH_PARALLEL,
        BATCH_SERIAL,
        _BATCH_MODE_MAX,
} BatchMode;

typedef struct BatchCost {
        double usec_per_volume[_BATCH_MODE_MAX]; /* moving average */
        unsigned samples[_BATCH_MODE_MAX];
        unsigned chosen;                         /* choices made so far */
} BatchCost;

/* Each mode is measured this many times before the cheaper one is kept. */
#define BATCH_MODE_FIRST_SAMPLES 2
/* Of this many choices once both are measured, one tries the other mode. */
#define BATCH_MODE_RETRY_EVERY 8

/* The mode for the next batch of more than one volume. */
BatchMode batch_mode_choose(BatchCost *c);
/* What that batch cost: usec from its first operation's submission to its
 * last one's completion, for volumes operations. True when this settles the
 * cheaper mode or changes it (once both are measured). */
bool batch_mode_record(BatchCost *c, BatchMode m, uint64_t usec, unsigned volumes);
/* The mode with the lower average so far. */
BatchMode batch_mode_cheaper(const BatchCost *c);
const char *batch_mode_name(BatchMode m);
