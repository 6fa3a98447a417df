#include "paths.h"

#include <stdlib.h>
#include <systemd/sd-bus.h>

char *pool_object_path(const char *pool) {
        char *p = NULL;
        if (sd_bus_path_encode(POOLS_PATH, pool, &p) < 0)
                abort();
        return p;
}

char *volume_object_path(const char *pool, const char *vid) {
        char *p = NULL;
        if (sd_bus_path_encode_many(&p, POOLS_PATH "/%/volume/%", pool, vid) < 0)
                abort();
        return p;
}

int parse_pool_path(const char *path, char **pool) {
        return sd_bus_path_decode_many(path, POOLS_PATH "/%", pool) > 0;
}

int parse_volume_path(const char *path, char **pool, char **vid) {
        return sd_bus_path_decode_many(path, POOLS_PATH "/%/volume/%", pool, vid) > 0;
}
