/* The uid of a caller, asked of the bus asynchronously and remembered per
 * unique name until the name leaves the bus (NameOwnerChanged). The loop
 * never waits for the bus: a call whose caller's uid is not known yet waits
 * for the answer and is dispatched again, like a call waiting for polkit
 * (service/auth.h). Loop thread only. */
#pragma once

#include <systemd/sd-bus.h>
#include <sys/types.h>

/* Starts watching names leave the bus (at start; caller_uid() does it
 * otherwise on its first call). */
int caller_uid_watch(sd_bus *bus);

/* 1 with *uid set; 0 when m now waits for the answer (the handler returns at
 * once and runs again later); negative with *error set (LimitsExceeded when
 * the caller already has too many calls waiting). */
int caller_uid(sd_bus_message *m, uid_t *uid, sd_bus_error *error);

/* The remembered uid of a unique name: 0 with *uid, -ENOENT when unknown. */
int caller_uid_cached(const char *name, uid_t *uid);

/* Calls waiting for a uid. */
unsigned caller_uid_waiting(void);

void caller_uid_shutdown(void);
