#include "options.h"

#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* Digits only: strtoull alone would take leading blanks, a sign, and wrap
 * a negative number around to a huge one. */
static int parse_decimal(const char *s, uint64_t *out) {
        if (!s || !g_ascii_isdigit(*s))
                return -EINVAL;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *out = v;
        return 0;
}

/* Reads the variant's number (t/u/x/i or a decimal string) as uint64; a
 * negative number is refused. */
static int read_number(sd_bus_message *m, const char *sig, uint64_t *out, char **shown) {
        int r;
        switch (sig[0]) {
        case 't':
                r = sd_bus_message_read_basic(m, 't', out);
                *shown = g_strdup_printf("%" PRIu64, *out);
                return r;
        case 'u': {
                uint32_t u;
                r = sd_bus_message_read_basic(m, 'u', &u);
                *out = u;
                *shown = g_strdup_printf("%" PRIu32, u);
                return r;
        }
        case 'x': {
                int64_t x;
                r = sd_bus_message_read_basic(m, 'x', &x);
                *shown = g_strdup_printf("%" PRId64, x);
                if (r >= 0 && x < 0)
                        return -ERANGE;
                *out = (uint64_t) x;
                return r;
        }
        case 'i': {
                int32_t i;
                r = sd_bus_message_read_basic(m, 'i', &i);
                *shown = g_strdup_printf("%" PRId32, i);
                if (r >= 0 && i < 0)
                        return -ERANGE;
                *out = (uint64_t) i;
                return r;
        }
        case 's': {
                const char *s;
                r = sd_bus_message_read_basic(m, 's', &s);
                *shown = g_strdup(r >= 0 ? s : "");
                return r < 0 ? r : parse_decimal(s, out);
        }
        default:
                return -EINVAL;
        }
}

static bool number_sig(const char *sig) {
        return strlen(sig) == 1 && strchr("tuxis", sig[0]);
}

static int read_field(sd_bus_message *m, Field *f, const char *sig, const char *what, const char *object,
                      sd_bus_error *err) {
        int r;
        bool ok = false;
        switch (f->type) {
        case FIELD_BOOL:
                ok = strcmp(sig, "b") == 0;
                if (ok) {
                        int b;
                        r = sd_bus_message_read_basic(m, 'b', &b);
                        if (r < 0)
                                return r;
                        *(bool *) f->dest = b;
                }
                break;
        case FIELD_STRING:
                ok = strcmp(sig, "s") == 0;
                if (ok) {
                        const char *s;
                        r = sd_bus_message_read_basic(m, 's', &s);
                        if (r < 0)
                                return r;
                        free(*(char **) f->dest);
                        *(char **) f->dest = strdup(s);
                }
                break;
        case FIELD_SIZE:
        case FIELD_INT:
                if (number_sig(sig)) {
                        uint64_t v = 0;
                        g_autofree char *shown = NULL;
                        ok = read_number(m, sig, &v, &shown) >= 0 && (f->type == FIELD_SIZE || v <= INT_MAX);
                        if (ok && f->type == FIELD_SIZE)
                                *(uint64_t *) f->dest = v;
                        else if (ok)
                                *(int *) f->dest = (int) v;
                        if (!ok)
                                return error_set(err, SE_INVALID_ARGUMENT, "Invalid value '%s' for %s '%s' of %s",
                                                 shown ? shown : "?", what, f->key, object);
                }
                break;
        }
        if (!ok) {
                static const char *const expected[] = {
                        [FIELD_BOOL] = "b", [FIELD_STRING] = "s", [FIELD_SIZE] = "t", [FIELD_INT] = "i",
                };
                return error_set(err, SE_INVALID_ARGUMENT, "Wrong type '%s' for %s '%s' of %s (expected '%s')", sig,
                                 what, f->key, object, expected[f->type]);
        }
        f->seen = true;
        return 0;
}

int read_dict(sd_bus_message *m, Field *fields, size_t n_fields, const char *what, const char *object,
              sd_bus_error *err) {
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *sig;
                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                Field *f = NULL;
                for (size_t i = 0; i < n_fields && !f; i++)
                        if (strcmp(fields[i].key, key) == 0)
                                f = &fields[i];
                if (!f)
                        return error_set(err, SE_INVALID_ARGUMENT, "Unknown %s '%s' for %s", what, key, object);
                if (f->seen)
                        return error_set(err, SE_INVALID_ARGUMENT, "Duplicate %s '%s' for %s", what, key, object);
                r = sd_bus_message_peek_type(m, NULL, &sig);
                if (r < 0)
                        return r;
                r = sd_bus_message_enter_container(m, 'v', sig);
                if (r < 0)
                        return r;
                r = read_field(m, f, sig, what, object, err);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int read_options(sd_bus_message *m, Options *o, bool with_shrink, const char *object, sd_bus_error *err) {
        *o = (Options) { 0 };
        Field fields[] = {
                { "auth.no_user_interaction", FIELD_BOOL, &o->no_user_interaction, false },
                { "allow_shrink", FIELD_BOOL, &o->allow_shrink, false },
        };
        return read_dict(m, fields, with_shrink ? 2 : 1, "option", object, err);
}
