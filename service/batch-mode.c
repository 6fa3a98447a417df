#include "batch-mode.h"

/* Weight of the newest sample in the moving average. */
#define NEWEST_WEIGHT 0.3

static BatchMode other(BatchMode m) {
        return m == BATCH_PARALLEL ? BATCH_SERIAL : BATCH_PARALLEL;
}

BatchMode batch_mode_choose(BatchCost *c) {
        unsigned n = c->chosen++;
        /* first measure both (parallel first) */
        for (BatchMode m = BATCH_PARALLEL; m < _BATCH_MODE_MAX; m++)
                if (c->samples[m] < BATCH_MODE_FIRST_SAMPLES && c->samples[m] <= c->samples[other(m)])
                        return m;
        BatchMode cheaper = c->usec_per_volume[BATCH_SERIAL] < c->usec_per_volume[BATCH_PARALLEL] ? BATCH_SERIAL
                                                                                                  : BATCH_PARALLEL;
        return n % BATCH_MODE_RETRY_EVERY == BATCH_MODE_RETRY_EVERY - 1 ? other(cheaper) : cheaper;
}

void batch_mode_record(BatchCost *c, BatchMode m, uint64_t usec, unsigned volumes) {
        if (volumes == 0)
                return;
        double per = (double) usec / volumes;
        double *avg = &c->usec_per_volume[m];
        *avg = c->samples[m]++ == 0 ? per : (1 - NEWEST_WEIGHT) * *avg + NEWEST_WEIGHT * per;
}

const char *batch_mode_name(BatchMode m) {
        return m == BATCH_SERIAL ? "one at a time" : "in parallel";
}
