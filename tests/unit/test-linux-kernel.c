/* Unit tests for the `linux-kernel` driver on a temporary kernels directory. */
#include "driver.h"
#include "test-util.h"

#include <string.h>

extern const Driver driver_linux_kernel;
static const Driver *const drv = &driver_linux_kernel;

typedef struct Fixture {
        char *dir;
        void *pool;
        StorageError err;
} Fixture;

static void open_pool(const char *dir, void **pool, StorageError *err) {
        g_autoptr(GHashTable) config = tu_config_new("dir_path", dir, NULL);
        tu_assert_ok(drv->pool_open(config, pool, err), err);
}

static void fixture_setup(Fixture *fx, gconstpointer data) {
        fx->dir = tu_make_tmpdir();
        fx->err = (StorageError) STORAGE_ERROR_INIT;
        open_pool(fx->dir, &fx->pool, &fx->err);
}

static void fixture_teardown(Fixture *fx, gconstpointer data) {
        drv->pool_free(fx->pool);
        tu_rm_rf(fx->dir);
        g_free(fx->dir);
        se_clear(&fx->err);
}

/* Makes <dir>/<version> with the given files. */
static void add_kernel(Fixture *fx, const char *version, const char *const *files) {
        g_autofree char *kdir = g_build_filename(fx->dir, version, NULL);
        g_assert_cmpint(g_mkdir_with_parents(kdir, 0755), ==, 0);
        for (; *files; files++) {
                g_autofree char *path = g_build_filename(kdir, *files, NULL);
                tu_write_file(path, "k");
        }
}

static const char *const complete[] = { "vmlinuz", "initramfs", "modules.img", NULL };

static VolumeSpec kernel_volume(const char *vid) {
        return (VolumeSpec) { .vid = (char *) vid, .name = "kernel", .vm = "work" };
}

static void test_driver(void) {
        g_assert_true(driver_find("linux-kernel") == &driver_linux_kernel);
        g_assert_cmpstrv(drv->params, ((const char *const[]) { "dir_path", NULL }));
        g_assert_cmpint(drv->max_revisions_to_keep, ==, 0);
        g_assert_false(drv->creates_volumes);
        g_assert_nonnull(drv->pool_scan);
}

static void test_pool_open(void) {
        StorageError err = STORAGE_ERROR_INIT;
        void *pool = NULL;
        g_autoptr(GHashTable) config = tu_config_new(NULL);
        g_assert_cmpint(drv->pool_open(config, &pool, &err), ==, -1);
        tu_assert_error(&err, SE_INVALID_ARGUMENT, "dir_path", NULL);
}

static void test_pool_usage(Fixture *fx, gconstpointer data) {
        PoolUsage u = { .has_data = true, .size = 1 };
        tu_assert_ok(drv->pool_setup(fx->pool, &fx->err), &fx->err);
        tu_assert_ok(drv->pool_usage(fx->pool, &u, &fx->err), &fx->err);
        g_assert_false(u.has_data);
        g_assert_false(u.has_metadata);
        g_assert_cmpuint(u.size, ==, 0);
}

static void test_scan(Fixture *fx, gconstpointer data) {
        add_kernel(fx, "6.1.0-13-amd64", complete);
        add_kernel(fx, "5.15.94-1.fc32", complete);
        add_kernel(fx, "6.6.2-1", (const char *const[]) { NULL });
        g_autofree char *readme = g_build_filename(fx->dir, "README", NULL);
        tu_write_file(readme, "not a kernel");
        g_auto(GStrv) vids = NULL;
        tu_assert_ok(drv->pool_scan(fx->pool, &vids, &fx->err), &fx->err);
        g_assert_cmpstrv(vids, ((const char *const[]) { "5.15.94-1.fc32", "6.1.0-13-amd64", "6.6.2-1", NULL }));
}

static void test_scan_missing_dir(Fixture *fx, gconstpointer data) {
        void *pool = NULL;
        g_autofree char *missing = g_build_filename(fx->dir, "missing", NULL);
        g_auto(GStrv) vids = NULL;
        open_pool(missing, &pool, &fx->err);
        tu_assert_ok(drv->pool_scan(pool, &vids, &fx->err), &fx->err);
        g_assert_cmpstrv(vids, ((const char *const[]) { NULL }));
        drv->pool_free(pool);
}

static void test_init(Fixture *fx, gconstpointer data) {
        VolumeSpec v = kernel_volume("6.1.0");
        v.revisions_to_keep = 1;
        v.snap_on_start = true;
        tu_assert_ok(drv->volume_init(fx->pool, &v, &fx->err), &fx->err);
        g_assert_cmpstr(v.vid, ==, "6.1.0");
        g_assert_cmpint(v.revisions_to_keep, ==, 0);
        g_assert_false(v.snap_on_start);

        VolumeSpec origin = kernel_volume("6.1.0");
        origin.save_on_stop = true;
        g_assert_cmpint(drv->volume_init(fx->pool, &origin, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_NOT_SUPPORTED, "LinuxKernel pool does not support save_on_stop=True", "6.1.0",
                        NULL);

        VolumeSpec rw = kernel_volume("6.1.0");
        rw.rw = true;
        g_assert_cmpint(drv->volume_init(fx->pool, &rw, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_NOT_SUPPORTED, "LinuxModules supports only read-only volumes", "6.1.0", NULL);

        VolumeSpec none = kernel_volume(NULL);
        g_assert_cmpint(drv->volume_init(fx->pool, &none, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_INVALID_ARGUMENT, NULL);
}

static void test_verify(Fixture *fx, gconstpointer data) {
        VolumeSpec v = kernel_volume("6.1.0");
        g_autofree char *vmlinuz = g_build_filename(fx->dir, "6.1.0", "vmlinuz", NULL);
        g_autofree char *initramfs = g_build_filename(fx->dir, "6.1.0", "initramfs", NULL);
        g_assert_cmpint(drv->volume_verify(fx->pool, &v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, "Missing file: ", vmlinuz, NULL);
        add_kernel(fx, "6.1.0", (const char *const[]) { "vmlinuz", NULL });
        g_assert_cmpint(drv->volume_verify(fx->pool, &v, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, "Missing file: ", initramfs, NULL);
        add_kernel(fx, "6.1.0", (const char *const[]) { "initramfs", NULL });
        tu_assert_ok(drv->volume_verify(fx->pool, &v, &fx->err), &fx->err);
}

static void test_query(Fixture *fx, gconstpointer data) {
        VolumeSpec v = kernel_volume("6.1.0");
        VolumeInfo info;
        g_autofree char *kdir = g_build_filename(fx->dir, "6.1.0", NULL);
        g_autofree char *modules = g_build_filename(kdir, "modules.img", NULL);
        add_kernel(fx, "6.1.0", (const char *const[]) { "vmlinuz", "initramfs", NULL });
        tu_assert_ok(drv->volume_query(fx->pool, &v, &info, &fx->err), &fx->err);
        g_assert_cmpstr(info.path, ==, modules);
        g_assert_cmpstr(info.kernels_dir, ==, kdir);
        g_assert_cmpstr(info.bdev_path, ==, ""); /* no modules.img: no disk */
        volume_info_clear(&info);

        tu_write_file(modules, "modules");
        tu_assert_ok(drv->volume_query(fx->pool, &v, &info, &fx->err), &fx->err);
        g_assert_cmpstr(info.bdev_path, ==, modules);
        g_assert_cmpstr(info.bdev_script, ==, "");
        g_assert_cmpstr(info.bdev_devtype, ==, "disk");
        g_assert_false(info.bdev_rw);
        g_assert_cmpuint(info.size, ==, 0);
        g_assert_cmpuint(info.usage, ==, 0);
        g_assert_false(info.dirty);
        g_assert_false(info.outdated);
        g_assert_cmpuint(info.n_revisions, ==, 0);
        volume_info_clear(&info);
}

static void test_export(Fixture *fx, gconstpointer data) {
        VolumeSpec v = kernel_volume("6.1.0");
        g_autofree char *modules = g_build_filename(fx->dir, "6.1.0", "modules.img", NULL);
        g_autofree char *path = NULL;
        bool stable = true;
        g_assert_cmpint(drv->volume_export(fx->pool, &v, &path, &stable, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_MISSING_IMAGE, modules, NULL);
        add_kernel(fx, "6.1.0", complete);
        tu_assert_ok(drv->volume_export(fx->pool, &v, &path, &stable, &fx->err), &fx->err);
        g_assert_cmpstr(path, ==, modules);
        g_assert_false(stable);
        tu_assert_ok(drv->volume_export_end(fx->pool, &v, path, &fx->err), &fx->err);
        g_assert_true(tu_exists(modules));
        g_assert_null(drv->volume_import_begin);
}

/* create, start, stop and remove touch nothing on disk. */
static void test_noops(Fixture *fx, gconstpointer data) {
        VolumeSpec v = kernel_volume("6.1.0");
        g_autofree char *kdir = g_build_filename(fx->dir, "6.1.0", NULL);
        g_autofree char *vmlinuz = g_build_filename(kdir, "vmlinuz", NULL);
        add_kernel(fx, "6.1.0", complete);
        tu_assert_ok(drv->volume_create(fx->pool, &v, &fx->err), &fx->err);
        tu_assert_ok(drv->volume_start(fx->pool, &v, &fx->err), &fx->err);
        tu_assert_ok(drv->volume_stop(fx->pool, &v, &fx->err), &fx->err);
        tu_assert_ok(drv->volume_remove(fx->pool, &v, &fx->err), &fx->err);
        g_assert_true(tu_exists(vmlinuz));
        g_auto(GStrv) vids = NULL;
        tu_assert_ok(drv->pool_scan(fx->pool, &vids, &fx->err), &fx->err);
        g_assert_cmpstrv(vids, ((const char *const[]) { "6.1.0", NULL }));
        g_assert_cmpint(drv->volume_resize(fx->pool, &v, 1024, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_NOT_SUPPORTED, "6.1.0", NULL);
        g_assert_cmpint(drv->volume_revert(fx->pool, &v, NULL, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_NOT_SUPPORTED, "6.1.0", NULL);
}

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/linux-kernel/driver", test_driver);
        g_test_add_func("/linux-kernel/pool/open", test_pool_open);
        ADD("/linux-kernel/pool/usage", test_pool_usage);
        ADD("/linux-kernel/scan", test_scan);
        ADD("/linux-kernel/scan-missing-dir", test_scan_missing_dir);
        ADD("/linux-kernel/init", test_init);
        ADD("/linux-kernel/verify", test_verify);
        ADD("/linux-kernel/query", test_query);
        ADD("/linux-kernel/noops", test_noops);
        ADD("/linux-kernel/export", test_export);
        return g_test_run();
}
