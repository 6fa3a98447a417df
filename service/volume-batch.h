/* StartVolumes, StopVolumes and VerifyVolumes: one volume operation per
 * volume (volume-ops.c, each in its volume's own order), run per pool in the
 * mode batch-mode.c measured cheaper there, and sharing their directory
 * flushes (fileops.h, FoFlushes): every directory the batch changed is synced
 * once, after the last operation, before the reply. No sd-bus here. */
#pragma once

#include "model.h"
#include "volume-ops.h"

/* err: SE_OK, or the first operation's (or the flush's) error. Loop thread. */
typedef void (*VolumeBatchDone)(const StorageError *err, void *userdata);

/* kind: VOP_START, VOP_STOP or VOP_VERIFY; vols: n volumes (n > 0), each
 * referenced by the batch while it runs. */
void volume_batch_run(Manager *m, VolumeOpKind kind, Volume *const *vols, size_t n, VolumeBatchDone done,
                      void *userdata);
