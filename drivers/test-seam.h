/* Test seams: points where tests can hold a worker to kill the service in the
 * middle of an operation. QUBES_STORAGED_TEST_PAUSE=<point>:<ms> makes the
 * worker sleep at that point. Points: reflink-commit-before-rename (revision
 * made and pruned, the new image not yet renamed onto the clean one),
 * reflink-start-before-dirty (a snapshot's clean copy made, dirty not yet). */
#pragma once

void test_seam_pause(const char *point);
