/* qubes-storaged: options, the event loop and the bus, idle exit, draining. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "auth.h"
#include "bus-job.h"
#include "bus.h"
#include "callers.h"
#include "errors.h"
#include "caller-limits.h"
#include "macros.h"
#include "manager.h"
#include "pool-ops.h"

#define BUS_NAME "org.qubes.Storage1"

typedef struct Args {
        const char *bus;
        const char *state_dir;
        const char *base_dir;
        uint64_t exit_idle_usec; /* 0: never */
        unsigned import_idle_sec;
} Args;

static void usage(FILE *f) {
        fprintf(f,
                "Usage: qubes-storaged [OPTIONS]\n"
                "  --bus system|session|ADDRESS  bus to serve on (default: system)\n"
                "  --state-dir DIR               state directory (default: $STATE_DIRECTORY or /var/lib/qubes-storage)\n"
                "  --base-dir DIR                base of the default pools (default: /var/lib/qubes)\n"
                "  --exit-idle SECONDS           exit after this long with nothing to do\n"
                "  --import-idle-timeout SECONDS an Import whose stream stays silent this long fails (default 300)\n"
                "  --version                     print the version\n");
}

static int parse_args(int argc, char **argv, Args *arg) {
        static const struct option options[] = {
                { "bus", required_argument, NULL, 'b' },
                { "state-dir", required_argument, NULL, 's' },
                { "base-dir", required_argument, NULL, 'd' },
                { "exit-idle", required_argument, NULL, 'e' },
                { "import-idle-timeout", required_argument, NULL, 'I' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *env = getenv("STATE_DIRECTORY");
        if (env && *env)
                arg->state_dir = env; /* systemd may pass several, ':'-separated: the unit names one */
        int c;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'b':
                        arg->bus = optarg;
                        break;
                case 's':
                        arg->state_dir = optarg;
                        break;
                case 'd':
                        arg->base_dir = optarg;
                        break;
                case 'e': {
                        char *end = NULL;
                        unsigned long secs = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || secs == 0 || secs > 86400) {
                                fprintf(stderr, "--exit-idle takes a number of seconds (1-86400), not '%s'\n", optarg);
                                return -EINVAL;
                        }
                        arg->exit_idle_usec = secs * USEC_PER_SEC;
                        break;
                }
                case 'I': {
                        char *end = NULL;
                        unsigned long secs = strtoul(optarg, &end, 10);
                        if (!*optarg || *end || secs == 0 || secs > 86400) {
                                fprintf(stderr, "--import-idle-timeout takes a number of seconds (1-86400), not '%s'\n",
                                        optarg);
                                return -EINVAL;
                        }
                        arg->import_idle_sec = (unsigned) secs;
                        break;
                }
                case 'V':
                        puts(VERSION);
                        exit(EXIT_SUCCESS);
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return -EINVAL;
        }
        return 0;
}

static int open_bus(const char *address, sd_bus **ret) {
        if (strcmp(address, "system") == 0)
                return sd_bus_open_system(ret);
        if (strcmp(address, "session") == 0)
                return sd_bus_open_user(ret);
        sd_bus *bus = NULL;
        int r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0) {
                sd_bus_unref(bus);
                return r;
        }
        *ret = bus;
        return 0;
}

/* Exit when idle: no call for exit_idle_usec, nothing in flight (jobs,
 * polkit queries) and nothing held by a caller (staged imports, exports).
 * The name is released first, so that a call arriving now activates a new
 * instance; the state is on disk already. */
static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *manager = userdata;
        sd_event_now(manager->event, CLOCK_MONOTONIC, &manager->last_activity);
        return 0;
}

static int on_idle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        bool busy = tasks_pending(m->tasks) > 0 || auth_pending(m) > 0 || callers_holdings(m) > 0;
        uint64_t due = m->last_activity + m->exit_idle_usec;
        if (!busy && m->releasing)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        if (!busy && usec >= due) {
                fprintf(stderr, "Idle for %" PRIu64 " s: exiting\n", (uint64_t) (m->exit_idle_usec / USEC_PER_SEC));
                sd_bus_release_name(m->bus, BUS_NAME);
                m->releasing = true;
                due = usec + 100 * USEC_PER_MSEC; /* let queued calls finish */
        } else if (busy || due <= usec)
                due = usec + USEC_PER_SEC;
        sd_event_source_set_time(s, due);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int setup_exit_idle(Manager *m) {
        if (m->exit_idle_usec == 0)
                return 0;
        sd_event_now(m->event, CLOCK_MONOTONIC, &m->last_activity);
        int r = sd_bus_add_filter(m->bus, NULL, on_message, m);
        if (r < 0)
                return r;
        return sd_event_add_time(m->event, &m->idle_timer, CLOCK_MONOTONIC, m->last_activity + m->exit_idle_usec,
                                 0, on_idle_timer, m);
}

/* SIGTERM/SIGINT: running jobs are cancelled (they stop at their next safe
 * point and answer Cancelled), new calls are refused (Failed: "qubes-storaged
 * is stopping"), the work in flight and the polkit questions already asked
 * finish (their replies are sent, their records written), then the service
 * exits 0. No new periodic work starts meanwhile; reads are still answered. */
static int on_drain_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        if (tasks_pending(m->tasks) == 0 && auth_pending(m) == 0)
                return sd_event_exit(sd_event_source_get_event(s), 0);
        sd_event_source_set_time(s, usec + 50 * USEC_PER_MSEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        sd_event *event = sd_event_source_get_event(s);
        uint64_t now;
        if (m->stopping)
                return 0;
        m->stopping = true;
        pool_ops_shutdown(m);
        auth_refuse_new(m, "qubes-storaged is stopping");
        bus_jobs_cancel_all(m);
        fprintf(stderr, "Stopping: cancelling jobs, waiting for %u operation(s) and %u authorization(s) in progress\n",
                tasks_pending(m->tasks), auth_pending(m));
        sd_event_now(event, CLOCK_MONOTONIC, &now);
        return sd_event_add_time(event, NULL, CLOCK_MONOTONIC, now, 0, on_drain_timer, m);
}

/* Losing the bus connection (the bus daemon died or dropped us): nothing can
 * be answered any more and the name is gone, so exit with a failure status
 * and let the service manager restart us. */
static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *manager = userdata;
        fprintf(stderr, "Lost the connection to the %s bus: exiting\n", manager->bus_address);
        bus_jobs_cancel_all(manager); /* a job waiting on a silent pipe would keep the workers */
        return sd_event_exit(manager->event, -ECONNRESET);
}

static const ModelHooks bus_hooks = {
        .pool_added = bus_pool_added,
        .pool_removed = bus_pool_removed,
        .pool_changed = bus_pool_changed,
        .volume_added = bus_volume_added,
        .volume_removed = bus_volume_removed,
        .volume_changed = bus_volume_changed,
        .volume_size_changed = bus_volume_size_changed,
        .volume_exported = bus_volume_exported,
};

int main(int argc, char **argv) {
        Args arg = { "system", "/var/lib/qubes-storage", "/var/lib/qubes", 0, IMPORT_IDLE_TIMEOUT_SEC };
        int r = parse_args(argc, argv, &arg);
        if (r < 0)
                return EXIT_FAILURE;
        Manager manager = {
                .state_dir = arg.state_dir,
                .bus_address = arg.bus,
                .exit_idle_usec = arg.exit_idle_usec,
                .import_idle_sec = arg.import_idle_sec,
        };
        limits_raise_nofile();
        /* libblockdev sets environment variables: before any thread starts */
        drivers_init();

        if (pool_ops_load(&manager, arg.base_dir) < 0)
                return EXIT_FAILURE;

        g_autoptr(sd_event) event = NULL;
        g_autoptr(sd_bus) bus = NULL;
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&event);
        manager.event = event;
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_stop_signal, &manager);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_stop_signal, &manager);
        if (r >= 0)
                r = tasks_init(event, WORKER_THREADS, DATA_WORKER_THREADS, &manager.tasks);
        if (r >= 0)
                r = pool_ops_init(&manager);
        if (r < 0) {
                fprintf(stderr, "Cannot set up the event loop: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        r = open_bus(arg.bus, &bus);
        if (r < 0) {
                fprintf(stderr, "Cannot connect to the %s bus: %s\n", arg.bus, strerror(-r));
                return EXIT_FAILURE;
        }
        manager.bus = bus;
        r = errors_register();
        if (r >= 0)
                r = bus_manager_register(&manager);
        if (r >= 0)
                r = bus_pool_register(&manager);
        if (r >= 0)
                r = bus_volume_register(&manager);
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                        "Disconnected", on_disconnected, &manager);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = setup_exit_idle(&manager);
        if (r < 0) {
                fprintf(stderr, "Cannot publish the objects: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        manager.hooks = bus_hooks;
        r = sd_bus_request_name(bus, BUS_NAME, 0);
        if (r < 0) {
                fprintf(stderr, "Cannot own %s: %s\n", BUS_NAME, strerror(-r));
                return EXIT_FAILURE;
        }
        fprintf(stderr, "qubes-storaged %s: serving %s on the %s bus, state in %s\n", VERSION, BUS_NAME, arg.bus,
                arg.state_dir);
        r = sd_event_loop(event);
        bus_changes_shutdown(&manager);
        manager.bus = NULL;
        manager.idle_timer = sd_event_source_disable_unref(manager.idle_timer);
        pool_ops_shutdown(&manager);
        tasks_shutdown(manager.tasks); /* runs what finished meanwhile: before what it may use goes */
        auth_shutdown(&manager);
        tasks_free(g_steal_pointer(&manager.tasks));
        bus_jobs_free(&manager);
        model_free(&manager);
        if (r == -ECONNRESET)
                return EXIT_FAILURE;
        if (r < 0) {
                fprintf(stderr, "Event loop failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
