/* Helpers shared by the unit tests: temporary directories and looking at
 * files the way a user would (size, allocated bytes, contents). */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage-error.h"

/* A fresh directory under $TMPDIR (or /tmp). */
char *tu_make_tmpdir(void);
/* Removes dir and everything below it. */
void tu_rm_rf(const char *dir);

bool tu_exists(const char *path);
uint64_t tu_size(const char *path);
uint64_t tu_allocated(const char *path);
/* Writes len bytes of value at offset off (the file must exist or is made). */
void tu_fill(const char *path, uint64_t off, size_t len, unsigned char value);
void tu_write_file(const char *path, const char *text);
/* Contents as a NUL-terminated string (binary-safe length in *len if given). */
char *tu_read(const char *path, size_t *len);
bool tu_same_contents(const char *a, const char *b);
/* Whether dir holds a "<name>~..." temporary file. */
bool tu_has_temp_files(const char *dir);

/* A pool configuration: string keys and values (owned, g_free), given as
 * NULL-terminated key, value pairs. */
GHashTable *tu_config_new(const char *key, ...);

/* Asserts err holds code and a message that contains every given word,
 * then clears err. */
void tu_assert_error(StorageError *err, int code, ...) G_GNUC_NULL_TERMINATED;
/* Asserts a call succeeded, printing the message otherwise. */
#define tu_assert_ok(call, err)                                                  \
        do {                                                                     \
                int _r = (call);                                                 \
                if (_r < 0)                                                      \
                        g_error("%s failed: %s", #call, (err)->message ?: "?");  \
        } while (0)
