/* The input rules of the API (service/validate.c) at their edges: lengths,
 * first characters, the allowed sets, path components of a vid, sizes. */
#include <glib.h>
#include <stdint.h>
#include <string.h>

#include "validate.h"

static char *repeat(char c, size_t n) {
        char *s = g_malloc(n + 1);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

/* rule takes every good string and the longest one of max_len, and
 * refuses every bad one, NULL and one of max_len + 1. */
static void check_rule(const char *what, bool (*rule)(const char *), const char *const *good, size_t n_good,
                       const char *const *bad, size_t n_bad, size_t max_len) {
        for (size_t i = 0; i < n_good; i++)
                if (!rule(good[i]))
                        g_error("%s '%s' refused", what, good[i]);
        for (size_t i = 0; i < n_bad; i++)
                if (rule(bad[i]))
                        g_error("%s '%s' accepted", what, bad[i]);
        g_assert_false(rule(NULL));
        g_autofree char *max = repeat('v', max_len), *over = repeat('v', max_len + 1);
        if (!rule(max))
                g_error("%s of %zu characters refused", what, max_len);
        if (rule(over))
                g_error("%s of %zu characters accepted", what, max_len + 1);
}

static void test_pool_name(void) {
        static const char *const good[] = { "a", "Z", "0", "varlibqubes", "pool-1", "my_pool", "p.2", "a-", "a." };
        static const char *const bad[] = { "", "-a", ".a", "..", "a/b", "a b", "a:b", "a\tb", "pool\n", "p\xc3\xa9",
                                           "a*", "a$b", "a\\b" };
        check_rule("pool name", valid_pool_name, good, G_N_ELEMENTS(good), bad, G_N_ELEMENTS(bad), 64);
}

static void test_vid(void) {
        static const char *const good[] = { "a", "appvms/work/private", "vm-templates/fedora-39/root",
                                            "qubes_dom0/vm-work-private", "a/.b", "a/..b", "a/b..", "...",
                                            "a.b/c_d-e" };
        static const char *const bad[] = { "", "/", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/..", "../a",
                                           "a/./b", "a/../b", "a b", "a\nb", "a:b", "a\\b", "v\xc3\xa9" };
        check_rule("vid", valid_vid, good, G_N_ELEMENTS(good), bad, G_N_ELEMENTS(bad), 255);
}

static void test_vm_name(void) {
        static const char *const good[] = { "a", "work", "Work-2", "sys-net", "fedora-39-dvm", "a_b", "a.b" };
        static const char *const bad[] = { "", "1vm", "-vm", "_vm", ".vm", "vm/x", "vm x", "vm:x", "v\xc3\xa9" };
        check_rule("vm name", valid_vm_name, good, G_N_ELEMENTS(good), bad, G_N_ELEMENTS(bad), 31);
}

static void test_size(void) {
        g_assert_false(valid_size(0));
        g_assert_true(valid_size(1));
        g_assert_true(valid_size(1 << 20));
        g_assert_true(valid_size((uint64_t) INT64_MAX));
        g_assert_false(valid_size((uint64_t) INT64_MAX + 1));
        g_assert_false(valid_size(UINT64_MAX));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/validate/pool-name", test_pool_name);
        g_test_add_func("/validate/vid", test_vid);
        g_test_add_func("/validate/vm-name", test_vm_name);
        g_test_add_func("/validate/size", test_size);
        return g_test_run();
}
