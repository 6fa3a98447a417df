/* The rules of service/volume-rules.c: which operation each fact refuses,
 * with which error, and that the storage rules wait for a read. */
#include <glib.h>
#include <string.h>

#include "volume-rules.h"

static int fake_revert(void *pool, VolumeSpec *v, const char *rev, StorageError *err) {
        (void) pool, (void) v, (void) rev, (void) err;
        return 0;
}
static int fake_import_begin(void *pool, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        (void) pool, (void) v, (void) size, (void) path, (void) err;
        return 0;
}
static int fake_export(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        (void) pool, (void) v, (void) path, (void) stable, (void) err;
        return 0;
}

/* a driver that can do everything, and one that can do nothing optional */
static const Driver full = { .name = "full", .can_shrink = true, .volume_revert = fake_revert,
                             .volume_import_begin = fake_import_begin, .volume_export = fake_export };
static const Driver bare = { .name = "bare" };

typedef struct Case {
        VolumeSpec spec;
        VolumeOp op;
        VolumeFacts facts;
        VolumeInfo storage;
} Case;

static void case_init(Case *c, VolumeOpKind kind) {
        memset(c, 0, sizeof(*c));
        c->spec = (VolumeSpec) { .vid = "appvms/work/private", .rw = true, .save_on_stop = true, .size = 1024 };
        c->op.kind = kind;
        c->op.spec = &c->spec;
        c->facts.driver = &full;
        c->storage.size = 1024;
}

/* The error code volume_may_run gives (SE_OK: allowed); with_storage: as the
 * worker asks, after reading the storage. */
static StorageErrorCode ask(Case *c, bool with_storage) {
        StorageError e = STORAGE_ERROR_INIT;
        c->facts.storage = with_storage ? &c->storage : NULL;
        int r = volume_may_run(&c->op, &c->facts, &e);
        StorageErrorCode code = e.code;
        g_assert_true((r < 0) == (code != SE_OK));
        if (code != SE_OK) {
                g_assert_nonnull(e.message);
                /* volume-ops.c names the volume: a rule's message need not */
                g_assert_cmpuint(strlen(e.message), >, 10);
        }
        se_clear(&e);
        return code;
}

static void test_remove(void) {
        Case c;
        case_init(&c, VOP_REMOVE);
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
        c.facts.started = true;
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        c.facts.started = false;
        c.facts.exported = true; /* even a stable export: its view lives in the volume's storage */
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        c.facts.removed = true; /* gone wins over busy */
        g_assert_cmpint(ask(&c, false), ==, SE_NO_SUCH_VOLUME);
}

static void test_start(void) {
        Case c;
        case_init(&c, VOP_START);
        c.facts.exported = true; /* a stable export does not hold a Start back */
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
        c.facts.exported_unstable = true;
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        c.facts.exported = c.facts.exported_unstable = false;
        c.facts.import_staged = true;
        g_assert_cmpint(ask(&c, false), ==, SE_IMPORT_IN_PROGRESS);
}

static void test_import_end(void) {
        Case c;
        case_init(&c, VOP_IMPORT_END);
        c.facts.import_staged = true;
        g_assert_cmpint(ask(&c, false), ==, SE_NO_IMPORT_IN_PROGRESS); /* staged by someone else */
        c.facts.import_ours = true;
        c.op.success = true;
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
        c.facts.started = true; /* no commit under a running VM */
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        c.op.success = false; /* discarding is always allowed */
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
}

static void test_import(void) {
        Case c;
        case_init(&c, VOP_IMPORT);
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
        c.storage.dirty = true;
        g_assert_cmpint(ask(&c, false), ==, SE_OK); /* dirty is the storage's to say */
        g_assert_cmpint(ask(&c, true), ==, SE_VOLUME_BUSY);
        c.storage.dirty = false;
        c.facts.started = true;
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        c.facts.started = false;
        c.facts.import_staged = true;
        g_assert_cmpint(ask(&c, false), ==, SE_IMPORT_IN_PROGRESS);
        c.facts.import_staged = false;
        c.facts.driver = &bare;
        g_assert_cmpint(ask(&c, false), ==, SE_NOT_SUPPORTED);
        c.facts.driver = &full;
        c.spec.save_on_stop = false;
        g_assert_cmpint(ask(&c, false), ==, SE_NOT_SUPPORTED);
}

static void test_import_volume(void) {
        Case c;
        case_init(&c, VOP_IMPORT_VOLUME);
        c.facts.source_driver = &bare; /* the source cannot export */
        g_assert_cmpint(ask(&c, false), ==, SE_NOT_SUPPORTED);
        /* a destination that keeps nothing: no data moves, no driver rule applies */
        c.spec.save_on_stop = false;
        c.facts.driver = &bare;
        c.storage.dirty = true;
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
        c.facts.source_gone = true;
        g_assert_cmpint(ask(&c, false), ==, SE_NO_SUCH_VOLUME);
}

static void test_resize(void) {
        Case c;
        case_init(&c, VOP_RESIZE);
        c.op.size = 512;
        g_assert_cmpint(ask(&c, false), ==, SE_OK); /* the size is the storage's to say */
        g_assert_cmpint(ask(&c, true), ==, SE_SHRINK_REFUSED);
        c.op.allow_shrink = true;
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
        c.facts.driver = &bare;
        g_assert_cmpint(ask(&c, true), ==, SE_NOT_SUPPORTED);
        c.op.size = 2048; /* growing: any driver */
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
        c.spec.rw = false;
        g_assert_cmpint(ask(&c, false), ==, SE_READ_ONLY);
        c.spec.rw = true;
        c.facts.exported_unstable = true;
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
}

static void test_revert(void) {
        Case c;
        case_init(&c, VOP_REVERT);
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
        g_assert_cmpint(ask(&c, true), ==, SE_NO_SUCH_REVISION); /* none kept */
        Revision revs[] = { { .id = "1", .timestamp = "2026-01-01T00:00:00Z" } };
        c.storage.revisions = revs;
        c.storage.n_revisions = 1;
        g_assert_cmpint(ask(&c, true), ==, SE_OK); /* the newest */
        c.op.revision = "1";
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
        c.op.revision = "2";
        g_assert_cmpint(ask(&c, true), ==, SE_NO_SUCH_REVISION);
        c.op.revision = NULL;
        c.storage.dirty = true;
        g_assert_cmpint(ask(&c, true), ==, SE_VOLUME_BUSY);
        c.storage.dirty = false;
        c.facts.started = true;
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        c.facts.driver = &bare; /* a driver without revisions says so first */
        g_assert_cmpint(ask(&c, false), ==, SE_NOT_SUPPORTED);
}

static void test_attributes_and_export(void) {
        Case c;
        case_init(&c, VOP_SET_RW);
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
        c.facts.started = true;
        g_assert_cmpint(ask(&c, false), ==, SE_VOLUME_BUSY);
        case_init(&c, VOP_EXPORT);
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
        c.facts.driver = &bare;
        g_assert_cmpint(ask(&c, false), ==, SE_NOT_SUPPORTED);
        c.spec.save_on_stop = false;
        g_assert_cmpint(ask(&c, false), ==, SE_NOT_SUPPORTED);
        case_init(&c, VOP_EXPORT_END);
        g_assert_cmpint(ask(&c, false), ==, SE_INVALID_ARGUMENT); /* not this caller's export */
        c.facts.export_ours = true;
        g_assert_cmpint(ask(&c, false), ==, SE_OK);
        /* what changes nothing is never refused by state */
        case_init(&c, VOP_VERIFY);
        c.facts.started = c.facts.exported = c.facts.exported_unstable = c.facts.import_staged = true;
        g_assert_cmpint(ask(&c, true), ==, SE_OK);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/volume-rules/remove", test_remove);
        g_test_add_func("/volume-rules/start", test_start);
        g_test_add_func("/volume-rules/import-end", test_import_end);
        g_test_add_func("/volume-rules/import", test_import);
        g_test_add_func("/volume-rules/import-volume", test_import_volume);
        g_test_add_func("/volume-rules/resize", test_resize);
        g_test_add_func("/volume-rules/revert", test_revert);
        g_test_add_func("/volume-rules/attributes-and-export", test_attributes_and_export);
        return g_test_run();
}
