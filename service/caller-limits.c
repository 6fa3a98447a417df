#include "caller-limits.h"

#include <sys/resource.h>

unsigned limits_import_idle_sec = IMPORT_IDLE_TIMEOUT_SEC;

void limits_raise_nofile(void) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= SERVICE_NOFILE)
                return;
        rl.rlim_cur = rl.rlim_max < SERVICE_NOFILE ? rl.rlim_max : SERVICE_NOFILE;
        setrlimit(RLIMIT_NOFILE, &rl);
}
