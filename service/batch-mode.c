#include "batch-mode.h"

/* Weight of the newest sample in the moving average. */
#define NEWEST_WEIGHT 0.3

static BatchMode other(BatchMode m) {
        return m == BATCH_PARALLEL ? BATCH_SERIAL : BATCH_PARALLEL;
}

static bool measured(const BatchCost *c) {
        return c->samples[BATCH_PARALLEL] >= BATCH_MODE_FIRST_SAMPLES && c->samples[BATCH_SERIAL] >= BATCH_MODE_FIRST_SAMPLES;
}

BatchMode batch_mode_cheaper(const BatchCost *c) {
        return c->usec_per_volume[BATCH_SERIAL] < c->usec_per_volume[BATCH_PARALLEL] ? BATCH_SERIAL : BATCH_PARALLEL;
}

BatchMode batch_mode_choose(BatchCost *c) {
        unsigned n = c->chosen++;
        /* first measure both (parallel first) */
        for (BatchMode m = BATCH_PARALLEL; m < _BATCH_MODE_MAX; m++)
                if (c->samples[m] < BATCH_MODE_FIRST_SAMPLES && c->samples[m] <= c->samples[other(m)])
                        return m;
        BatchMode cheaper = batch_mode_cheaper(c);
        return n % BATCH_MODE_RETRY_EVERY == BATCH_MODE_RETRY_EVERY - 1 ? other(cheaper) : cheaper;
}

bool batch_mode_record(BatchCost *c, BatchMode m, uint64_t usec, unsigned volumes) {
        if (volumes == 0)
                return false;
        bool was_measured = measured(c);
        BatchMode was = batch_mode_cheaper(c);
        double per = (double) usec / volumes;
        double *avg = &c->usec_per_volume[m];
        *avg = c->samples[m]++ == 0 ? per : (1 - NEWEST_WEIGHT) * *avg + NEWEST_WEIGHT * per;
        return measured(c) && (!was_measured || batch_mode_cheaper(c) != was);
}

const char *batch_mode_name(BatchMode m) {
        return m == BATCH_SERIAL ? "one at a time" : "in parallel";
}
