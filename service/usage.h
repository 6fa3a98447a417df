/* Pool usage freshness: re-read after operations that change it (at most
 * once per second per pool), and when asked (pool-ops.c asks every 30 s and
 * for RefreshUsage); PropertiesChanged only when a value changed (see
 * model.c). Pools whose driver defines volumes by itself (linux-kernel) are
 * re-scanned at the same time, and what the scan found is handed on. */
#pragma once

#include <systemd/sd-event.h>

#include "model.h"

/* Loop side, after a refresh whose scan succeeded: vids are the volumes the
 * storage defines now (NULL: none). */
typedef void (*UsageScanned)(Pool *p, char **vids);

/* Delayed refreshes run on m->event from now on. */
void usage_init(Manager *m, UsageScanned scanned);
void usage_shutdown(Manager *m);

/* Asks for a refresh soon; coalesced. */
void pool_usage_request(Pool *p);

/* Refreshes now (or right after the running refresh) and calls done; done
 * is always called, at once when the pool is removed meanwhile (then
 * p->removed is set). */
typedef void (*UsageDone)(Pool *p, void *userdata);
void pool_usage_refresh(Pool *p, UsageDone done, void *userdata);

/* Startup only, before the loop runs: reads usage and scans synchronously;
 * true when the scan succeeded (*vids then holds what it found). */
bool pool_usage_read_now(Pool *p, char ***vids);
