/* service/batch-mode.c: a batch's mode per pool is measured, not assumed.
 * Both modes are tried first, then the cheaper one is kept, the other one
 * is tried again now and then, and the choice follows the costs when they
 * change. */
#include <glib.h>

#include "batch-mode.h"

/* Runs one batch of 3 volumes costing per_volume[mode] usec each. */
static BatchMode run(BatchCost *c, const double per_volume[2]) {
        BatchMode m = batch_mode_choose(c);
        batch_mode_record(c, m, (uint64_t) (3 * per_volume[m]), 3);
        return m;
}

static void test_both_measured_first(void) {
        BatchCost c = { 0 };
        const double cost[2] = { 1000, 500 };
        unsigned seen[2] = { 0 };
        for (int i = 0; i < 2 * BATCH_MODE_FIRST_SAMPLES; i++)
                seen[run(&c, cost)]++;
        g_assert_cmpuint(seen[BATCH_PARALLEL], ==, BATCH_MODE_FIRST_SAMPLES);
        g_assert_cmpuint(seen[BATCH_SERIAL], ==, BATCH_MODE_FIRST_SAMPLES);
        g_assert_cmpint(batch_mode_cheaper(&c), ==, BATCH_SERIAL);
        /* settled by the last of the first samples, and not again while it holds */
        g_assert_false(batch_mode_record(&c, BATCH_SERIAL, 1500, 3));
        g_assert_cmpfloat_with_epsilon(c.usec_per_volume[BATCH_SERIAL], 500, 1);
        g_assert_cmpfloat_with_epsilon(c.usec_per_volume[BATCH_PARALLEL], 1000, 1);
}

static void test_cheaper_kept_other_retried(void) {
        BatchCost c = { 0 };
        const double cost[2] = { 1000, 500 };
        for (int i = 0; i < 2 * BATCH_MODE_FIRST_SAMPLES; i++)
                run(&c, cost);
        unsigned seen[2] = { 0 };
        for (int i = 0; i < 10 * BATCH_MODE_RETRY_EVERY; i++)
                seen[run(&c, cost)]++;
        g_assert_cmpuint(seen[BATCH_PARALLEL], ==, 10);       /* one retry in every RETRY_EVERY */
        g_assert_cmpuint(seen[BATCH_SERIAL], ==, 10 * BATCH_MODE_RETRY_EVERY - 10);
}

static void test_follows_a_change(void) {
        BatchCost c = { 0 };
        const double serial_cheap[2] = { 1000, 500 }, parallel_cheap[2] = { 300, 900 };
        for (int i = 0; i < 4 * BATCH_MODE_RETRY_EVERY; i++)
                run(&c, serial_cheap);
        g_assert_cmpint(batch_mode_cheaper(&c), ==, BATCH_SERIAL);
        for (int i = 0; i < 4 * BATCH_MODE_RETRY_EVERY; i++)
                run(&c, parallel_cheap);
        g_assert_cmpint(batch_mode_cheaper(&c), ==, BATCH_PARALLEL);
        unsigned seen[2] = { 0 };
        for (int i = 0; i < BATCH_MODE_RETRY_EVERY; i++)
                seen[run(&c, parallel_cheap)]++;
        g_assert_cmpuint(seen[BATCH_PARALLEL], ==, BATCH_MODE_RETRY_EVERY - 1);
}

static void test_empty_batch_ignored(void) {
        BatchCost c = { 0 };
        g_assert_false(batch_mode_record(&c, BATCH_SERIAL, 1000, 0));
        g_assert_cmpuint(c.samples[BATCH_SERIAL], ==, 0);
        g_assert_cmpint(batch_mode_choose(&c), ==, BATCH_PARALLEL);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/batch-mode/both-measured-first", test_both_measured_first);
        g_test_add_func("/batch-mode/cheaper-kept-other-retried", test_cheaper_kept_other_retried);
        g_test_add_func("/batch-mode/follows-a-change", test_follows_a_change);
        g_test_add_func("/batch-mode/empty-batch-ignored", test_empty_batch_ignored);
        return g_test_run();
}
