/* The one way to read a clock: microseconds of CLOCK_MONOTONIC (ages,
 * deadlines; the clock sd-event's timers use) or CLOCK_REALTIME (wall time
 * shown to clients or kept in names). */
#pragma once

#include <stdint.h>
#include <time.h>

uint64_t clock_usec(clockid_t clock);
