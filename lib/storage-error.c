#include "storage-error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int se_vset(StorageError *e, StorageErrorCode code, const char *suffix, const char *fmt, va_list ap) {
        if (!e || e->code != SE_OK)
                return -1;
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        if (msg && suffix) {
                char *full = NULL;
                if (asprintf(&full, "%s: %s", msg, suffix) >= 0) {
                        free(msg);
                        msg = full;
                }
        }
        e->code = code;
        e->message = msg ? msg : strdup("out of memory");
        return -1;
}

int se_set(StorageError *e, StorageErrorCode code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        se_vset(e, code, NULL, fmt, ap);
        va_end(ap);
        return -1;
}

int se_errno(StorageError *e, int errnum, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        se_vset(e, SE_FAILED, strerror(errnum), fmt, ap);
        va_end(ap);
        return -1;
}

void se_clear(StorageError *e) {
        if (!e)
                return;
        free(e->message);
        e->message = NULL;
        e->code = SE_OK;
}

void se_move(StorageError *dst, StorageError *src) {
        se_clear(dst);
        *dst = *src;
        src->code = SE_OK;
        src->message = NULL;
}
