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

const Driver *const *driver_list(void) {
        return drivers;
}

const Driver *driver_find(const char *name) {
        for (size_t i = 0; drivers[i]; i++)
                if (strcmp(drivers[i]->name, name) == 0)
                        return drivers[i];
        return NULL;
}
