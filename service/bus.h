/* The bus layer: one file per interface; this header is what they share. */
#pragma once

#include <systemd/sd-bus.h>

#include "model.h"
#include "pool-ops.h"
#include "volume-ops.h"

#define MANAGER_INTERFACE "org.qubes.Storage1.Manager"
#define POOL_INTERFACE "org.qubes.Storage1.Pool"
#define VOLUME_INTERFACE "org.qubes.Storage1.Volume"

/* On m->bus, with m as the userdata of every handler that has no object. */
int bus_manager_register(Manager *m);
int bus_pool_register(Manager *m);
int bus_volume_register(Manager *m);

/* Model notifications turned into signals (bus-pool.c, bus-volume.c). */
void bus_pool_added(Pool *p);
void bus_pool_removed(Pool *p);
void bus_pool_changed(Pool *p, const char *const *props);
void bus_volume_added(Volume *v);
void bus_volume_removed(Volume *v);
void bus_volume_changed(Volume *v, const char *const *props);
void bus_volume_size_changed(Volume *v, uint64_t old_size, uint64_t new_size);
void bus_volume_exported(Volume *v, const char *path, bool ended);

/* Coalesced PropertiesChanged (bus-changes.c): mark changed properties of
 * an object; one signal per object goes out on the next loop iteration, or
 * at flush, which every method reply that may follow a change calls first.
 * forget: the object was announced or withdrawn as a whole. */
void bus_changes_mark(Manager *m, const char *path, const char *interface, const char *const *props);
void bus_changes_forget(Manager *m, const char *path);
void bus_changes_flush(Manager *m);
void bus_changes_shutdown(Manager *m);

/* Submits a pool op that replies to m when it completes (empty reply, or
 * "o" for add). */
int bus_submit_pool_op(sd_bus_message *m, PoolOp *op);
/* Submits a volume op that replies to m when it completes (empty reply,
 * or "b" for verify, "o" for create). */
int bus_submit_volume_op(sd_bus_message *m, VolumeOp *op);
/* Operation on many volumes in parallel; replies when all are done, with
 * the error of one failure if any failed. */
int bus_volumes_batch(sd_bus_message *m, Manager *manager, VolumeOpKind kind, sd_bus_error *error);
