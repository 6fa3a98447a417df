/* org.qubes.Storage1.Volume: one object per volume, through a fallback vtable;
 * and the replies of volume operations, single and batched. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bus-job.h"
#include "bus.h"
#include "caller-limits.h"
#include "caller-uid.h"
#include "callers.h"
#include "errors.h"
#include "macros.h"
#include "manager.h"
#include "options.h"
#include "paths.h"
#include "validate.h"
#include "volume-batch.h"

static int find_volume(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                       sd_bus_error *error) {
        Volume *v = model_find_volume_by_path(userdata, path);
        if (!v)
                return 0;
        *found = v;
        return 1;
}

/* What the storage said of v, for a property read: a stale view queues a
 * re-read (volume_view_read), the answer never waits for it. */
static const VolumeInfo *view(Volume *v) {
        volume_view_read(v);
        return &v->info;
}

#define VOLUME_STRING_PROPERTY(fn, expr)                                                                    \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,          \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {                        \
                Volume *v = userdata;                                                                       \
                const char *s = (expr);                                                                     \
                return sd_bus_message_append_basic(reply, 's', s ? s : "");                                 \
        }

#define VOLUME_BOOL_PROPERTY(fn, expr)                                                                      \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,          \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {                        \
                Volume *v = userdata;                                                                       \
                return sd_bus_message_append(reply, "b", (int) (expr));                                     \
        }

VOLUME_STRING_PROPERTY(property_vid, v->spec->vid)
VOLUME_STRING_PROPERTY(property_name, v->spec->name)
VOLUME_STRING_PROPERTY(property_vm, v->spec->vm)
VOLUME_STRING_PROPERTY(property_source, v->spec->source)
VOLUME_STRING_PROPERTY(property_path, view(v)->path)
VOLUME_STRING_PROPERTY(property_kernels_dir, view(v)->kernels_dir)
VOLUME_BOOL_PROPERTY(property_snap_on_start, v->spec->snap_on_start)
VOLUME_BOOL_PROPERTY(property_save_on_stop, v->spec->save_on_stop)
VOLUME_BOOL_PROPERTY(property_rw, v->spec->rw)
VOLUME_BOOL_PROPERTY(property_dirty, view(v)->dirty)
VOLUME_BOOL_PROPERTY(property_outdated, view(v)->outdated)
VOLUME_BOOL_PROPERTY(property_started, v->started)

static int property_pool(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        return sd_bus_message_append(reply, "o", v->pool->object_path);
}

static int property_revisions_to_keep(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        return sd_bus_message_append(reply, "i", (int32_t) v->spec->revisions_to_keep);
}

static int property_size(sd_bus *bus, const char *path, const char *interface, const char *property,
                         sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        const VolumeInfo *i = view(v);
        return sd_bus_message_append(reply, "t", strcmp(property, "Size") == 0 ? i->size : i->usage);
}

static int property_revisions(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const VolumeInfo *info = view(userdata);
        int r = sd_bus_message_open_container(reply, 'a', "(ss)");
        for (size_t i = 0; r >= 0 && i < info->n_revisions; i++)
                r = sd_bus_message_append(reply, "(ss)", info->revisions[i].id, info->revisions[i].timestamp);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

static int property_block_device(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const VolumeInfo *i = view(userdata);
        return sd_bus_message_append(reply, "(sssb)", i->bdev_path, i->bdev_script, i->bdev_devtype, (int) i->bdev_rw);
}

typedef struct Call {
        sd_bus_message *message;
        BusJob *job;
} Call;

/* Replies to the message of a single volume operation. */
static void reply_single(VolumeOp *op, void *userdata) {
        Call *c = userdata;
        sd_bus_message *m = c->message;
        bus_changes_flush(op->volume->pool->manager);
        if (c->job)
                bus_job_finish(c->job, &op->err);
        callers_op_done(m, op);
        if (op->err.code != SE_OK)
                error_reply(m, &op->err);
        else if (op->kind == VOP_VERIFY)
                sd_bus_reply_method_return(m, "b", (int) op->verified);
        else if (op->kind == VOP_CREATE)
                sd_bus_reply_method_return(m, "o", op->volume->object_path);
        else if (op->kind == VOP_IMPORT_BEGIN || op->kind == VOP_EXPORT)
                sd_bus_reply_method_return(m, "hs", op->fd, op->path);
        else
                sd_bus_reply_method_return(m, "");
        sd_bus_message_unref(m);
        g_free(c);
}

static int submit_call(sd_bus_message *m, VolumeOp *op, BusJob *job) {
        Call *c = g_new0(Call, 1);
        c->message = sd_bus_message_ref(m);
        c->job = job;
        op->done = reply_single;
        op->userdata = c;
        if (job)
                op->progress = &job->progress;
        volume_op_submit(op);
        return 1;
}

int bus_submit_volume_op(sd_bus_message *m, VolumeOp *op) {
        return submit_call(m, op, NULL);
}

static const char *action_of(VolumeOpKind kind) {
        switch (kind) {
        case VOP_START:
        case VOP_STOP:
        case VOP_VERIFY:
                return ACTION_START_STOP;
        case VOP_IMPORT:
        case VOP_IMPORT_BEGIN:
        case VOP_IMPORT_END:
        case VOP_IMPORT_VOLUME:
                return ACTION_IMPORT;
        case VOP_EXPORT:
        case VOP_EXPORT_END:
                return ACTION_EXPORT;
        default:
                return ACTION_MANAGE_VOLUMES;
        }
}

/* Reads the options, asks polkit and makes the op: 1 with *ret set, 0 while
 * polkit thinks (the handler returns and runs again), or a negative errno. */
static int submit(sd_bus_message *m, Volume *v, VolumeOpKind kind, bool with_shrink, uint64_t size,
                  sd_bus_error *error, VolumeOp **ret) {
        Options o;
        g_autofree char *object = g_strdup_printf("volume %s:%s", v->pool->name, v->spec->vid);
        int r = read_options(m, &o, with_shrink, object, error);
        if (r < 0)
                return r;
        char size_s[32] = "";
        if (size > 0)
                snprintf(size_s, sizeof(size_s), "%" G_GUINT64_FORMAT, size);
        const char *details[] = { "pool", v->pool->name, "vid", v->spec->vid, size > 0 ? "size" : NULL, size_s, NULL };
        r = auth_check(v->pool->manager, m, action_of(kind), details, o.no_user_interaction, error);
        if (r <= 0)
                return r;
        VolumeOp *op = volume_op_new(kind, v, NULL, NULL);
        op->allow_shrink = o.allow_shrink;
        *ret = op;
        return 1;
}

#define SIMPLE_METHOD(fn, kind)                                                                             \
        static int fn(sd_bus_message *m, void *userdata, sd_bus_error *error) {                            \
                VolumeOp *op = NULL;                                                                        \
                int r = submit(m, userdata, kind, false, 0, error, &op);                                    \
                return r <= 0 ? (r < 0 ? r : 1) : bus_submit_volume_op(m, op);                              \
        }

SIMPLE_METHOD(method_start, VOP_START)
SIMPLE_METHOD(method_stop, VOP_STOP)
SIMPLE_METHOD(method_verify, VOP_VERIFY)
SIMPLE_METHOD(method_remove, VOP_REMOVE)

static int method_resize(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        uint64_t size;
        int r = sd_bus_message_read(m, "t", &size);
        if (r < 0)
                return r;
        if (!valid_size(size))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid size %" G_GUINT64_FORMAT " for volume %s:%s",
                                 size, v->pool->name, v->spec->vid);
        VolumeOp *op = NULL;
        r = submit(m, v, VOP_RESIZE, true, size, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->size = size;
        return bus_submit_volume_op(m, op);
}

static int method_revert(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *rev;
        int r = sd_bus_message_read(m, "s", &rev);
        if (r < 0)
                return r;
        VolumeOp *op = NULL;
        r = submit(m, userdata, VOP_REVERT, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->revision = *rev ? g_strdup(rev) : NULL;
        return bus_submit_volume_op(m, op);
}

static int method_set_rw(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int rw;
        int r = sd_bus_message_read(m, "b", &rw);
        if (r < 0)
                return r;
        VolumeOp *op = NULL;
        r = submit(m, userdata, VOP_SET_RW, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->rw = rw;
        return bus_submit_volume_op(m, op);
}

static int method_set_revisions(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        int32_t n;
        int r = sd_bus_message_read(m, "i", &n);
        if (r < 0)
                return r;
        g_autofree char *what = g_strdup_printf("volume %s:%s", v->pool->name, v->spec->vid);
        StorageError serr = STORAGE_ERROR_INIT;
        if (revisions_check(v->pool->driver, n, what, &serr) < 0)
                return error_take(error, &serr);
        VolumeOp *op = NULL;
        r = submit(m, v, VOP_SET_REVISIONS, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->revisions_to_keep = n;
        return bus_submit_volume_op(m, op);
}

static int check_size(Volume *v, uint64_t size, sd_bus_error *error) {
        if (size != 0 && !valid_size(size))
                return error_set(error, SE_INVALID_ARGUMENT, "Invalid size %" G_GUINT64_FORMAT " for volume %s:%s",
                                 size, v->pool->name, v->spec->vid);
        return 0;
}

/* A received fd we can read from: a pipe, socket or regular file. */
static int take_input_fd(int fd, Volume *v, sd_bus_error *error) {
        struct stat st;
        int flags = fcntl(fd, F_GETFL);
        if (fstat(fd, &st) < 0 || flags < 0)
                return error_set(error, SE_INVALID_ARGUMENT, "Bad file descriptor for the import into %s:%s",
                                 v->pool->name, v->spec->vid);
        if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode))
                return error_set(error, SE_INVALID_ARGUMENT,
                                 "The import into %s:%s needs a pipe, socket or regular file", v->pool->name,
                                 v->spec->vid);
        if ((flags & O_ACCMODE) == O_WRONLY)
                return error_set(error, SE_INVALID_ARGUMENT, "The file descriptor for the import into %s:%s is not readable",
                                 v->pool->name, v->spec->vid);
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return error_set(error, SE_FAILED, "Cannot keep the file descriptor: %m");
        return copy;
}

static int method_import(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        int fd;
        uint64_t size;
        int r = sd_bus_message_read(m, "ht", &fd, &size);
        if (r < 0)
                return r;
        if (check_size(v, size, error) < 0)
                return -EINVAL;
        VolumeOp *op = NULL;
        r = submit(m, v, VOP_IMPORT, false, size, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->size = size;
        r = bus_job_check_limits(v->pool->manager, m, error);
        if (r < 0) {
                volume_op_free(op);
                return r;
        }
        op->fd = take_input_fd(fd, v, error);
        if (op->fd < 0) {
                volume_op_free(op);
                return -EINVAL;
        }
        BusJob *job = bus_job_start(v->pool->manager, m, "volume-import", v->object_path, size ? size : v->info.size);
        return submit_call(m, op, job);
}

/* Staged imports the caller (and its uid) holds, counted against the
 * record of who staged what (service/callers.c). */
static int check_import_limits(sd_bus_message *m, Manager *manager, sd_bus_error *error) {
        const char *sender = callers_owner_of(m);
        uid_t uid;
        int r = caller_uid_limited(manager, sender, &uid, error);
        if (r <= 0)
                return r;
        unsigned by_name = callers_count(manager, sender, HOLDING_IMPORT), by_uid = 0;
        g_autoptr(GPtrArray) pools = model_pools(manager);
        for (guint i = 0; i < pools->len; i++) {
                g_autoptr(GPtrArray) vols = pool_volumes_sorted(pools->pdata[i]);
                for (guint j = 0; j < vols->len; j++) {
                        Volume *v = vols->pdata[j];
                        uid_t owner_uid;
                        by_uid += v->import_path && caller_uid_cached(manager, v->import_owner, &owner_uid) == 0 &&
                                  owner_uid == uid;
                }
        }
        return limits_check(sender, uid, "imports staged", by_name, LIMIT_IMPORTS_PER_NAME, by_uid,
                            LIMIT_IMPORTS_PER_UID, error);
}

static int method_import_begin(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        uint64_t size;
        int r = sd_bus_message_read(m, "t", &size);
        if (r < 0)
                return r;
        if (check_size(v, size, error) < 0)
                return -EINVAL;
        VolumeOp *op = NULL;
        r = submit(m, v, VOP_IMPORT_BEGIN, false, size, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->size = size;
        r = check_import_limits(m, v->pool->manager, error);
        if (r < 0) {
                volume_op_free(op);
                return r;
        }
        op->owner = g_strdup(callers_owner_of(m));
        return bus_submit_volume_op(m, op);
}

static int method_import_end(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int success;
        const char *message;
        int r = sd_bus_message_read(m, "bs", &success, &message);
        if (r < 0)
                return r;
        VolumeOp *op = NULL;
        r = submit(m, userdata, VOP_IMPORT_END, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->success = success;
        op->message = g_strdup(message);
        return bus_submit_volume_op(m, op);
}

static int method_import_volume(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Volume *v = userdata;
        const char *source;
        int r = sd_bus_message_read(m, "o", &source);
        if (r < 0)
                return r;
        Volume *src = model_find_volume_by_path(v->pool->manager, source);
        if (!src)
                return error_set(error, SE_NO_SUCH_VOLUME, "No source volume at %s for %s:%s", source, v->pool->name,
                                 v->spec->vid);
        VolumeOp *op = NULL;
        r = submit(m, v, VOP_IMPORT_VOLUME, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->source = volume_ref(src);
        r = bus_job_check_limits(v->pool->manager, m, error);
        if (r < 0) {
                volume_op_free(op);
                return r;
        }
        BusJob *job = bus_job_start(v->pool->manager, m, "volume-clone", v->object_path, src->info.size);
        return submit_call(m, op, job);
}

static int method_export(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VolumeOp *op = NULL;
        int r = submit(m, userdata, VOP_EXPORT, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->owner = g_strdup(callers_owner_of(m));
        return bus_submit_volume_op(m, op);
}

static int method_export_end(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *path;
        int r = sd_bus_message_read(m, "s", &path);
        if (r < 0)
                return r;
        VolumeOp *op = NULL;
        r = submit(m, userdata, VOP_EXPORT_END, false, 0, error, &op);
        if (r <= 0)
                return r < 0 ? r : 1;
        op->path = g_strdup(path);
        return bus_submit_volume_op(m, op);
}

typedef struct BatchCall {
        Manager *manager;
        sd_bus_message *message;
} BatchCall;

static void batch_replied(const StorageError *err, void *userdata) {
        BatchCall *c = userdata;
        bus_changes_flush(c->manager);
        if (err->code != SE_OK)
                error_reply(c->message, err);
        else
                sd_bus_reply_method_return(c->message, "");
        sd_bus_message_unref(c->message);
        g_free(c);
}

int bus_volumes_batch(sd_bus_message *m, Manager *manager, VolumeOpKind kind, sd_bus_error *error) {
        g_auto(GStrv) paths = NULL;
        int r = sd_bus_message_read_strv(m, &paths);
        if (r < 0)
                return r;
        Options o;
        r = read_options(m, &o, false, "the volumes", error);
        if (r < 0)
                return r;
        size_t n = paths ? g_strv_length(paths) : 0;
        g_autofree Volume **vols = g_new0(Volume *, n + 1);
        for (size_t i = 0; i < n; i++) {
                vols[i] = model_find_volume_by_path(manager, paths[i]);
                if (!vols[i])
                        return error_set(error, SE_NO_SUCH_VOLUME, "No volume at %s", paths[i]);
        }
        /* polkit decides about each volume, with its details, as for the
         * single-volume verbs: a rule about one pool holds for the batch. */
        g_autofree const char **flat = g_new0(const char *, 5 * n + 1);
        g_autofree const char *const **details = g_new0(const char *const *, n + 1);
        for (size_t i = 0; i < n; i++) {
                const char **d = flat + 5 * i;
                d[0] = "pool";
                d[1] = vols[i]->pool->name;
                d[2] = "vid";
                d[3] = vols[i]->spec->vid;
                d[4] = NULL;
                details[i] = d;
        }
        r = auth_check_each(manager, m, ACTION_START_STOP, details, n, o.no_user_interaction, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        if (n == 0)
                return sd_bus_reply_method_return(m, "");
        BatchCall *c = g_new0(BatchCall, 1);
        c->manager = manager;
        c->message = sd_bus_message_ref(m);
        volume_batch_run(manager, kind, vols, n, batch_replied, c);
        return 1;
}

static const sd_bus_vtable volume_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Vid", "s", property_vid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", property_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Vm", "s", property_vm, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Pool", "o", property_pool, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Source", "s", property_source, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SnapOnStart", "b", property_snap_on_start, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("SaveOnStop", "b", property_save_on_stop, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Rw", "b", property_rw, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RevisionsToKeep", "i", property_revisions_to_keep, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Size", "t", property_size, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Usage", "t", property_size, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Revisions", "a(ss)", property_revisions, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IsDirty", "b", property_dirty, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("IsOutdated", "b", property_outdated, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Started", "b", property_started, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Path", "s", property_path, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BlockDevice", "(sssb)", property_block_device, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("KernelsDir", "s", property_kernels_dir, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT, method_start,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT, method_stop,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Verify", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("b", ok), method_verify,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Remove", SD_BUS_ARGS("a{sv}", options), SD_BUS_NO_RESULT, method_remove,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Resize", SD_BUS_ARGS("t", size, "a{sv}", options), SD_BUS_NO_RESULT, method_resize,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Revert", SD_BUS_ARGS("s", revision, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_revert, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRw", SD_BUS_ARGS("b", rw, "a{sv}", options), SD_BUS_NO_RESULT, method_set_rw,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetRevisionsToKeep", SD_BUS_ARGS("i", n, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_set_revisions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ImportBegin", SD_BUS_ARGS("t", size, "a{sv}", options), SD_BUS_RESULT("h", fd, "s", path),
                                method_import_begin, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ImportEnd", SD_BUS_ARGS("b", success, "s", message, "a{sv}", options),
                                SD_BUS_NO_RESULT, method_import_end, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Import", SD_BUS_ARGS("h", fd, "t", size, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_import, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ImportVolume", SD_BUS_ARGS("o", source, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_import_volume, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Export", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("h", fd, "s", path),
                                method_export, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExportEnd", SD_BUS_ARGS("s", path, "a{sv}", options), SD_BUS_NO_RESULT,
                                method_export_end, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("SizeChanged", SD_BUS_ARGS("t", old_size, "t", new_size), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Exported", SD_BUS_ARGS("s", path), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ExportEnded", SD_BUS_ARGS("s", path), 0),
        SD_BUS_VTABLE_END,
};

int bus_volume_register(Manager *m) {
        return sd_bus_add_fallback_vtable(m->bus, NULL, POOLS_PATH, VOLUME_INTERFACE, volume_vtable, find_volume, m);
}

void bus_volume_added(Volume *v) {
        Manager *m = v->pool->manager;
        bus_changes_forget(m, v->object_path);
        if (m->bus)
                sd_bus_emit_interfaces_added(m->bus, v->object_path, VOLUME_INTERFACE, NULL);
}

void bus_volume_removed(Volume *v) {
        Manager *m = v->pool->manager;
        bus_changes_forget(m, v->object_path);
        if (m->bus)
                sd_bus_emit_interfaces_removed(m->bus, v->object_path, VOLUME_INTERFACE, NULL);
}

void bus_volume_changed(Volume *v, const char *const *props) {
        bus_changes_mark(v->pool->manager, v->object_path, VOLUME_INTERFACE, props);
}

void bus_volume_size_changed(Volume *v, uint64_t old_size, uint64_t new_size) {
        sd_bus *bus = v->pool->manager->bus;
        if (bus)
                sd_bus_emit_signal(bus, v->object_path, VOLUME_INTERFACE, "SizeChanged", "tt", old_size, new_size);
}

void bus_volume_exported(Volume *v, const char *path, bool ended) {
        sd_bus *bus = v->pool->manager->bus;
        if (bus)
                sd_bus_emit_signal(bus, v->object_path, VOLUME_INTERFACE, ended ? "ExportEnded" : "Exported", "s",
                                   path);
}
