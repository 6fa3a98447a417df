#include "errors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const names[_SE_MAX] = {
        [SE_FAILED] = ERROR_PREFIX "Failed",
        [SE_INVALID_ARGUMENT] = ERROR_PREFIX "InvalidArgument",
        [SE_NO_SUCH_VOLUME] = ERROR_PREFIX "NoSuchVolume",
        [SE_NO_SUCH_REVISION] = ERROR_PREFIX "NoSuchRevision",
        [SE_ALREADY_EXISTS] = ERROR_PREFIX "AlreadyExists",
        [SE_VOLUME_BUSY] = ERROR_PREFIX "VolumeBusy",
        [SE_SHRINK_REFUSED] = ERROR_PREFIX "ShrinkRefused",
        [SE_READ_ONLY] = ERROR_PREFIX "ReadOnly",
        [SE_MISSING_IMAGE] = ERROR_PREFIX "MissingImage",
        [SE_NOT_SUPPORTED] = ERROR_PREFIX "NotSupported",
        [SE_CANCELLED] = ERROR_PREFIX "Cancelled",
        [SE_NO_SUCH_POOL] = ERROR_PREFIX "NoSuchPool",
        [SE_UNKNOWN_DRIVER] = ERROR_PREFIX "UnknownDriver",
        [SE_POOL_IN_USE] = ERROR_PREFIX "PoolInUse",
        [SE_NOT_AUTHORIZED] = ERROR_PREFIX "NotAuthorized",
        [SE_IMPORT_IN_PROGRESS] = ERROR_PREFIX "ImportInProgress",
        [SE_NO_IMPORT_IN_PROGRESS] = ERROR_PREFIX "NoImportInProgress",
        [SE_IMPORT_FAILED] = ERROR_PREFIX "ImportFailed",
        [SE_POOL_FULL] = ERROR_PREFIX "PoolFull",
        [SE_LIMITS_EXCEEDED] = ERROR_PREFIX "LimitsExceeded",
};

/* The errno each name maps to when sd-bus converts it. */
static const int errnos[_SE_MAX] = {
        [SE_FAILED] = EIO,
        [SE_INVALID_ARGUMENT] = EINVAL,
        [SE_NO_SUCH_VOLUME] = ENOENT,
        [SE_NO_SUCH_REVISION] = ENOENT,
        [SE_ALREADY_EXISTS] = EEXIST,
        [SE_VOLUME_BUSY] = EBUSY,
        [SE_SHRINK_REFUSED] = EPERM,
        [SE_READ_ONLY] = EROFS,
        [SE_MISSING_IMAGE] = ENOENT,
        [SE_NOT_SUPPORTED] = EOPNOTSUPP,
        [SE_CANCELLED] = ECANCELED,
        [SE_NO_SUCH_POOL] = ENOENT,
        [SE_UNKNOWN_DRIVER] = ENOENT,
        [SE_POOL_IN_USE] = EBUSY,
        [SE_NOT_AUTHORIZED] = EACCES,
        [SE_IMPORT_IN_PROGRESS] = EBUSY,
        [SE_NO_IMPORT_IN_PROGRESS] = ENOENT,
        [SE_IMPORT_FAILED] = EIO,
        [SE_POOL_FULL] = ENOSPC,
        [SE_LIMITS_EXCEEDED] = EUSERS,
};

const char *error_name(StorageErrorCode code) {
        if (code <= SE_OK || code >= _SE_MAX)
                code = SE_FAILED;
        return names[code];
}

int errors_register(void) {
        static sd_bus_error_map map[_SE_MAX];
        size_t n = 0;
        for (int c = SE_OK + 1; c < _SE_MAX; c++)
                map[n++] = (sd_bus_error_map) SD_BUS_ERROR_MAP(names[c], errnos[c]);
        map[n] = (sd_bus_error_map) SD_BUS_ERROR_MAP_END;
        return sd_bus_error_add_map(map);
}

int error_set(sd_bus_error *ret, StorageErrorCode code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = sd_bus_error_setfv(ret, error_name(code), fmt, ap);
        va_end(ap);
        return r;
}

int error_take(sd_bus_error *ret, StorageError *e) {
        int r = error_set(ret, e->code, "%s", e->message ? e->message : "failed");
        se_clear(e);
        return r;
}

int error_reply(sd_bus_message *m, const StorageError *e) {
        return sd_bus_reply_method_errorf(m, error_name(e->code), "%s", e->message ? e->message : "failed");
}
