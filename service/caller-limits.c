#include "caller-limits.h"

#include <sys/resource.h>

#include "errors.h"

void limits_raise_nofile(void) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= SERVICE_NOFILE)
                return;
        rl.rlim_cur = rl.rlim_max < SERVICE_NOFILE ? rl.rlim_max : SERVICE_NOFILE;
        setrlimit(RLIMIT_NOFILE, &rl);
}

int limits_check(const char *sender, uid_t uid, const char *held, unsigned by_name, unsigned max_name,
                 unsigned by_uid, unsigned max_uid, sd_bus_error *error) {
        if (by_name >= max_name)
                return error_set(error, SE_LIMITS_EXCEEDED, "Caller %s has %u %s already (at most %u)", sender,
                                 by_name, held, max_name);
        if (by_uid >= max_uid)
                return error_set(error, SE_LIMITS_EXCEEDED, "uid %u has %u %s already (at most %u)", (unsigned) uid,
                                 by_uid, held, max_uid);
        return 0;
}
