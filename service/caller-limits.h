/* What one caller may hold at once, and the workers that keep short
 * operations answered (docs/api.md, "Limits per caller"). A caller is a
 * unique bus name; its uid's limit counts every name of that uid together.
 * uid 0 (qubesd) has no limits. Beyond a limit a call is refused with
 * LimitsExceeded and changes nothing. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* Calls waiting for an answer of polkit (or for the bus to tell the caller's
 * uid). Each holds its message, and with it every fd the message carries:
 * at most 16 a message on the system bus, so one uid holds at most
 * 16 * LIMIT_PENDING_PER_UID fds this way. */
#define LIMIT_PENDING_PER_NAME 16
#define LIMIT_PENDING_PER_UID 32

/* Jobs running (Import, ImportVolume), each holding its stream's fd. */
#define LIMIT_JOBS_PER_NAME 4
#define LIMIT_JOBS_PER_UID 8

/* Staged imports (ImportBegin without ImportEnd). */
#define LIMIT_IMPORTS_PER_NAME 8
#define LIMIT_IMPORTS_PER_UID 16

/* Workers for short operations, and separate ones for stream copies: copies
 * that wait on a silent client never hold a worker a Start needs. */
#define WORKER_THREADS 16
#define DATA_WORKER_THREADS 16

/* An Import whose pipe or socket stays silent this long fails with
 * ImportFailed (option --import-idle-timeout). */
#define IMPORT_IDLE_TIMEOUT_SEC 300

/* The open files the service asks for at start (the unit's LimitNOFILE
 * says the same): the soft limit is raised up to it, within the hard one. */
#define SERVICE_NOFILE 16384

/* Refuses with LimitsExceeded, naming the caller or its uid, when either
 * holds `held` (e.g. "jobs running") up to its limit already. */
int limits_check(const char *sender, uid_t uid, const char *held, unsigned by_name, unsigned max_name,
                 unsigned by_uid, unsigned max_uid, sd_bus_error *error);

/* Raises RLIMIT_NOFILE towards SERVICE_NOFILE. */
void limits_raise_nofile(void);
