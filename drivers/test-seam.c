#include "test-seam.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void test_seam_pause(const char *point) {
        const char *spec = getenv("QUBES_STORAGED_TEST_PAUSE");
        size_t n = strlen(point);
        if (!spec || strncmp(spec, point, n) != 0 || spec[n] != ':')
                return;
        usleep((useconds_t) strtoul(spec + n + 1, NULL, 10) * 1000);
}
