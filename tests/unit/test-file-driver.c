/* Unit tests for the `file` driver on a temporary pool directory: every
 * operation for every volume kind, checked by looking at the files. */
#include "driver.h"
#include "test-util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024 * 1024)

extern const Driver driver_file;
static const Driver *const drv = &driver_file;

typedef struct Fixture {
        char *tmp;
        char *dir; /* the pool directory */
        void *pool;
        StorageError err;
} Fixture;

static GHashTable *pool_config(const char *dir_path) {
        return tu_config_new("dir_path", dir_path, "revisions_to_keep", "1", NULL);
}

static void fixture_setup(Fixture *fx, gconstpointer data) {
        fx->tmp = tu_make_tmpdir();
        fx->dir = g_build_filename(fx->tmp, "pool", NULL);
        fx->err = (StorageError) STORAGE_ERROR_INIT;
        g_autoptr(GHashTable) config = pool_config(fx->dir);
        tu_assert_ok(drv->pool_open(config, &fx->pool, &fx->err), &fx->err);
        tu_assert_ok(drv->pool_setup(fx->pool, &fx->err), &fx->err);
}

static void fixture_teardown(Fixture *fx, gconstpointer data) {
        drv->pool_free(fx->pool);
        tu_rm_rf(fx->tmp);
        g_free(fx->tmp);
        g_free(fx->dir);
        se_clear(&fx->err);
}

typedef enum Kind { VOLATILE, SNAPSHOT, ORIGIN } Kind;

/* A volume of vm as init leaves it; source is the snapshot's source. */
static VolumeSpec *volume(Fixture *fx, const char *vm, const char *name, Kind kind, const VolumeSpec *source) {
        VolumeSpec *v = g_new0(VolumeSpec, 1);
        v->vm = g_strdup(vm);
        v->name = g_strdup(name);
        v->rw = true;
        v->snap_on_start = kind == SNAPSHOT;
        v->save_on_stop = kind == ORIGIN;
        v->revisions_to_keep = 1;
        v->size = MiB;
        if (source) {
                v->source = g_strdup(source->vid);
                v->source_spec = volume_spec_copy(source);
        }
        tu_assert_ok(drv->volume_init(fx->pool, v, &fx->err), &fx->err);
        return v;
}

/* <pool dir>/<vid><suffix> */
static char *file_of(const Fixture *fx, const VolumeSpec *v, const char *suffix) {
        return g_strconcat(fx->dir, "/", v->vid, suffix, NULL);
}

static VolumeInfo query(Fixture *fx, const VolumeSpec *v) {
        VolumeInfo info;
        tu_assert_ok(drv->volume_query(fx->pool, v, &info, &fx->err), &fx->err);
        return info;
}

static void create(Fixture *fx, VolumeSpec *v) {
        tu_assert_ok(drv->volume_create(fx->pool, v, &fx->err), &fx->err);
}

static void start(Fixture *fx, VolumeSpec *v) {
        tu_assert_ok(drv->volume_start(fx->pool, v, &fx->err), &fx->err);
}

static void stop(Fixture *fx, VolumeSpec *v) {
        tu_assert_ok(drv->volume_stop(fx->pool, v, &fx->err), &fx->err);
}

static bool is_dirty(Fixture *fx, const VolumeSpec *v) {
        VolumeInfo info = query(fx, v);
        bool dirty = info.dirty;
        volume_info_clear(&info);
        return dirty;
}

static bool has_byte(const char *path, uint64_t off, unsigned char value) {
        g_autofree char *data = NULL;
        size_t len = 0;
        data = tu_read(path, &len);
        return off < len && (unsigned char) data[off] == value;
}

/* ---- driver and pool ---- */

static void test_driver(void) {
        g_assert_true(driver_find("file") == &driver_file);
        g_assert_cmpstr(drv->name, ==, "file");
        g_assert_cmpstrv(drv->params, ((const char *const[]) { "revisions_to_keep", "dir_path", NULL }));
        g_assert_cmpint(drv->max_revisions_to_keep, ==, 1);
        g_assert_true(drv->creates_volumes);
        g_assert_false(drv->can_shrink);
        g_assert_null(drv->pool_scan);
}

static void test_pool_open(void) {
        StorageError err = STORAGE_ERROR_INIT;
        void *pool = NULL;
        g_autoptr(GHashTable) config = tu_config_new(NULL);
        g_assert_cmpint(drv->pool_open(config, &pool, &err), ==, -1);
        tu_assert_error(&err, SE_INVALID_ARGUMENT, "dir_path", NULL);
        g_hash_table_insert(config, g_strdup("dir_path"), g_strdup("var/lib/qubes"));
        g_assert_cmpint(drv->pool_open(config, &pool, &err), ==, -1);
        tu_assert_error(&err, SE_INVALID_ARGUMENT, "var/lib/qubes", NULL);
        g_hash_table_insert(config, g_strdup("dir_path"), g_strdup("/var//lib/./qubes/"));
        g_hash_table_insert(config, g_strdup("revisions_to_keep"), g_strdup("1"));
        tu_assert_ok(drv->pool_open(config, &pool, &err), &err);
        g_assert_cmpstr(g_hash_table_lookup(config, "dir_path"), ==, "/var/lib/qubes");
        g_assert_cmpstr(g_hash_table_lookup(config, "revisions_to_keep"), ==, "1");
        drv->pool_free(pool);
}

static void test_pool_setup(Fixture *fx, gconstpointer data) {
        g_autofree char *appvms = g_build_filename(fx->dir, "appvms", NULL);
        g_autofree char *templates = g_build_filename(fx->dir, "vm-templates", NULL);
        g_assert_true(g_file_test(appvms, G_FILE_TEST_IS_DIR));
        g_assert_true(g_file_test(templates, G_FILE_TEST_IS_DIR));
        tu_assert_ok(drv->pool_setup(fx->pool, &fx->err), &fx->err);

        void *deep = NULL;
        g_autofree char *deep_dir = g_build_filename(fx->tmp, "no/such/parent", NULL);
        g_autoptr(GHashTable) config = pool_config(deep_dir);
        tu_assert_ok(drv->pool_open(config, &deep, &fx->err), &fx->err);
        g_assert_cmpint(drv->pool_setup(deep, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, deep_dir, NULL);
        drv->pool_free(deep);
}

static void test_pool_usage(Fixture *fx, gconstpointer data) {
        PoolUsage u;
        tu_assert_ok(drv->pool_usage(fx->pool, &u, &fx->err), &fx->err);
        g_assert_true(u.has_data);
        g_assert_false(u.has_metadata);
        g_assert_cmpuint(u.size, >, 0);
        g_assert_cmpuint(u.usage, <=, u.size);

        void *gone = NULL;
        g_autofree char *gone_dir = g_build_filename(fx->tmp, "missing", NULL);
        g_autoptr(GHashTable) config = pool_config(gone_dir);
        tu_assert_ok(drv->pool_open(config, &gone, &fx->err), &fx->err);
        tu_assert_ok(drv->pool_usage(gone, &u, &fx->err), &fx->err);
        g_assert_cmpuint(u.size, ==, 0);
        g_assert_cmpuint(u.usage, ==, 0);
        drv->pool_free(gone);
}

/* ---- init ---- */

static void test_init_defaults(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) priv = volume(fx, "work", "private", ORIGIN, NULL);
        g_autoptr(VolumeSpec) vol = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_assert_cmpstr(priv->vid, ==, "appvms/work/private");
        g_assert_cmpint(priv->revisions_to_keep, ==, 1);
        g_assert_cmpint(vol->revisions_to_keep, ==, 0);

        VolumeSpec t = { .vm = "fedora", .name = "root", .template_vm = true, .save_on_stop = true, .rw = true };
        tu_assert_ok(drv->volume_init(fx->pool, &t, &fx->err), &fx->err);
        g_assert_cmpstr(t.vid, ==, "vm-templates/fedora/root");
        g_autoptr(VolumeSpec) snap = volume(fx, "work", "root", SNAPSHOT, &t);
        g_assert_cmpint(snap->revisions_to_keep, ==, 0);
        g_free(t.vid);

        VolumeSpec given = { .vid = "vm-templates/other/vol", .vm = "work", .name = "private" };
        tu_assert_ok(drv->volume_init(fx->pool, &given, &fx->err), &fx->err);
        g_assert_cmpstr(given.vid, ==, "vm-templates/other/vol");
}

static void test_init_refusals(Fixture *fx, gconstpointer data) {
        VolumeSpec both = { .vm = "work", .name = "root", .snap_on_start = true, .save_on_stop = true,
                            .source = "vm-templates/fedora/root" };
        g_assert_cmpint(drv->volume_init(fx->pool, &both, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_NOT_SUPPORTED, "snap_on_start + save_on_stop not supported by file driver",
                        "appvms/work/root", NULL);
        g_assert_null(both.vid);

        VolumeSpec outside = { .vid = "custom/dir/vol", .vm = "work", .name = "private" };
        g_assert_cmpint(drv->volume_init(fx->pool, &outside, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_INVALID_ARGUMENT, "custom/dir/vol", NULL);
        VolumeSpec clash = { .vm = "work", .name = "private-cow" };
        g_assert_cmpint(drv->volume_init(fx->pool, &clash, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_INVALID_ARGUMENT, "appvms/work/private-cow", "appvms/work/private", NULL);
        g_free(clash.vid);

        VolumeSpec nameless = { .vm = "work" };
        g_assert_cmpint(drv->volume_init(fx->pool, &nameless, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_INVALID_ARGUMENT, NULL);
}

/* ---- create ---- */

static void test_create(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) priv = volume(fx, "work", "private", ORIGIN, NULL);
        g_autoptr(VolumeSpec) vol = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_autoptr(VolumeSpec) snap = volume(fx, "work", "root", SNAPSHOT, priv);
        g_autofree char *img = file_of(fx, priv, ".img");
        g_autofree char *vol_img = file_of(fx, vol, ".img");
        g_autofree char *snap_img = file_of(fx, snap, ".img");
        g_autofree char *stale = file_of(fx, priv, ".img~a1b2c3");
        g_autofree char *vm_dir = g_build_filename(fx->dir, "appvms/work", NULL);

        priv->size = 2 * MiB;
        g_assert_cmpint(g_mkdir_with_parents(vm_dir, 0755), ==, 0);
        tu_write_file(stale, "crash leftover");
        create(fx, priv);
        g_assert_cmpuint(tu_size(img), ==, 2 * MiB);
        g_assert_cmpuint(tu_allocated(img), ==, 0);
        g_assert_false(tu_exists(stale));

        /* the service creates only vids it has no volume for: files of the
         * vid are a crash's leftovers, replaced by the new volume */
        tu_fill(img, 0, 4096, 0x55);
        g_autofree char *old_cow = file_of(fx, priv, "-cow.img.old");
        tu_write_file(old_cow, "leftover revision");
        create(fx, priv);
        g_assert_false(has_byte(img, 0, 0x55));
        g_assert_cmpuint(tu_allocated(img), ==, 0);
        g_assert_false(tu_exists(old_cow));

        create(fx, vol);
        g_assert_cmpuint(tu_size(vol_img), ==, MiB);
        create(fx, snap);
        g_assert_false(tu_exists(snap_img));
        g_assert_false(tu_has_temp_files(vm_dir));

        g_autoptr(VolumeSpec) empty = volume(fx, "work", "empty", ORIGIN, NULL);
        empty->size = 0;
        g_assert_cmpint(drv->volume_create(fx->pool, empty, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_INVALID_ARGUMENT, "appvms/work/empty", NULL);
}

/* A failed create leaves the disk as it was. */
static void test_create_failure(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        g_autofree char *vm_dir = g_build_filename(fx->dir, "appvms/work", NULL);
        g_autofree char *appvms = g_build_filename(fx->dir, "appvms", NULL);
        v->size = (uint64_t) INT64_MAX + 1;
        g_assert_cmpint(drv->volume_create(fx->pool, v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, img, NULL);
        g_assert_false(tu_exists(vm_dir));
        g_assert_false(tu_has_temp_files(appvms));
}

/* ---- origin ---- */

static void test_origin_no_revision(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        g_autofree char *old = file_of(fx, v, "-cow.img.old");
        v->revisions_to_keep = 0;
        create(fx, v);
        start(fx, v);
        g_assert_cmpuint(tu_size(cow), ==, MiB);
        g_assert_false(is_dirty(fx, v));

        tu_fill(cow, 0, 4096, 0x77); /* the VM wrote: the old data went to cow */
        g_assert_true(is_dirty(fx, v));
        stop(fx, v);
        g_assert_false(tu_exists(old));
        g_assert_cmpuint(tu_allocated(cow), ==, 0);
        g_assert_cmpuint(tu_size(cow), ==, MiB);
        g_assert_false(is_dirty(fx, v));
        VolumeInfo info = query(fx, v);
        g_assert_cmpuint(info.n_revisions, ==, 0);
        volume_info_clear(&info);
        g_assert_true(tu_exists(img));
}

static void assert_revision_old(Fixture *fx, const VolumeSpec *v, const char *old) {
        VolumeInfo info = query(fx, v);
        struct stat st;
        g_assert_cmpint(stat(old, &st), ==, 0);
        char expected[32];
        strftime(expected, sizeof(expected), "%Y-%m-%dT%H:%M:%SZ", gmtime(&st.st_ctime));
        g_assert_cmpuint(info.n_revisions, ==, 1);
        g_assert_cmpstr(info.revisions[0].id, ==, "old");
        g_assert_cmpstr(info.revisions[0].timestamp, ==, expected);
        volume_info_clear(&info);
}

static void test_origin_one_revision(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        g_autofree char *old = file_of(fx, v, "-cow.img.old");
        create(fx, v);
        for (unsigned char round = 1; round <= 2; round++) {
                start(fx, v);
                tu_fill(cow, 0, 4096, round);
                stop(fx, v);
                g_assert_true(has_byte(old, 0, round));
                g_assert_cmpuint(tu_allocated(cow), ==, 0);
                assert_revision_old(fx, v, old);
        }
        v->revisions_to_keep = 0; /* the revision kept so far goes at the next stop */
        start(fx, v);
        g_assert_true(tu_exists(old));
        stop(fx, v);
        g_assert_false(tu_exists(old));
}

static void test_origin_start_recovers(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        g_autofree char *tmp = file_of(fx, v, ".img~x1y2z3");
        create(fx, v);
        start(fx, v);
        tu_fill(cow, 0, 4096, 0x42);
        g_autofree char *cow_tmp = file_of(fx, v, "-cow.img~s1s2s3");
        g_autofree char *import = file_of(fx, v, "-import.img");
        tu_write_file(tmp, "crash leftover");
        tu_write_file(cow_tmp, "a Stop killed while rotating the cow");
        tu_write_file(import, "an import killed before its end");
        /* Crash: no stop. The next start keeps the running data. */
        start(fx, v);
        g_assert_true(has_byte(cow, 0, 0x42));
        g_assert_true(is_dirty(fx, v));
        g_assert_false(tu_exists(tmp));
        /* a snapshot makes its source's CoW file without a temporary name,
         * so every temporary file of the origin's names is a leftover */
        g_assert_false(tu_exists(cow_tmp));
        g_assert_false(tu_exists(import));
}

static void test_origin_missing_image(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        g_assert_cmpint(drv->volume_verify(fx->pool, v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, "Missing image file: ", img, NULL);
        g_assert_cmpint(drv->volume_start(fx->pool, v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, "Missing image file: ", img, NULL);
        g_assert_false(tu_exists(cow));
}

static void test_origin_read_only_stop(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        v->rw = false;
        create(fx, v);
        start(fx, v);
        tu_fill(cow, 0, 4096, 0x42);
        g_assert_cmpint(drv->volume_stop(fx->pool, v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_READ_ONLY, "appvms/work/private", NULL);
        g_assert_true(has_byte(cow, 0, 0x42));
}

/* ---- snapshot ---- */

static void test_snapshot(Fixture *fx, gconstpointer data) {
        VolumeSpec t = { .vm = "fedora", .name = "root", .template_vm = true, .save_on_stop = true, .rw = true,
                         .size = 4 * MiB };
        tu_assert_ok(drv->volume_init(fx->pool, &t, &fx->err), &fx->err);
        create(fx, &t);
        g_autoptr(VolumeSpec) v = volume(fx, "work", "root", SNAPSHOT, &t);
        g_autofree char *src_img = file_of(fx, &t, ".img");
        g_autofree char *src_cow = file_of(fx, &t, "-cow.img");
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        g_autofree char *vm_dir = g_path_get_dirname(cow);
        g_assert_cmpint(g_mkdir_with_parents(vm_dir, 0755), ==, 0);

        tu_fill(cow, 0, 4096, 0x13); /* left by a crash */
        start(fx, v);
        g_assert_cmpuint(tu_size(cow), ==, 4 * MiB);
        g_assert_cmpuint(tu_allocated(cow), ==, 0);
        g_assert_cmpuint(tu_size(src_cow), ==, 4 * MiB);

        tu_fill(cow, 0, 8192, 0x14);
        VolumeInfo info = query(fx, v);
        g_autofree char *bdev = g_strjoin(":", src_img, src_cow, cow, NULL);
        g_assert_cmpstr(info.path, ==, src_img);
        g_assert_cmpstr(info.bdev_path, ==, bdev);
        g_assert_cmpstr(info.bdev_script, ==, "block-snapshot");
        g_assert_cmpuint(info.size, ==, 4 * MiB);
        g_assert_cmpuint(info.usage, ==, tu_allocated(cow));
        g_assert_false(info.dirty);
        volume_info_clear(&info);

        stop(fx, v);
        g_assert_false(tu_exists(cow));
        g_assert_true(tu_exists(src_cow));
        tu_assert_ok(drv->volume_verify(fx->pool, v, &fx->err), &fx->err);

        g_assert_cmpint(unlink(src_img), ==, 0);
        g_assert_cmpint(drv->volume_verify(fx->pool, v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, src_img, v->vid, NULL);
        g_assert_cmpint(drv->volume_start(fx->pool, v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, src_img, v->vid, NULL);
        g_free(t.vid);
}

static void test_snapshot_remove_keeps_source(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) t = volume(fx, "fedora", "root", ORIGIN, NULL);
        g_autoptr(VolumeSpec) v = volume(fx, "work", "root", SNAPSHOT, t);
        g_autofree char *src_img = file_of(fx, t, ".img");
        g_autofree char *src_cow = file_of(fx, t, "-cow.img");
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        create(fx, t);
        create(fx, v);
        start(fx, v);
        tu_assert_ok(drv->volume_remove(fx->pool, v, &fx->err), &fx->err);
        g_assert_false(tu_exists(cow));
        g_assert_true(tu_exists(src_img));
        g_assert_true(tu_exists(src_cow));
}

/* ---- volatile ---- */

static void test_volatile(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        create(fx, v);
        tu_fill(img, 0, 4096, 0x99);
        start(fx, v);
        g_assert_cmpuint(tu_size(img), ==, MiB);
        g_assert_cmpuint(tu_allocated(img), ==, 0); /* reset: a fresh image */

        tu_fill(img, 0, 4096, 0x99);
        g_assert_cmpint(truncate(img, 3 * MiB), ==, 0);
        stop(fx, v);
        g_assert_false(tu_exists(img));
        g_assert_cmpuint(v->size, ==, 3 * MiB);
        tu_assert_ok(drv->volume_verify(fx->pool, v, &fx->err), &fx->err);

        VolumeInfo info = query(fx, v);
        g_assert_cmpuint(info.size, ==, 3 * MiB);
        g_assert_cmpuint(info.usage, ==, 0);
        g_assert_cmpstr(info.path, ==, img);
        g_assert_cmpstr(info.bdev_path, ==, img);
        g_assert_cmpstr(info.bdev_script, ==, "");
        g_assert_false(info.dirty);
        volume_info_clear(&info);

        start(fx, v);
        g_assert_cmpuint(tu_size(img), ==, 3 * MiB);
}

/* ---- resize ---- */

static void test_resize(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        create(fx, v);
        tu_fill(img, 0, 4096, 0x21);
        tu_assert_ok(drv->volume_resize(fx->pool, v, 5 * MiB, &fx->err), &fx->err);
        g_assert_cmpuint(tu_size(img), ==, 5 * MiB);
        g_assert_cmpuint(v->size, ==, 5 * MiB);
        g_assert_true(has_byte(img, 0, 0x21));
        VolumeInfo info = query(fx, v);
        g_assert_cmpuint(info.size, ==, 5 * MiB);
        volume_info_clear(&info);
}

static void test_resize_missing_image(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) vol = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_autoptr(VolumeSpec) priv = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *vol_img = file_of(fx, vol, ".img");
        g_autofree char *priv_img = file_of(fx, priv, ".img");
        tu_assert_ok(drv->volume_resize(fx->pool, vol, 7 * MiB, &fx->err), &fx->err);
        tu_assert_ok(drv->volume_resize(fx->pool, priv, 7 * MiB, &fx->err), &fx->err);
        g_assert_false(tu_exists(vol_img));
        g_assert_false(tu_exists(priv_img));
        g_assert_cmpuint(vol->size, ==, 7 * MiB);
        VolumeInfo info = query(fx, vol);
        g_assert_cmpuint(info.size, ==, 7 * MiB);
        volume_info_clear(&info);
        start(fx, vol);
        g_assert_cmpuint(tu_size(vol_img), ==, 7 * MiB);
}

static char *run(const char *cmd) {
        g_autofree char *out = NULL;
        int status = -1;
        if (!g_spawn_command_line_sync(cmd, &out, NULL, &status, NULL) || !g_spawn_check_wait_status(status, NULL))
                return NULL;
        return g_strdup(g_strstrip(out));
}

static uint64_t loop_size(const char *dev) {
        g_autofree char *file = g_strdup_printf("/sys/block/%s/size", dev + strlen("/dev/"));
        g_autofree char *sectors = tu_read(file, NULL);
        return g_ascii_strtoull(sectors, NULL, 10) * 512;
}

/* A running volatile volume: its loop device sees the new size at once. */
static void test_resize_loop_device(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        create(fx, v);
        start(fx, v);
        g_autofree char *cmd = g_strdup_printf("losetup -f --show %s", img);
        g_autofree char *dev = geteuid() == 0 ? run(cmd) : NULL;
        if (!dev || !g_str_has_prefix(dev, "/dev/loop")) {
                g_error("this test needs a loop device: run as root with losetup (util-linux)");
        }
        g_assert_cmpuint(loop_size(dev), ==, MiB);
        int r = drv->volume_resize(fx->pool, v, 6 * MiB, &fx->err);
        uint64_t seen = loop_size(dev);
        g_autofree char *detach = g_strdup_printf("losetup -d %s", dev);
        g_autofree char *ignored = run(detach);
        tu_assert_ok(r, &fx->err);
        g_assert_cmpuint(seen, ==, 6 * MiB);
}

/* ---- import and export ---- */

static char *import_begin(Fixture *fx, VolumeSpec *v, uint64_t size) {
        char *path = NULL;
        tu_assert_ok(drv->volume_import_begin(fx->pool, v, size, &path, &fx->err), &fx->err);
        return path;
}

static void test_import(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        g_autofree char *staged = file_of(fx, v, "-import.img");
        create(fx, v);
        tu_fill(img, 0, 4096, 0x01);

        g_autofree char *path = import_begin(fx, v, 2 * MiB);
        g_assert_cmpstr(path, ==, staged);
        g_assert_cmpuint(tu_size(staged), ==, 2 * MiB);
        g_assert_cmpuint(tu_size(img), ==, MiB); /* untouched until the end */
        tu_fill(staged, MiB, 4096, 0x02);
        tu_assert_ok(drv->volume_import_end(fx->pool, v, true, false, &fx->err), &fx->err);
        g_assert_false(tu_exists(staged));
        g_assert_cmpuint(tu_size(img), ==, 2 * MiB);
        g_assert_cmpuint(v->size, ==, 2 * MiB);
        g_assert_true(has_byte(img, MiB, 0x02));
        g_assert_false(has_byte(img, 0, 0x01));

        g_autofree char *again = import_begin(fx, v, 0); /* 0: the current size */
        g_assert_cmpuint(tu_size(staged), ==, 2 * MiB);
        tu_fill(staged, 0, 4096, 0x03);
        tu_assert_ok(drv->volume_import_end(fx->pool, v, false, false, &fx->err), &fx->err);
        g_assert_false(tu_exists(staged));
        g_assert_true(has_byte(img, MiB, 0x02));

        g_assert_cmpint(drv->volume_import_end(fx->pool, v, true, false, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "appvms/work/private", NULL);
        g_assert_null(drv->volume_import_clone);
}

static void test_export(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) t = volume(fx, "fedora", "root", ORIGIN, NULL);
        g_autoptr(VolumeSpec) v = volume(fx, "work", "root", SNAPSHOT, t);
        g_autofree char *img = file_of(fx, t, ".img");
        g_autofree char *path = NULL, *snap_path = NULL;
        bool stable = true;
        g_assert_cmpint(drv->volume_export(fx->pool, t, &path, &stable, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, img, NULL);
        create(fx, t);
        tu_assert_ok(drv->volume_export(fx->pool, t, &path, &stable, &fx->err), &fx->err);
        g_assert_cmpstr(path, ==, img);
        g_assert_false(stable);
        tu_assert_ok(drv->volume_export(fx->pool, v, &snap_path, &stable, &fx->err), &fx->err);
        g_assert_cmpstr(snap_path, ==, img);
        tu_assert_ok(drv->volume_export_end(fx->pool, t, path, &fx->err), &fx->err);
        g_assert_true(tu_exists(img));
}

/* ---- usage, query, revert, remove ---- */

static void test_usage(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) priv = volume(fx, "work", "private", ORIGIN, NULL);
        g_autoptr(VolumeSpec) vol = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_autoptr(VolumeSpec) snap = volume(fx, "work", "root", SNAPSHOT, priv);
        g_autofree char *img = file_of(fx, priv, ".img");
        g_autofree char *cow = file_of(fx, priv, "-cow.img");
        g_autofree char *vol_img = file_of(fx, vol, ".img");
        g_autofree char *snap_cow = file_of(fx, snap, "-cow.img");
        create(fx, priv);
        create(fx, vol);
        start(fx, priv);
        start(fx, vol);
        start(fx, snap);
        tu_fill(img, 0, 65536, 1);
        tu_fill(cow, 0, 131072, 2);
        tu_fill(vol_img, 0, 196608, 3);
        tu_fill(snap_cow, 0, 262144, 4);
        VolumeInfo a = query(fx, priv), b = query(fx, vol), c = query(fx, snap);
        g_assert_cmpuint(a.usage, ==, tu_allocated(img) + tu_allocated(cow));
        g_assert_cmpuint(b.usage, ==, tu_allocated(vol_img));
        g_assert_cmpuint(c.usage, ==, tu_allocated(snap_cow));
        g_assert_cmpuint(a.usage, >=, 65536 + 131072);
        volume_info_clear(&a);
        volume_info_clear(&b);
        volume_info_clear(&c);
}

static void test_query_origin(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_autofree char *img = file_of(fx, v, ".img");
        g_autofree char *cow = file_of(fx, v, "-cow.img");
        VolumeInfo none = query(fx, v); /* nothing on disk yet */
        g_assert_cmpuint(none.size, ==, MiB);
        g_assert_cmpuint(none.usage, ==, 0);
        volume_info_clear(&none);

        create(fx, v);
        start(fx, v);
        g_assert_cmpint(truncate(img, 9 * MiB), ==, 0); /* the storage wins */
        tu_fill(cow, 0, 4096, 1);
        VolumeInfo info = query(fx, v);
        g_autofree char *bdev = g_strjoin(":", img, cow, NULL);
        g_assert_cmpuint(info.size, ==, 9 * MiB);
        g_assert_cmpuint(info.usage, ==, tu_allocated(img) + tu_allocated(cow));
        g_assert_true(info.dirty);
        g_assert_false(info.outdated);
        g_assert_cmpstr(info.path, ==, img);
        g_assert_cmpstr(info.bdev_path, ==, bdev);
        g_assert_cmpstr(info.bdev_script, ==, "block-origin");
        g_assert_cmpstr(info.bdev_devtype, ==, "disk");
        g_assert_true(info.bdev_rw);
        g_assert_cmpstr(info.kernels_dir, ==, "");
        g_assert_cmpuint(info.n_revisions, ==, 0);
        volume_info_clear(&info);

        v->rw = false;
        info = query(fx, v);
        g_assert_false(info.bdev_rw);
        volume_info_clear(&info);
}

static void test_query_snapshot_without_source(Fixture *fx, gconstpointer data) {
        VolumeSpec v = { .vid = "appvms/work/root", .snap_on_start = true, .size = MiB };
        VolumeInfo info;
        g_assert_cmpint(drv->volume_query(fx->pool, &v, &info, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "appvms/work/root", NULL);
        g_assert_nonnull(info.path);
        g_assert_nonnull(info.bdev_path);
        g_assert_nonnull(info.bdev_script);
        g_assert_nonnull(info.bdev_devtype);
        g_assert_nonnull(info.kernels_dir);
        volume_info_clear(&info);
}

static void test_revert(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) v = volume(fx, "work", "private", ORIGIN, NULL);
        g_assert_cmpint(drv->volume_revert(fx->pool, v, "old", &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_NOT_SUPPORTED, "appvms/work/private", NULL);
}

static void test_remove(Fixture *fx, gconstpointer data) {
        g_autoptr(VolumeSpec) priv = volume(fx, "work", "private", ORIGIN, NULL);
        g_autoptr(VolumeSpec) vol = volume(fx, "work", "volatile", VOLATILE, NULL);
        g_autofree char *vm_dir = g_build_filename(fx->dir, "appvms/work", NULL);
        const char *suffixes[] = { ".img", "-cow.img", "-cow.img.old", "-import.img", ".img~abc123",
                                   "-cow.img~abc123" };
        create(fx, priv);
        create(fx, vol);
        for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
                g_autofree char *p = file_of(fx, priv, suffixes[i]);
                tu_write_file(p, "x");
        }
        tu_assert_ok(drv->volume_remove(fx->pool, priv, &fx->err), &fx->err);
        for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
                g_autofree char *p = file_of(fx, priv, suffixes[i]);
                g_assert_false(tu_exists(p));
        }
        g_assert_true(g_file_test(vm_dir, G_FILE_TEST_IS_DIR)); /* volatile.img is still there */
        tu_assert_ok(drv->volume_remove(fx->pool, vol, &fx->err), &fx->err);
        g_assert_false(tu_exists(vm_dir));
        tu_assert_ok(drv->volume_remove(fx->pool, vol, &fx->err), &fx->err); /* again: nothing to do */
}

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv) {
        g_unsetenv("QUBES_STORAGED_TEST_FICLONE_ERRNO");
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/file/driver", test_driver);
        g_test_add_func("/file/pool/open", test_pool_open);
        ADD("/file/pool/setup", test_pool_setup);
        ADD("/file/pool/usage", test_pool_usage);
        ADD("/file/init/defaults", test_init_defaults);
        ADD("/file/init/refusals", test_init_refusals);
        ADD("/file/create", test_create);
        ADD("/file/create-failure", test_create_failure);
        ADD("/file/origin/no-revision", test_origin_no_revision);
        ADD("/file/origin/one-revision", test_origin_one_revision);
        ADD("/file/origin/start-recovers", test_origin_start_recovers);
        ADD("/file/origin/missing-image", test_origin_missing_image);
        ADD("/file/origin/read-only-stop", test_origin_read_only_stop);
        ADD("/file/snapshot/cycle", test_snapshot);
        ADD("/file/snapshot/remove-keeps-source", test_snapshot_remove_keeps_source);
        ADD("/file/volatile", test_volatile);
        ADD("/file/resize/grow", test_resize);
        ADD("/file/resize/missing-image", test_resize_missing_image);
        ADD("/file/resize/loop-device", test_resize_loop_device);
        ADD("/file/import", test_import);
        ADD("/file/export", test_export);
        ADD("/file/usage", test_usage);
        ADD("/file/query/origin", test_query_origin);
        ADD("/file/query/snapshot-without-source", test_query_snapshot_without_source);
        ADD("/file/revert", test_revert);
        ADD("/file/remove", test_remove);
        return g_test_run();
}
