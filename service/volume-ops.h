/* Volume operations: one queued task per call, run on a worker under the
 * volume's queue once volume-rules.c allows it, the state record written on
 * the worker, and the model updated on the loop when the task completes.
 * No sd-bus here. */
#pragma once

#include "fileops.h"
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

/* What the rules of volume-rules.c look at besides the operation. */
typedef struct VolumeFacts {
        const Driver *driver;         /* the volume's pool's */
        const Driver *source_driver;  /* import-volume: the source pool's */
        bool removed;                 /* the volume or its pool was removed */
        bool started;
        bool exported;                /* an export is open */
        bool exported_unstable;       /* an open export whose data must not change */
        bool import_staged;           /* ImportBegin without ImportEnd */
        bool import_ours;             /* import-end: staged by this caller */
        bool export_ours;             /* export-end: the named export is open and this caller's */
        bool source_gone;             /* import-volume: the source was removed */
        const VolumeInfo *storage;    /* NULL until a worker has read it */
} VolumeFacts;

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
        FoFlushes *flushes;       /* a batch's: the directory flushes the driver owes go there */
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
        VolumeFacts facts;        /* taken on the loop before the op runs */
        VolumeInfo info;
        uint64_t info_usec;       /* when info was read (CLOCK_MONOTONIC) */
        unsigned dependants_left; /* re-reads of dependants still running */
        VolumeOpDone done;
        void *userdata;
};

/* Volume op on an existing volume (or a new one, for VOP_CREATE: the volume
 * is published when the create succeeds). Takes a reference to v. done runs
 * on the loop; the op is freed after it returns. */
VolumeOp *volume_op_new(VolumeOpKind kind, Volume *v, VolumeOpDone done, void *userdata);
void volume_op_submit(VolumeOp *op);

/* CreateVolume's rules that need no queue (the pool creates volumes, the
 * source exists, a size, revisions_to_keep), with s completed as the driver
 * names it (vid, defaults). */
int volume_create_check(Pool *p, VolumeSpec *s, StorageError *err);
/* The create op of a checked spec (taken); NULL with err when the vid is
 * taken. The vid is reserved until the create completes. */
VolumeOp *volume_op_new_create(Pool *p, VolumeSpec *s, StorageError *err);
/* Frees an op that was never submitted. */
void volume_op_free(VolumeOp *op);

/* At load, before the volume is published: reads what the storage says
 * about v now, and whether it is started where the driver shows that. */
void volume_query_now(Volume *v);

/* A client reads v's storage-derived properties (docs/api.md, "Freshness"):
 * the answer is what memory holds, and when that was read from the storage
 * more than VOLUME_VIEW_MAX_AGE_USEC ago a re-read is queued (never waited
 * for), so that a change made behind the service's back shows within 2 s. */
#define VOLUME_VIEW_MAX_AGE_USEC ((uint64_t) 1000 * 1000) /* 1 s */
void volume_view_read(Volume *v);

const char *volume_op_name(VolumeOpKind kind);
