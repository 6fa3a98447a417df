/* Errors that storage code reports: a code the bus layer maps to one
 * org.qubes.Storage1.Error.* name, and a message that names the volume. */
#pragma once

#include <stdarg.h>

typedef enum StorageErrorCode {
        SE_OK = 0,
        SE_FAILED,
        SE_INVALID_ARGUMENT,
        SE_NO_SUCH_VOLUME,
        SE_NO_SUCH_REVISION,
        SE_ALREADY_EXISTS,
        SE_VOLUME_BUSY,
        SE_SHRINK_REFUSED,
        SE_READ_ONLY,
        SE_MISSING_IMAGE,
        SE_NOT_SUPPORTED,
        SE_CANCELLED,
        SE_NO_SUCH_POOL,
        SE_UNKNOWN_DRIVER,
        SE_POOL_IN_USE,
        SE_NOT_AUTHORIZED,
        SE_IMPORT_IN_PROGRESS,
        SE_NO_IMPORT_IN_PROGRESS,
        SE_IMPORT_FAILED,
        SE_POOL_FULL,
        SE_LIMITS_EXCEEDED,
        _SE_MAX,
} StorageErrorCode;

typedef struct StorageError {
        StorageErrorCode code;
        char *message; /* malloc'd; NULL while code == SE_OK */
} StorageError;

#define STORAGE_ERROR_INIT { SE_OK, NULL }

/* Sets *e (if e is not NULL and not yet set) and returns -1, so drivers can
 * write `return se_set(err, SE_FAILED, "...")`. The first error wins. */
int se_set(StorageError *e, StorageErrorCode code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Like se_set with SE_FAILED and ": <strerror(errnum)>" appended. */
int se_errno(StorageError *e, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

void se_clear(StorageError *e);

/* Moves src into *dst (dst must be clear); src is left clear. */
void se_move(StorageError *dst, StorageError *src);
