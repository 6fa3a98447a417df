/* Volume operations: one queued task per call, run on a worker under the
 * volume's queue, with the rules every driver shares (read-only, shrink,
 * busy, revisions), the state record written on the worker, and the model
 * updated on the loop when the task completes. No sd-bus here. */
#pragma once

#include "model.h"
#include "stream.h"

typedef enum VolumeOpKind {
        VOP_CREATE,
        VOP_REMOVE,
        VOP_START,
        VOP_STOP,
        VOP_VERIFY,
        VOP_RESIZE,
        VOP_REVERT,
        VOP_SET_RW,
        VOP_SET_REVISIONS,
        VOP_QUERY,
        VOP_IMPORT,         /* fd, size: read the stream, commit */
        VOP_IMPORT_BEGIN,   /* size: stage; fd and path out */
        VOP_IMPORT_END,     /* success, message */
        VOP_IMPORT_VOLUME,  /* source */
        VOP_EXPORT,         /* fd and path out */
        VOP_EXPORT_END,     /* path */
        _VOP_MAX,
} VolumeOpKind;

typedef struct VolumeOp VolumeOp;
typedef void (*VolumeOpDone)(VolumeOp *op, void *userdata);

struct VolumeOp {
        Task task;
        VolumeOpKind kind;
        Volume *volume;
        /* arguments */
        uint64_t size;
        bool allow_shrink;
        char *revision;           /* NULL: newest */
        bool rw;
        int revisions_to_keep;
        int fd;                   /* import: the stream (owned); begin/export: out */
        char *path;               /* export_end: in; begin/export: out */
        bool success;             /* import_end */
        char *message;            /* import_end */
        Volume *source;           /* import_volume */
        char *owner;              /* import_begin, export: the caller that will hold it (unique bus
                                   * name); import_end, export_end: only what that caller holds */
        CopyProgress *progress;   /* import, import_volume: may be NULL */
        /* results, valid in the done callback */
        StorageError err;
        bool verified;
        bool stable;              /* export: the view cannot change */
        /* private */
        VolumeSpec *spec;
        VolumeSpec *source_spec;
        bool started;
        bool started_here;
        bool persist;
        VolumeInfo info;
        VolumeOpDone done;
        void *userdata;
};

/* Volume op on an existing volume (or a new one, for VOP_CREATE: the volume
 * is published when the create succeeds). Takes a reference to v. done runs
 * on the loop; the op is freed after it returns. */
VolumeOp *volume_op_new(VolumeOpKind kind, Volume *v, VolumeOpDone done, void *userdata);
void volume_op_submit(VolumeOp *op);
/* Frees an op that was never submitted. */
void volume_op_free(VolumeOp *op);

/* Reads what the storage says about v now (worker side of every op). */
void volume_query_now(Volume *v);

/* Loop side: queues a VOP_QUERY for every volume of the pool. */
void pool_refresh_volumes(Pool *p);

const char *volume_op_name(VolumeOpKind kind);
