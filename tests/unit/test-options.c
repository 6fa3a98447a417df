/* Reading a{sv} dictionaries (service/options.c) from real sd-bus messages:
 * the values each field type takes (numbers of any integer type or a
 * decimal string for sizes, no negatives, ints up to INT_MAX), the named
 * error for an unknown or duplicate key, a wrong type or a bad number
 * (naming the key and the object), allow_shrink only where a method takes
 * it, and the message left just after the dictionary. */
#include <glib.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "errors.h"
#include "options.h"

#define INVALID_ARGUMENT ERROR_PREFIX "InvalidArgument"

static sd_bus *bus;

/* sd-bus makes messages only on a started bus: one end of a socketpair
 * nobody answers is enough (nothing is sent). */
static void bus_setup(void) {
        int sv[2];
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
        g_assert_cmpint(sd_bus_new(&bus), >=, 0);
        g_assert_cmpint(sd_bus_set_fd(bus, sv[0], sv[0]), >=, 0);
        g_assert_cmpint(sd_bus_start(bus), >=, 0);
        close(sv[1]);
}

/* A sealed message, rewound, holding an a{sv} of the given entries and the
 * string "tail" after it. Entries: key, variant signature, value, ...,
 * NULL; values are int for b/i/u, int64_t for x, uint64_t for t,
 * const char * for s. */
static sd_bus_message *dict_message(const char *key, ...) {
        sd_bus_message *m = NULL;
        g_assert_cmpint(sd_bus_message_new_method_call(bus, &m, "org.qubes.Storage1", "/org/qubes/Storage1",
                                                       "org.qubes.Storage1.Manager", "Test"), >=, 0);
        g_assert_cmpint(sd_bus_message_open_container(m, 'a', "{sv}"), >=, 0);
        va_list ap;
        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *)) {
                const char *sig = va_arg(ap, const char *);
                g_assert_cmpint(sd_bus_message_open_container(m, 'e', "sv"), >=, 0);
                g_assert_cmpint(sd_bus_message_append_basic(m, 's', k), >=, 0);
                g_assert_cmpint(sd_bus_message_open_container(m, 'v', sig), >=, 0);
                switch (sig[0]) {
                case 'b':
                case 'i':
                case 'u': {
                        int v = va_arg(ap, int);
                        g_assert_cmpint(sd_bus_message_append_basic(m, sig[0], &v), >=, 0);
                        break;
                }
                case 'x': {
                        int64_t v = va_arg(ap, int64_t);
                        g_assert_cmpint(sd_bus_message_append_basic(m, 'x', &v), >=, 0);
                        break;
                }
                case 't': {
                        uint64_t v = va_arg(ap, uint64_t);
                        g_assert_cmpint(sd_bus_message_append_basic(m, 't', &v), >=, 0);
                        break;
                }
                case 's':
                        g_assert_cmpint(sd_bus_message_append_basic(m, 's', va_arg(ap, const char *)), >=, 0);
                        break;
                default:
                        g_assert_not_reached();
                }
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
                g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        }
        va_end(ap);
        g_assert_cmpint(sd_bus_message_close_container(m), >=, 0);
        g_assert_cmpint(sd_bus_message_append_basic(m, 's', "tail"), >=, 0);
        g_assert_cmpint(sd_bus_message_seal(m, 1, 0), >=, 0);
        g_assert_cmpint(sd_bus_message_rewind(m, true), >=, 0);
        return m;
}

/* A dictionary of one entry: key with v as the integer type sig (b, i, u,
 * x or t), or for 's' as decimal text. */
static sd_bus_message *one_entry(const char *key, char sig, uint64_t v) {
        switch (sig) {
        case 't':
                return dict_message(key, "t", v, NULL);
        case 'x':
                return dict_message(key, "x", (int64_t) v, NULL);
        case 's': {
                g_autofree char *text = g_strdup_printf("%" PRIu64, v);
                return dict_message(key, "s", text, NULL);
        }
        default: {
                char type[2] = { sig, '\0' };
                return dict_message(key, type, (int) v, NULL);
        }
        }
}

/* The message is just after the dictionary: the next value is "tail". */
static void assert_at_tail(sd_bus_message *m) {
        const char *s = NULL;
        g_assert_cmpint(sd_bus_message_read_basic(m, 's', &s), >, 0);
        g_assert_cmpstr(s, ==, "tail");
}

/* The call failed with InvalidArgument whose message holds every word. */
static void assert_invalid(int r, sd_bus_error *err, ...) {
        g_assert_cmpint(r, <, 0);
        g_assert_cmpstr(err->name, ==, INVALID_ARGUMENT);
        va_list ap;
        va_start(ap, err);
        for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *))
                if (!strstr(err->message, w))
                        g_error("error message '%s' does not contain '%s'", err->message, w);
        va_end(ap);
        sd_bus_error_free(err);
}

typedef struct Config {
        char *name;
        uint64_t size;
        int revisions;
        bool rw;
} Config;

#define CONFIG_FIELDS(c)                                                  \
        {                                                                 \
                { "name", FIELD_STRING, &(c).name, false },               \
                { "size", FIELD_SIZE, &(c).size, false },                 \
                { "revisions_to_keep", FIELD_INT, &(c).revisions, false }, \
                { "rw", FIELD_BOOL, &(c).rw, false },                     \
        }

static int read_config(sd_bus_message *m, Config *c, Field *fields, sd_bus_error *err) {
        return read_dict(m, fields, 4, "config key", "pool p", err);
}

static void test_every_type(void) {
        Config c = { 0 };
        Field fields[] = CONFIG_FIELDS(c);
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message("name", "s", "private", "size", "t", (uint64_t) 1 << 40,
                                         "revisions_to_keep", "i", 3, "rw", "b", 1, NULL);
        g_assert_cmpint(read_config(m, &c, fields, &err), >=, 0);
        g_assert_cmpstr(c.name, ==, "private");
        g_assert_cmpuint(c.size, ==, (uint64_t) 1 << 40);
        g_assert_cmpint(c.revisions, ==, 3);
        g_assert_true(c.rw);
        for (size_t i = 0; i < G_N_ELEMENTS(fields); i++)
                g_assert_true(fields[i].seen);
        assert_at_tail(m);
        free(c.name);
        sd_bus_message_unref(m);
}

/* Absent keys leave their fields as they were, and unseen. */
static void test_absent_keys(void) {
        Config c = { .size = 7, .revisions = 2, .rw = true };
        Field fields[] = CONFIG_FIELDS(c);
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message("rw", "b", 0, NULL);
        g_assert_cmpint(read_config(m, &c, fields, &err), >=, 0);
        g_assert_false(c.rw);
        g_assert_cmpuint(c.size, ==, 7);
        g_assert_cmpint(c.revisions, ==, 2);
        g_assert_null(c.name);
        g_assert_false(fields[0].seen);
        g_assert_false(fields[1].seen);
        g_assert_false(fields[2].seen);
        g_assert_true(fields[3].seen);
        assert_at_tail(m);
        sd_bus_message_unref(m);
}

/* A size is t, u, x, i or a decimal string. */
static void test_size_forms(void) {
        static const struct {
                const char *sig;
                uint64_t want;
        } cases[] = { { "t", UINT64_MAX }, { "u", UINT32_MAX }, { "x", INT64_MAX }, { "i", INT32_MAX } };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                Config c = { 0 };
                Field fields[] = CONFIG_FIELDS(c);
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *m = one_entry("size", cases[i].sig[0], cases[i].want);
                g_assert_cmpint(read_config(m, &c, fields, &err), >=, 0);
                g_assert_cmpuint(c.size, ==, cases[i].want);
                sd_bus_message_unref(m);
        }
        static const struct {
                const char *text;
                uint64_t want;
        } strings[] = { { "0", 0 }, { "1048576", 1048576 }, { "18446744073709551615", UINT64_MAX } };
        for (size_t i = 0; i < G_N_ELEMENTS(strings); i++) {
                Config c = { 0 };
                Field fields[] = CONFIG_FIELDS(c);
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *m = dict_message("size", "s", strings[i].text, NULL);
                g_assert_cmpint(read_config(m, &c, fields, &err), >=, 0);
                g_assert_cmpuint(c.size, ==, strings[i].want);
                assert_at_tail(m);
                sd_bus_message_unref(m);
        }
}

/* Not a number, a sign, overflow, negative numbers: Invalid value, naming
 * the value, the key and the object. */
static void test_bad_numbers(void) {
        static const char *const texts[] = { "", "12x", "x12", "+5", "-5", " 5", " -5", "5 ", "0x10",
                                             "18446744073709551616" };
        for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
                Config c = { .size = 99 };
                Field fields[] = CONFIG_FIELDS(c);
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *m = dict_message("size", "s", texts[i], NULL);
                g_autofree char *quoted = g_strdup_printf("'%s'", texts[i]);
                int r = read_config(m, &c, fields, &err);
                if (r >= 0)
                        g_error("size '%s' accepted as %" PRIu64, texts[i], c.size);
                assert_invalid(r, &err, "Invalid value", quoted, "'size'", "pool p", NULL);
                g_assert_cmpuint(c.size, ==, 99);
                sd_bus_message_unref(m);
        }
        Config c = { .size = 99, .revisions = 5 };
        Field fields[] = CONFIG_FIELDS(c);
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message("size", "i", -1, NULL);
        assert_invalid(read_config(m, &c, fields, &err), &err, "Invalid value '-1'", "'size'", NULL);
        sd_bus_message_unref(m);
        m = dict_message("size", "x", (int64_t) -1, NULL);
        assert_invalid(read_config(m, &c, fields, &err), &err, "Invalid value '-1'", "'size'", NULL);
        sd_bus_message_unref(m);
        g_assert_cmpuint(c.size, ==, 99);
}

/* An int field takes 0 .. INT_MAX; beyond is Invalid value. */
static void test_int_range(void) {
        Config c = { 0 };
        Field fields[] = CONFIG_FIELDS(c);
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message("revisions_to_keep", "t", (uint64_t) INT_MAX, NULL);
        g_assert_cmpint(read_config(m, &c, fields, &err), >=, 0);
        g_assert_cmpint(c.revisions, ==, INT_MAX);
        sd_bus_message_unref(m);

        Config d = { .revisions = 4 };
        Field dfields[] = CONFIG_FIELDS(d);
        m = dict_message("revisions_to_keep", "t", (uint64_t) INT_MAX + 1, NULL);
        assert_invalid(read_config(m, &d, dfields, &err), &err, "Invalid value '2147483648'", "'revisions_to_keep'",
                       NULL);
        sd_bus_message_unref(m);
        m = dict_message("revisions_to_keep", "s", "2147483648", NULL);
        assert_invalid(read_config(m, &d, dfields, &err), &err, "Invalid value", "'revisions_to_keep'", NULL);
        sd_bus_message_unref(m);
        m = dict_message("revisions_to_keep", "i", -1, NULL);
        assert_invalid(read_config(m, &d, dfields, &err), &err, "Invalid value '-1'", NULL);
        sd_bus_message_unref(m);
        g_assert_cmpint(d.revisions, ==, 4);
}

/* A value of another type: Wrong type, naming the type given and wanted. */
static void test_wrong_types(void) {
        static const struct {
                const char *key, *sig, *expected;
        } cases[] = {
                { "rw", "s", "'b'" },
                { "rw", "i", "'b'" },
                { "name", "b", "'s'" },
                { "name", "t", "'s'" },
                { "size", "b", "'t'" },
                { "revisions_to_keep", "b", "'i'" },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                Config c = { 0 };
                Field fields[] = CONFIG_FIELDS(c);
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *m = one_entry(cases[i].key, cases[i].sig[0], 1);
                g_autofree char *given = g_strdup_printf("Wrong type '%s'", cases[i].sig);
                g_autofree char *key = g_strdup_printf("'%s'", cases[i].key);
                assert_invalid(read_config(m, &c, fields, &err), &err, given, key, "pool p", cases[i].expected,
                               NULL);
                g_assert_false(c.rw);
                g_assert_null(c.name);
                sd_bus_message_unref(m);
        }
}

static void test_unknown_and_duplicate_keys(void) {
        Config c = { 0 };
        Field fields[] = CONFIG_FIELDS(c);
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message("dir_path", "s", "/x", NULL);
        assert_invalid(read_config(m, &c, fields, &err), &err, "Unknown config key 'dir_path'", "pool p", NULL);
        sd_bus_message_unref(m);

        Config d = { 0 };
        Field dfields[] = CONFIG_FIELDS(d);
        m = dict_message("rw", "b", 1, "rw", "b", 0, NULL);
        assert_invalid(read_config(m, &d, dfields, &err), &err, "Duplicate config key 'rw'", "pool p", NULL);
        sd_bus_message_unref(m);
}

/* A string field replaces what its destination held (no leak under ASan,
 * no stale value). */
static void test_string_replaced(void) {
        Config c = { .name = strdup("old") };
        Field fields[] = CONFIG_FIELDS(c);
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message("name", "s", "new", NULL);
        g_assert_cmpint(read_config(m, &c, fields, &err), >=, 0);
        g_assert_cmpstr(c.name, ==, "new");
        free(c.name);
        sd_bus_message_unref(m);
}

/* read_options: auth.no_user_interaction everywhere, allow_shrink only
 * where the method takes it; the options start cleared. */
static void test_read_options(void) {
        Options o = { .no_user_interaction = true, .allow_shrink = true };
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *m = dict_message(NULL);
        g_assert_cmpint(read_options(m, &o, true, "volume p:v", &err), >=, 0);
        g_assert_false(o.no_user_interaction);
        g_assert_false(o.allow_shrink);
        assert_at_tail(m);
        sd_bus_message_unref(m);

        m = dict_message("auth.no_user_interaction", "b", 1, "allow_shrink", "b", 1, NULL);
        g_assert_cmpint(read_options(m, &o, true, "volume p:v", &err), >=, 0);
        g_assert_true(o.no_user_interaction);
        g_assert_true(o.allow_shrink);
        assert_at_tail(m);
        sd_bus_message_unref(m);

        m = dict_message("allow_shrink", "b", 1, NULL);
        assert_invalid(read_options(m, &o, false, "volume p:v", &err), &err, "Unknown option 'allow_shrink'",
                       "volume p:v", NULL);
        g_assert_false(o.allow_shrink);
        sd_bus_message_unref(m);

        m = dict_message("auth.no_user_interaction", "s", "true", NULL);
        assert_invalid(read_options(m, &o, false, "pool p", &err), &err,
                       "Wrong type 's' for option 'auth.no_user_interaction' of pool p (expected 'b')", NULL);
        sd_bus_message_unref(m);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        bus_setup();
        g_test_add_func("/options/every-type", test_every_type);
        g_test_add_func("/options/absent-keys", test_absent_keys);
        g_test_add_func("/options/size-forms", test_size_forms);
        g_test_add_func("/options/bad-numbers", test_bad_numbers);
        g_test_add_func("/options/int-range", test_int_range);
        g_test_add_func("/options/wrong-types", test_wrong_types);
        g_test_add_func("/options/unknown-and-duplicate-keys", test_unknown_and_duplicate_keys);
        g_test_add_func("/options/string-replaced", test_string_replaced);
        g_test_add_func("/options/read-options", test_read_options);
        int r = g_test_run();
        sd_bus_flush_close_unref(bus);
        return r;
}
