/* The test seams of the test build (lib/test-seam.h). */
#include "test-seam.h"

#include <glib.h>
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

int test_seam_ficlone_errno(void) {
        static gsize once = 0;
        static int forced = 0;
        if (g_once_init_enter(&once)) {
                const char *s = getenv(FO_FICLONE_ERRNO_ENV);
                if (s && *s)
                        forced = (int) g_ascii_strtoll(s, NULL, 10);
                g_once_init_leave(&once, 1);
        }
        return forced;
}

void test_seam_slow(const char *vid) {
        const char *slow = getenv("QUBES_STORAGED_TEST_SLOW_VID");
        const char *ms = getenv("QUBES_STORAGED_TEST_SLOW_MS");
        if (slow && ms && vid && strcmp(slow, vid) == 0)
                g_usleep(strtoul(ms, NULL, 10) * 1000);
}

bool test_seam_skip_flush(const char *point) {
        const char *skip = getenv("QUBES_STORAGED_TEST_SKIP_FLUSH");
        return skip && strcmp(skip, point) == 0;
}
