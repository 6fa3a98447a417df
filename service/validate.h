/* The input rules of the API: names, vids, sizes. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define SIZE_MAX_ALLOWED ((uint64_t) INT64_MAX)

bool valid_pool_name(const char *s);
bool valid_vid(const char *s);
bool valid_vm_name(const char *s);
bool valid_size(uint64_t size);
