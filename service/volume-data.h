/* Import and export: the worker side of the data-moving volume ops, the
 * preconditions every driver shares, and the model updates on completion. */
#pragma once

#include "volume-ops.h"

/* Loop thread, when the op's turn comes: the busy/import/export rules. */
int volume_data_check(VolumeOp *op);
/* Worker: VOP_IMPORT* and VOP_EXPORT*. */
int volume_data_run(VolumeOp *op);
/* Loop thread, on completion: import and export state of the volume. */
void volume_data_done(VolumeOp *op);
