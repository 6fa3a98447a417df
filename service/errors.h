/* org.qubes.Storage1.Error.*: the names, and replies built from StorageError. */
#pragma once

#include <systemd/sd-bus.h>

#include "storage-error.h"

#define ERROR_PREFIX "org.qubes.Storage1.Error."

const char *error_name(StorageErrorCode code);
/* Registers the names with sd_bus_error_add_map. */
int errors_register(void);
/* Sets *ret from the code and message; returns a negative errno as sd-bus
 * method handlers expect. */
int error_set(sd_bus_error *ret, StorageErrorCode code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int error_reply(sd_bus_message *m, const StorageError *e);
/* Moves e into *ret (e is cleared); returns a negative errno as error_set. */
int error_take(sd_bus_error *ret, StorageError *e);
