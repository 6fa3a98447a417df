/* Object paths, built and parsed in one place. */
#pragma once

#define MANAGER_PATH "/org/qubes/Storage1"
#define POOLS_PATH "/org/qubes/Storage1/pool"

char *pool_object_path(const char *pool);
char *volume_object_path(const char *pool, const char *vid);
/* Return 1 and set the malloc'd names when the path matches, 0 otherwise. */
int parse_pool_path(const char *path, char **pool);
int parse_volume_path(const char *path, char **pool, char **vid);
