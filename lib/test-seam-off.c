/* The test seams of the installed service: none (lib/test-seam.h). */
#include "test-seam.h"

void test_seam_pause(const char *point) {
}

int test_seam_ficlone_errno(void) {
        return 0;
}

void test_seam_slow(const char *vid) {
}

bool test_seam_skip_flush(const char *point) {
        return false;
}
