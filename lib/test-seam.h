/* Test seams: points where tests make the service slow, pause or fail on
 * purpose. They exist only in the test build (qubes-storaged-test, linked with
 * lib/test-seam.c); the installed qubes-storaged links lib/test-seam-off.c,
 * where they do nothing and no QUBES_STORAGED_TEST_* variable is read.
 *
 * QUBES_STORAGED_TEST_PAUSE=<point>:<ms>: the worker sleeps at that point.
 *   Points: reflink-commit-before-rename (revision made and pruned, the new
 *   image not yet renamed onto the clean one), reflink-start-before-dirty (a
 *   snapshot's clean copy made, dirty not yet).
 * QUBES_STORAGED_TEST_FICLONE_ERRNO=<errno>: every reflink attempt fails with it.
 * QUBES_STORAGED_TEST_SLOW_VID=<vid>, QUBES_STORAGED_TEST_SLOW_MS=<ms>: every
 *   storage operation on that volume waits first.
 * QUBES_STORAGED_TEST_SKIP_FLUSH=<point>: a flush the crash-safety argument
 *   needs is left out, so the power-loss suite (tests/powerloss) can show it
 *   finds the damage. Points: reflink-commit (the fsync of the new data
 *   before the rename that makes it a file-reflink volume's clean image).
 */
#pragma once

#include <stdbool.h>

#define FO_FICLONE_ERRNO_ENV "QUBES_STORAGED_TEST_FICLONE_ERRNO"

void test_seam_pause(const char *point);
/* The errno every FICLONE fails with, or 0 (read once per process). */
int test_seam_ficlone_errno(void);
/* Waits when vid is the slow volume. */
void test_seam_slow(const char *vid);
/* Whether the flush at that point is to be left out (never in the installed
 * service). */
bool test_seam_skip_flush(const char *point);
