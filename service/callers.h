/* What bus clients hold between their calls, tied to the client.
 *
 * A staged import (ImportBegin until ImportEnd) and an open export (Export
 * until ExportEnd) belong to the caller that asked for them: the model
 * records the caller's unique bus name with each (Volume.import_owner,
 * Export.owner). When a caller leaves the bus, everything it holds is
 * released, as a Job of a departed caller is cancelled: its staged imports
 * are discarded, its exports ended. Who the callers are (their uid, and that
 * one left) is service/caller-uid.c's concern: this file listens there and
 * asks the bus nothing itself. Counts per
 * caller are read here too (limits count against them; exit on idle waits
 * while anything is held). Loop thread only. */
#pragma once

#include <systemd/sd-bus.h>

#include "volume-ops.h"

typedef enum HoldingKind {
        HOLDING_IMPORT,           /* a staged import */
        HOLDING_EXPORT,           /* an open export */
        _HOLDING_MAX,
} HoldingKind;

/* The caller of m, to record with what its op will hold (NULL: none). */
const char *callers_owner_of(sd_bus_message *m);

/* After an op done for the call m: a new holding is released when its caller
 * leaves the bus; if the caller has left already, at once. */
void callers_op_done(sd_bus_message *m, VolumeOp *op);

/* Holdings of one kind of one caller (owner NULL: of everyone). */
unsigned callers_count(Manager *m, const char *owner, HoldingKind kind);
/* Everything held by anyone: imports staged and exports open. */
unsigned callers_holdings(Manager *m);
