/* Streaming data into a staging target: exact sizes, holes kept, progress
 * and cancellation. Runs on workers. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage-error.h"

typedef struct CopyProgress {
        _Atomic uint64_t bytes;   /* copied so far */
        atomic_bool cancelled;
        int cancel_fd;            /* readable once cancelled (an eventfd), or -1 */
        unsigned idle_timeout_sec; /* a pipe or socket silent this long fails the copy; 0: never */
} CopyProgress;

/* Reads exactly size bytes from in (pipe, socket, regular file or block
 * device, from its current offset) and writes them at the start of out,
 * skipping blocks of zeros: out must read as zeros where nothing is written
 * (a fresh sparse file or thin LV). With check_eof, in must then be at its
 * end. Errors: SE_IMPORT_FAILED "not enough data (copied X bytes, expected Y
 * bytes)" / "too much data (expected Y bytes)", "no data for N s" (p->idle_timeout_sec), SE_CANCELLED, SE_FAILED.
 * out is flushed (fdatasync) before success is returned. */
int stream_copy(int in, int out, uint64_t size, bool check_eof, CopyProgress *p, StorageError *err);
