#include "test-util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_make_tmpdir(void) {
        GError *error = NULL;
        char *dir = g_dir_make_tmp("qubes-storaged-unit-XXXXXX", &error);
        g_assert_no_error(error);
        return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

void tu_rm_rf(const char *dir) {
        if (dir && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
                g_error("cannot remove %s: %s", dir, g_strerror(errno));
}

static bool stat_of(const char *path, struct stat *st) {
        if (stat(path, st) == 0)
                return true;
        g_assert_cmpint(errno, ==, ENOENT);
        return false;
}

bool tu_exists(const char *path) {
        struct stat st;
        return stat_of(path, &st);
}

uint64_t tu_size(const char *path) {
        struct stat st;
        if (!stat_of(path, &st))
                g_error("%s does not exist", path);
        return (uint64_t) st.st_size;
}

uint64_t tu_allocated(const char *path) {
        struct stat st;
        if (!stat_of(path, &st))
                g_error("%s does not exist", path);
        return (uint64_t) st.st_blocks * 512;
}

void tu_fill(const char *path, uint64_t off, size_t len, unsigned char value) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        g_assert_cmpint(fd, >=, 0);
        g_autofree unsigned char *buf = g_malloc(len);
        memset(buf, value, len);
        g_assert_cmpint(pwrite(fd, buf, len, (off_t) off), ==, (ssize_t) len);
        g_assert_cmpint(close(fd), ==, 0);
}

void tu_write_file(const char *path, const char *text) {
        GError *error = NULL;
        g_file_set_contents(path, text, -1, &error);
        g_assert_no_error(error);
}

char *tu_read(const char *path, size_t *len) {
        GError *error = NULL;
        char *data = NULL;
        gsize n = 0;
        g_file_get_contents(path, &data, &n, &error);
        g_assert_no_error(error);
        if (len)
                *len = n;
        return data;
}

bool tu_same_contents(const char *a, const char *b) {
        size_t na, nb;
        g_autofree char *da = tu_read(a, &na);
        g_autofree char *db = tu_read(b, &nb);
        return na == nb && memcmp(da, db, na) == 0;
}

bool tu_has_temp_files(const char *dir) {
        GError *error = NULL;
        g_autoptr(GDir) d = g_dir_open(dir, 0, &error);
        g_assert_no_error(error);
        for (const char *name; (name = g_dir_read_name(d));)
                if (strchr(name, '~'))
                        return true;
        return false;
}

GHashTable *tu_config_new(const char *key, ...) {
        GHashTable *config = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        va_list ap;
        va_start(ap, key);
        for (; key; key = va_arg(ap, const char *))
                g_hash_table_insert(config, g_strdup(key), g_strdup(va_arg(ap, const char *)));
        va_end(ap);
        return config;
}

void tu_assert_error(StorageError *err, int code, ...) {
        if (err->code == SE_OK)
                g_error("expected error %d, got success", code);
        g_assert_nonnull(err->message);
        if ((int) err->code != code)
                g_error("expected error %d, got %d: %s", code, err->code, err->message);
        va_list ap;
        va_start(ap, code);
        for (const char *word; (word = va_arg(ap, const char *));)
                if (!strstr(err->message, word))
                        g_error("message '%s' does not contain '%s'", err->message, word);
        va_end(ap);
        se_clear(err);
}
