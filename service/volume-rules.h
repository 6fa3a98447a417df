/* "May this volume operation run now?": every rule that can refuse one, in
 * one function. The facts about the volume are taken on the loop just before
 * the operation runs; the worker adds what the storage says (a fresh read)
 * and asks again, so the rules that need the storage (dirty, size,
 * revisions) are answered from the disk and the others from the same facts
 * twice. Messages do not name the volume: volume-ops.c does, for every error.
 * The pool operations' counterpart is pool-rules.h. No I/O, no sd-bus. */
#pragma once

#include "volume-ops.h"

/* VolumeFacts: volume-ops.h (an operation carries its own). */


/* Loop side: the facts for op->volume (op->spec and op->started already
 * copied). storage stays NULL. */
void volume_facts_take(const VolumeOp *op, VolumeFacts *f);

/* 0: op may run; -1 with *e set to the first rule that refuses it. */
int volume_may_run(const VolumeOp *op, const VolumeFacts *f, StorageError *e);

/* Worker side: asks again with what the storage says now (cur, just read),
 * setting op->err when refused. */
int volume_recheck(VolumeOp *op, const VolumeInfo *cur);
