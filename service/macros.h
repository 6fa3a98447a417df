/* The few helpers that make ownership visible. */
#pragma once

#define _cleanup_(f) __attribute__((cleanup(f)))

/* Returns *p and sets it to NULL: ownership moves to the caller. */
#define TAKE_PTR(p)                                     \
        ({                                              \
                __typeof__(p) _ptr_ = (p);              \
                (p) = NULL;                             \
                _ptr_;                                  \
        })

#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MSEC 1000ULL
