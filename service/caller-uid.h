/* Who the callers are: the uid of each caller, asked of the bus
 * asynchronously and remembered per unique name until the name leaves the
 * bus, and the one place that learns a caller left (the NameOwnerChanged
 * match installed at start). The loop never waits for the bus: a call whose
 * caller's uid is not known yet waits for the answer and is dispatched again,
 * like a call waiting for polkit (service/auth.h). What callers hold is
 * another concern, kept in service/callers.c (imports and exports) and
 * service/bus-job.c (jobs): they listen here for callers leaving. Loop thread
 * only. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <sys/types.h>

typedef struct Manager Manager; /* manager.h */

/* Starts watching names leave the bus (at start; caller_uid() does it
 * otherwise on its first call). */
int caller_uid_watch(Manager *manager);

/* 1 with *uid set; 0 when m now waits for the answer (the handler returns at
 * once and runs again later); negative with *error set (LimitsExceeded when
 * the caller already has too many calls waiting). */
int caller_uid(Manager *manager, sd_bus_message *m, uid_t *uid, sd_bus_error *error);

/* The remembered uid of a unique name: 0 with *uid, -ENOENT when unknown. */
int caller_uid_cached(Manager *manager, const char *name, uid_t *uid);

/* For a limit check of the caller `name` (caller-limits.h): 1 with *uid
 * when limits apply, 0 for uid 0 (no limits), negative with *error set
 * (NotAuthorized) when its uid is not known. */
int caller_uid_limited(Manager *manager, const char *name, uid_t *uid, sd_bus_error *error);

/* Whether the caller name has left the bus. Unique names are never reused,
 * so a name that made a call (every call passes caller_uid() before it can
 * hold anything) and is no longer known has left: true also when it left
 * while its call was still being answered. */
bool caller_uid_left(Manager *manager, const char *name);

/* fn runs with the unique name of each caller that leaves the bus after
 * having made a call (at most 4 listeners; adding one twice, with the same
 * userdata, adds it once). */
typedef void (*CallerLeftFn)(const char *name, void *userdata);
void caller_uid_on_leave(Manager *manager, CallerLeftFn fn, void *userdata);

/* Calls waiting for a uid. */
unsigned caller_uid_waiting(Manager *manager);

void caller_uid_shutdown(Manager *manager);
