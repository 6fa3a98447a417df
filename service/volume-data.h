/* Import and export: the worker side of the data-moving volume ops and the
 * model updates on completion (their rules: volume-rules.h). */
#pragma once

#include "volume-ops.h"

/* Worker: VOP_IMPORT* and VOP_EXPORT*. */
int volume_data_run(VolumeOp *op);
/* Loop thread, on completion: import and export state of the volume. */
void volume_data_done(VolumeOp *op);
