#include "file-layout.h"

#include <errno.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 31
#define EXPORT_MARK "export-"
#define PROBE_PREFIX ".reflink-probe~"

/* Endings in the order fl_parse tries them: longest first, so that
 * "-cow.img.old" is never read as an image. */
static const struct {
        FlKind kind;
        const char *ending;
} plain_endings[] = {
        { FL_COW_OLD, "-cow.img.old" },
        { FL_COW, "-cow.img" },
        { FL_DIRTY, "-dirty.img" },
        { FL_IMPORT, "-import.img" },
        { FL_IMAGE, ".img" },
};

/* A name ending in one of these would make its image another volume's file. */
static const struct {
        const char *ending;
        const char *what;
} reserved_endings[] = {
        { "-cow", "copy-on-write file" },
        { "-dirty", "running image" },
        { "-import", "staged import" },
};

void fl_entry_clear(FlEntry *e) {
        g_clear_pointer(&e->name, g_free);
}

static bool is_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_letter(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* The VM-name rule, for <vm> and <name>; len bytes of s. */
static bool valid_part(const char *s, size_t len) {
        if (len < 1 || len > NAME_MAX_LEN || !is_letter(s[0]))
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
                        return false;
        return true;
}

static bool all_alnum(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!is_alnum(s[i]))
                        return false;
        return true;
}

/* "YYYY-MM-DDTHH:MM:SSZ" exactly. */
static bool is_stamp(const char *s) {
        static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";
        if (strlen(s) != sizeof(pattern) - 1)
                return false;
        for (size_t i = 0; pattern[i]; i++)
                if (pattern[i] == 'd' ? !is_digit(s[i]) : s[i] != pattern[i])
                        return false;
        return true;
}

static bool set_name(FlEntry *out, const char *s, size_t len, FlKind kind) {
        if (!valid_part(s, len))
                return false;
        out->name = g_strndup(s, len);
        out->kind = kind;
        return true;
}

/* "<name>.img.<N>@<stamp>" or "<name>.img@export-XXXXXX" (head is the part
 * before the '@', tail the part after it). */
static bool parse_at(const char *head, size_t head_len, const char *tail, FlEntry *out) {
        if (g_str_has_prefix(tail, EXPORT_MARK)) {
                const char *x = tail + strlen(EXPORT_MARK);
                if (strlen(x) != FL_TEMP_LEN || !all_alnum(x, FL_TEMP_LEN) || head_len < 4 ||
                    memcmp(head + head_len - 4, ".img", 4) != 0)
                        return false;
                return set_name(out, head, head_len - 4, FL_EXPORT);
        }
        if (!is_stamp(tail))
                return false;
        size_t digits = 0;
        while (digits < head_len && is_digit(head[head_len - 1 - digits]))
                digits++;
        if (digits == 0 || digits > 9 || head[head_len - digits] == '0' || head_len < digits + 5 ||
            memcmp(head + head_len - digits - 5, ".img.", 5) != 0)
                return false;
        if (!set_name(out, head, head_len - digits - 5, FL_REVISION))
                return false;
        out->revision = strtol(head + head_len - digits, NULL, 10);
        memcpy(out->stamp, tail, sizeof(out->stamp));
        return true;
}

static bool parse_file(const char *s, size_t len, FlEntry *out) {
        const char *at = memchr(s, '@', len);
        if (at) {
                g_autofree char *head = g_strndup(s, (size_t) (at - s));
                g_autofree char *tail = g_strndup(at + 1, len - (size_t) (at - s) - 1);
                return parse_at(head, strlen(head), tail, out);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(plain_endings); i++) {
                size_t n = strlen(plain_endings[i].ending);
                if (len > n && memcmp(s + len - n, plain_endings[i].ending, n) == 0)
                        return set_name(out, s, len - n, plain_endings[i].kind);
        }
        return false;
}

bool fl_parse(const char *entry, FlEntry *out) {
        *out = (FlEntry) { 0 };
        size_t len = strlen(entry);
        const char *tilde = strchr(entry, '~');
        if (tilde) {
                /* exactly one '~', followed by the six characters of mkostemp */
                if (strlen(tilde + 1) != FL_TEMP_LEN || !all_alnum(tilde + 1, FL_TEMP_LEN))
                        return false;
                len = (size_t) (tilde - entry);
                out->temp = true;
        }
        if (parse_file(entry, len, out))
                return true;
        fl_entry_clear(out);
        *out = (FlEntry) { 0 };
        return false;
}

bool fl_owned_by(const char *entry, const char *name, FlEntry *out) {
        FlEntry local;
        FlEntry *e = out ? out : &local;
        if (!fl_parse(entry, e))
                return false;
        bool own = strcmp(e->name, name) == 0;
        if (!own || !out)
                fl_entry_clear(e);
        return own;
}

char *fl_file_name(const char *name, FlKind kind) {
        for (size_t i = 0; i < G_N_ELEMENTS(plain_endings); i++)
                if (plain_endings[i].kind == kind)
                        return g_strconcat(name, plain_endings[i].ending, NULL);
        g_assert_not_reached();
}

bool fl_is_probe_temp(const char *entry) {
        size_t n = strlen(PROBE_PREFIX);
        return strncmp(entry, PROBE_PREFIX, n) == 0 && strlen(entry + n) == FL_TEMP_LEN &&
               all_alnum(entry + n, FL_TEMP_LEN);
}

char *fl_default_vid(const char *vm, const char *name, bool template_vm) {
        return g_strdup_printf("%s/%s/%s", template_vm ? "vm-templates" : "appvms", vm, name);
}

void fl_split_vid(const char *vid, char **vm_dir, char **name) {
        const char *slash = strrchr(vid, '/');
        g_assert(slash);
        *vm_dir = g_strndup(vid, (size_t) (slash - vid));
        *name = g_strdup(slash + 1);
}

/* Every file the name can have must read back as the name's own. */
static int check_round_trip(const char *vid, const char *name, StorageError *err) {
        static const char *const samples[] = { "", "~A1b2C3" };
        for (size_t i = 0; i < G_N_ELEMENTS(plain_endings); i++)
                for (size_t t = 0; t < G_N_ELEMENTS(samples); t++) {
                        g_autofree char *file = g_strconcat(name, plain_endings[i].ending, samples[t], NULL);
                        FlEntry e;
                        bool ok = fl_parse(file, &e) && strcmp(e.name, name) == 0 && e.kind == plain_endings[i].kind;
                        g_autofree char *owner = e.name ? g_strdup(e.name) : NULL;
                        fl_entry_clear(&e);
                        if (!ok)
                                return se_set(err, SE_INVALID_ARGUMENT,
                                              "Invalid vid '%s': its file %s would be read as %s%s", vid, file,
                                              owner ? "a file of volume " : "no volume's file", owner ? owner : "");
                }
        return 0;
}

int fl_check_vid(const char *vid, StorageError *err) {
        if (!vid || !*vid)
                return se_set(err, SE_INVALID_ARGUMENT, "A volume of a file pool needs a vid");
        const char *first = strchr(vid, '/');
        const char *second = first ? strchr(first + 1, '/') : NULL;
        if (!second || strchr(second + 1, '/') ||
            (strncmp(vid, "appvms/", 7) != 0 && strncmp(vid, "vm-templates/", 13) != 0))
                return se_set(err, SE_INVALID_ARGUMENT,
                              "Invalid vid '%s': a file pool keeps volumes as appvms/<vm>/<name> or "
                              "vm-templates/<vm>/<name>",
                              vid);
        const char *vm = first + 1, *name = second + 1;
        if (!valid_part(vm, (size_t) (second - vm)))
                return se_set(err, SE_INVALID_ARGUMENT,
                              "Invalid vid '%s': '%.*s' is not a VM name (a letter, then letters, digits, '_', "
                              "'.' or '-'; at most %d characters)",
                              vid, (int) (second - vm), vm, NAME_MAX_LEN);
        if (!valid_part(name, strlen(name)))
                return se_set(err, SE_INVALID_ARGUMENT,
                              "Invalid vid '%s': '%s' is not a volume name (a letter, then letters, digits, '_', "
                              "'.' or '-'; at most %d characters)",
                              vid, name, NAME_MAX_LEN);
        for (size_t i = 0; i < G_N_ELEMENTS(reserved_endings); i++) {
                const char *end = reserved_endings[i].ending;
                size_t n = strlen(end), len = strlen(name);
                if (len > n && strcmp(name + len - n, end) == 0)
                        return se_set(err, SE_INVALID_ARGUMENT,
                                      "Invalid vid '%s': a volume name may not end in %s, because its image %s.img "
                                      "would be the %s of volume %.*s%.*s",
                                      vid, end, name, reserved_endings[i].what, (int) (name - vid), vid,
                                      (int) (len - n), name);
        }
        return check_round_trip(vid, name, err);
}
