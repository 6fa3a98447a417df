/* The rules of service/pool-rules.c: which fact refuses which pool
 * operation, with which error and message (clients and tests match both),
 * and that the same operation is allowed without it. */
#include <glib.h>
#include <string.h>

#include "pool-rules.h"

static const Driver one = { .name = "one", .max_revisions_to_keep = 1 };
static const Driver unlimited = { .name = "unlimited", .max_revisions_to_keep = -1 };

typedef struct Case {
        PoolOp op;
        PoolFacts facts;
} Case;

static void case_init(Case *c, PoolOpKind kind) {
        memset(c, 0, sizeof(*c));
        c->op.kind = kind;
        c->facts = (PoolFacts) { .name = "p1", .driver = &one };
}

/* The error code pool_may_run gives (SE_OK: allowed); message, when given,
 * is the one it must give. */
static StorageErrorCode ask(Case *c, const char *message) {
        StorageError e = STORAGE_ERROR_INIT;
        int r = pool_may_run(&c->op, &c->facts, &e);
        StorageErrorCode code = e.code;
        g_assert_true((r < 0) == (code != SE_OK));
        if (code != SE_OK) {
                g_assert_nonnull(e.message);
                g_assert_nonnull(strstr(e.message, c->facts.name)); /* every message names its pool */
        }
        if (message)
                g_assert_cmpstr(e.message, ==, message);
        se_clear(&e);
        return code;
}

static void test_add_name_taken(void) {
        Case c;
        case_init(&c, POP_ADD);
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.facts.name_taken = true;
        g_assert_cmpint(ask(&c, "Pool p1 already exists"), ==, SE_ALREADY_EXISTS);
}

static void test_add_being_added(void) {
        Case c;
        case_init(&c, POP_ADD);
        c.facts.adding = true; /* another AddPool of the name has not completed */
        g_assert_cmpint(ask(&c, "Pool p1 already exists"), ==, SE_ALREADY_EXISTS);
        /* only a name can refuse an add */
        c.facts.adding = false;
        c.facts.removed = true;
        c.facts.volumes = 3;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
}

static void test_remove_removed(void) {
        Case c;
        case_init(&c, POP_REMOVE);
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.facts.removed = true; /* by an earlier RemovePool, done or under way */
        g_assert_cmpint(ask(&c, "Unknown storage pool p1"), ==, SE_NO_SUCH_POOL);
        c.facts.volumes = 2; /* gone wins over in use */
        g_assert_cmpint(ask(&c, NULL), ==, SE_NO_SUCH_POOL);
}

static void test_remove_in_use(void) {
        Case c;
        case_init(&c, POP_REMOVE);
        c.facts.volumes = 2;
        g_assert_cmpint(ask(&c, "Storage pool is in use: 'p1' has 2 volumes"), ==, SE_POOL_IN_USE);
        c.facts.volumes = 1;
        g_assert_cmpint(ask(&c, "Storage pool is in use: 'p1' has 1 volumes"), ==, SE_POOL_IN_USE);
        c.facts.volumes = 0;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
}

static void test_set_revisions_range(void) {
        Case c;
        case_init(&c, POP_SET_REVISIONS);
        c.op.revisions_to_keep = 0;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.op.revisions_to_keep = 1; /* the driver's most */
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.op.revisions_to_keep = 2;
        g_assert_cmpint(ask(&c, "pool p1: the one driver keeps at most 1 revisions, not 2"), ==, SE_NOT_SUPPORTED);
        c.op.revisions_to_keep = -1;
        g_assert_cmpint(ask(&c, "Invalid revisions_to_keep -1 for pool p1"), ==, SE_INVALID_ARGUMENT);
        c.facts.driver = &unlimited;
        g_assert_cmpint(ask(&c, NULL), ==, SE_INVALID_ARGUMENT);
        c.op.revisions_to_keep = 1000;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        /* the volumes a pool has do not matter */
        c.facts.volumes = 5;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
}

static void test_set_revisions_removed(void) {
        Case c;
        case_init(&c, POP_SET_REVISIONS);
        c.op.revisions_to_keep = 1;
        c.facts.removed = true;
        g_assert_cmpint(ask(&c, "Unknown storage pool p1"), ==, SE_NO_SUCH_POOL);
        c.op.revisions_to_keep = 2; /* gone wins over out of range */
        g_assert_cmpint(ask(&c, NULL), ==, SE_NO_SUCH_POOL);
}

static void test_set_limits(void) {
        Case c;
        case_init(&c, POP_SET_LIMITS);
        c.op.usage_warning = 90;
        c.op.usage_critical = 95;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.op.usage_warning = c.op.usage_critical = 100;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.op.usage_warning = c.op.usage_critical = 1;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.op.usage_warning = 96;
        c.op.usage_critical = 95;
        g_assert_cmpint(ask(&c, "Invalid usage limits 96, 95 for pool p1: needs 1 <= warning <= critical <= 100"), ==,
                        SE_INVALID_ARGUMENT);
        c.op.usage_warning = 0;
        g_assert_cmpint(ask(&c, NULL), ==, SE_INVALID_ARGUMENT);
        c.op.usage_warning = 50;
        c.op.usage_critical = 101;
        g_assert_cmpint(ask(&c, NULL), ==, SE_INVALID_ARGUMENT);
        c.facts.removed = true; /* gone wins over out of range */
        g_assert_cmpint(ask(&c, "Unknown storage pool p1"), ==, SE_NO_SUCH_POOL);
}

static void test_refresh_removed(void) {
        Case c;
        case_init(&c, POP_REFRESH);
        c.facts.volumes = 5;
        g_assert_cmpint(ask(&c, NULL), ==, SE_OK);
        c.facts.removed = true;
        g_assert_cmpint(ask(&c, "Storage pool p1 was removed"), ==, SE_NO_SUCH_POOL);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/pool-rules/add-name-taken", test_add_name_taken);
        g_test_add_func("/pool-rules/add-being-added", test_add_being_added);
        g_test_add_func("/pool-rules/remove-removed", test_remove_removed);
        g_test_add_func("/pool-rules/remove-in-use", test_remove_in_use);
        g_test_add_func("/pool-rules/set-revisions-range", test_set_revisions_range);
        g_test_add_func("/pool-rules/set-revisions-removed", test_set_revisions_removed);
        g_test_add_func("/pool-rules/set-limits", test_set_limits);
        g_test_add_func("/pool-rules/refresh-removed", test_refresh_removed);
        return g_test_run();
}
