#include "driver.h"

#include <string.h>

extern const Driver driver_file;
extern const Driver driver_file_reflink;
extern const Driver driver_lvm_thin;
extern const Driver driver_linux_kernel;

static const Driver *const drivers[] = {
        &driver_file,
        &driver_file_reflink,
        &driver_lvm_thin,
        &driver_linux_kernel,
        NULL,
};

/* The drivers a pool in a plain directory can use, the best first. */
static const Driver *const dir_drivers[] = {
        &driver_file_reflink,
        &driver_file,
        NULL,
};

const Driver *const *driver_list(void) {
        return drivers;
}

const Driver *driver_find(const char *name) {
        for (size_t i = 0; drivers[i]; i++)
                if (strcmp(drivers[i]->name, name) == 0)
                        return drivers[i];
        return NULL;
}

void drivers_init(void) {
        for (size_t i = 0; drivers[i]; i++) {
                StorageError err = STORAGE_ERROR_INIT;
                if (drivers[i]->init && drivers[i]->init(&err) < 0) {
                        g_warning("Driver %s is not available (its pools will not work): %s", drivers[i]->name,
                                  err.message);
                        se_clear(&err);
                }
        }
}

const Driver *driver_for_dir(const char *dir) {
        size_t i = 0;
        /* the last one serves any directory */
        for (; dir_drivers[i + 1]; i++) {
                StorageError err = STORAGE_ERROR_INIT;
                if (!dir_drivers[i]->probe || dir_drivers[i]->probe(dir, &err) == 0)
                        break;
                /* not an error: the next driver serves the directory */
                se_clear(&err);
        }
        return dir_drivers[i];
}
