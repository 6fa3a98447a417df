/* org.qubes.Storage1.Job: an object per long operation (import, clone) with
 * progress at most 4 times a second, Cancel, and Completed. */
#include <errno.h>
#include <glib.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "bus-job.h"
#include "caller-uid.h"
#include "clock.h"
#include "errors.h"
#include "caller-limits.h"
#include "macros.h"
#include "manager.h"
#include "options.h"

#define JOB_INTERFACE "org.qubes.Storage1.Job"
#define JOBS_PATH "/org/qubes/Storage1/job"
#define PROGRESS_PERIOD_USEC (250 * USEC_PER_MSEC)

static void job_cancel(BusJob *j) {
        if (atomic_exchange(&j->progress.cancelled, true))
                return;
        uint64_t one = 1;
        if (write(j->progress.cancel_fd, &one, sizeof(one)) < 0)
                g_warning("Cannot signal the cancellation of job %u: %m", j->id);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        BusJob *j = userdata;
        uint64_t bytes = atomic_load(&j->progress.bytes);
        uint64_t now = clock_usec(CLOCK_MONOTONIC);
        double progress = j->total ? (double) bytes / (double) j->total : 0.0;
        uint64_t dt = now - j->last_usec;
        uint64_t rate = dt ? (bytes - j->last_bytes) * USEC_PER_SEC / dt : j->rate;
        const char *changed[3];
        size_t n = 0;
        if (progress != j->progress_value)
                changed[n++] = "Progress";
        if (rate != j->rate)
                changed[n++] = "Rate";
        changed[n] = NULL;
        j->progress_value = progress;
        j->rate = rate;
        j->last_bytes = bytes;
        j->last_usec = now;
        if (n > 0)
                sd_bus_emit_properties_changed_strv(j->bus, j->path, JOB_INTERFACE, (char **) changed);
        sd_event_source_set_time(s, usec + PROGRESS_PERIOD_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* A caller left the bus (service/caller-uid.c tells): its jobs are cancelled. */
static void on_caller_left(const char *owner, void *userdata) {
        Manager *manager = userdata;
        GHashTable *running = manager->jobs;
        GHashTableIter it;
        gpointer j;
        if (!running)
                return;
        g_hash_table_iter_init(&it, running);
        while (g_hash_table_iter_next(&it, &j, NULL))
                if (g_strcmp0(((BusJob *) j)->owner, owner) == 0)
                        job_cancel(j);
}

static int method_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        BusJob *j = userdata;
        Options o;
        g_autofree char *object = g_strdup_printf("job %u", j->id);
        int r = read_options(m, &o, false, object, error);
        if (r < 0)
                return r;
        uid_t uid = (uid_t) -1;
        r = caller_uid(j->manager, m, &uid, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Unknown uids never match: a caller whose uid is unknown is refused
         * (caller_uid), and a job whose starter is unknown is nobody's own. */
        if (uid == (uid_t) -1)
                return error_set(error, SE_NOT_AUTHORIZED, "Not authorized for %s: the caller's uid is unknown (job %u)",
                                 ACTION_CANCEL_JOB, j->id);
        if (j->uid == (uid_t) -1 || uid != j->uid) {
                char id[16];
                snprintf(id, sizeof(id), "%u", j->id);
                r = auth_check(j->manager, m, ACTION_CANCEL_JOB, (const char *const[]) { "job", id, NULL },
                               o.no_user_interaction, error);
                if (r <= 0)
                        return r < 0 ? r : 1;
        }
        if (!j->cancelable)
                return error_set(error, SE_NOT_SUPPORTED, "Job %u (%s) cannot be cancelled", j->id, j->operation);
        job_cancel(j);
        return sd_bus_reply_method_return(m, "");
}

static int property_objects(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusJob *j = userdata;
        int r = sd_bus_message_open_container(reply, 'a', "o");
        for (size_t i = 0; r >= 0 && j->objects[i]; i++)
                r = sd_bus_message_append_basic(reply, 'o', j->objects[i]);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_bytes(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusJob *j = userdata;
        return sd_bus_message_append(reply, "t", j->total);
}

static int property_cancelable(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        BusJob *j = userdata;
        return sd_bus_message_append(reply, "b", (int) j->cancelable);
}

static const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Operation", "s", NULL, offsetof(BusJob, operation), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Objects", "ao", property_objects, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Progress", "d", NULL, offsetof(BusJob, progress_value), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Bytes", "t", property_bytes, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Rate", "t", NULL, offsetof(BusJob, rate), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StartTime", "t", NULL, offsetof(BusJob, start_usec), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StartedByUid", "u", NULL, offsetof(BusJob, uid), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Cancelable", "b", property_cancelable, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT, method_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Completed", SD_BUS_ARGS("b", success, "s", message), 0),
        SD_BUS_VTABLE_END,
};

BusJob *bus_job_start(Manager *manager, sd_bus_message *m, const char *operation, const char *object,
                      uint64_t total) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        BusJob *j = g_new0(BusJob, 1);
        j->manager = manager;
        j->bus = sd_bus_ref(bus);
        j->id = ++manager->last_job_id;
        j->path = g_strdup_printf(JOBS_PATH "/%u", j->id);
        j->operation = g_strdup(operation);
        j->objects = g_new0(char *, 2);
        j->objects[0] = g_strdup(object);
        j->total = total;
        j->cancelable = true;
        j->start_usec = clock_usec(CLOCK_REALTIME);
        j->last_usec = clock_usec(CLOCK_MONOTONIC);
        j->progress.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        j->progress.idle_timeout_sec = manager->import_idle_sec;
        /* known: the call was authorized, which needed it */
        j->uid = (uid_t) -1;
        j->owner = g_strdup(sd_bus_message_get_sender(m));
        caller_uid_cached(manager, j->owner, &j->uid);
        sd_bus_add_object_vtable(bus, &j->slot, j->path, JOB_INTERFACE, job_vtable, j);
        sd_event_add_time(sd_bus_get_event(bus), &j->timer, CLOCK_MONOTONIC,
                          clock_usec(CLOCK_MONOTONIC) + PROGRESS_PERIOD_USEC, 0, on_tick, j);
        sd_bus_emit_interfaces_added(bus, j->path, JOB_INTERFACE, NULL);
        if (!manager->jobs)
                manager->jobs = g_hash_table_new(g_direct_hash, g_direct_equal);
        g_hash_table_add(manager->jobs, j);
        /* registered with the first job: nothing to cancel before */
        caller_uid_on_leave(manager, on_caller_left, manager);
        if (caller_uid_left(manager, j->owner))
                job_cancel(j); /* it left while its call waited */
        return j;
}

void bus_jobs_cancel_all(Manager *manager) {
        GHashTableIter it;
        gpointer j;
        if (!manager->jobs)
                return;
        g_hash_table_iter_init(&it, manager->jobs);
        while (g_hash_table_iter_next(&it, &j, NULL))
                job_cancel(j);
}

void bus_jobs_free(Manager *manager) {
        /* every job has finished (its task ran) or was never started */
        g_clear_pointer(&manager->jobs, g_hash_table_destroy);
}

void bus_job_finish(BusJob *j, const StorageError *err) {
        bool ok = !err || err->code == SE_OK;
        if (j->manager->jobs)
                g_hash_table_remove(j->manager->jobs, j);
        j->progress_value = ok ? 1.0 : j->progress_value;
        sd_bus_emit_signal(j->bus, j->path, JOB_INTERFACE, "Completed", "bs", (int) ok,
                           ok ? "" : (err->message ? err->message : "failed"));
        sd_bus_emit_interfaces_removed(j->bus, j->path, JOB_INTERFACE, NULL);
        j->timer = sd_event_source_disable_unref(j->timer);
        j->slot = sd_bus_slot_unref(j->slot);
        close(j->progress.cancel_fd);
        sd_bus_unref(j->bus);
        g_free(j->owner);
        g_strfreev(j->objects);
        g_free(j->operation);
        g_free(j->path);
        g_free(j);
}

int bus_job_check_limits(Manager *manager, sd_bus_message *m, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(m);
        uid_t uid;
        int r = caller_uid_limited(manager, sender, &uid, error);
        if (r <= 0)
                return r;
        unsigned by_name = 0, by_uid = 0;
        GHashTableIter it;
        gpointer key;
        GHashTable *running = manager->jobs;
        if (running)
                g_hash_table_iter_init(&it, running);
        while (running && g_hash_table_iter_next(&it, &key, NULL)) {
                BusJob *j = key;
                by_name += g_strcmp0(j->owner, sender) == 0;
                by_uid += j->uid == uid;
        }
        return limits_check(sender, uid, "jobs running", by_name, LIMIT_JOBS_PER_NAME, by_uid, LIMIT_JOBS_PER_UID,
                            error);
}
