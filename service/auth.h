/* Authorization: every mutating method asks polkit, asynchronously.
 *
 * A handler reads and validates its arguments, then calls auth_check(). It
 * returns 1 when the caller may go on (uid 0, or polkit said yes), a negative
 * errno with *error set to NotAuthorized when it may not, and 0 when polkit
 * was asked: the handler must then return at once without changing anything;
 * when polkit answers, the same message is dispatched again, the handler runs
 * from the start and auth_check() returns the answer. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

typedef struct Manager Manager; /* manager.h */

#define ACTION_MANAGE_POOLS "org.qubes.storage1.manage-pools"
#define ACTION_MANAGE_VOLUMES "org.qubes.storage1.manage-volumes"
#define ACTION_START_STOP "org.qubes.storage1.start-stop"
#define ACTION_IMPORT "org.qubes.storage1.import"
#define ACTION_EXPORT "org.qubes.storage1.export"
#define ACTION_CANCEL_JOB "org.qubes.storage1.cancel-job"

/* details: NULL-terminated key, value, key, value... (pool, vid, size). */
int auth_check(Manager *manager, sd_bus_message *m, const char *action, const char *const *details,
               bool no_user_interaction, sd_bus_error *error);

/* The same for one call about many objects (StartVolumes...): polkit is
 * asked once per set of details (n sets; none: once without details), and
 * the call may go on only when every answer is yes. */
int auth_check_each(Manager *manager, sd_bus_message *m, const char *action, const char *const *const *details,
                    size_t n, bool no_user_interaction, sd_bus_error *error);

/* From now on, calls that are not already waiting for polkit's answer are
 * refused with Failed (message: why); those waiting get their answer. */
void auth_refuse_new(Manager *manager, const char *why);

/* polkit queries still waiting for an answer. */
unsigned auth_pending(Manager *manager);
void auth_shutdown(Manager *manager);
