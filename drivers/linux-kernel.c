/* The `linux-kernel` driver (docs/drivers.md, "linux-kernel"): every sub-directory of the
 * pool directory is one kernel (vid = its name) with vmlinuz, initramfs and
 * optionally modules.img. Volumes are read-only, keep no revisions and have
 * no size; nothing is ever created or removed on disk.
 */
#include "driver.h"
#include "fileops.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

typedef struct KernelPool {
        char *dir;
} KernelPool;

static int kernel_pool_open(GHashTable *config, void **pool, StorageError *err) {
        g_autofree char *dir = NULL;
        if (fo_config_dir_path(config, &dir, err) < 0)
                return -1;
        KernelPool *p = g_new0(KernelPool, 1);
        p->dir = g_steal_pointer(&dir);
        *pool = p;
        return 0;
}

static void kernel_pool_free(void *pool) {
        KernelPool *p = pool;
        if (!p)
                return;
        g_free(p->dir);
        g_free(p);
}

static int kernel_pool_setup(void *pool, StorageError *err) {
        return 0;
}

static int kernel_pool_usage(void *pool, PoolUsage *out, StorageError *err) {
        *out = (PoolUsage) { .has_data = false };
        return 0;
}

static bool is_kernel_dir(const KernelPool *p, const char *name) {
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        g_autofree char *path = g_build_filename(p->dir, name, NULL);
        return g_file_test(path, G_FILE_TEST_IS_DIR);
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A missing pool directory holds no kernels. */
static int list_kernel_dirs(const KernelPool *p, GPtrArray *found, StorageError *err) {
        DIR *d = opendir(p->dir);
        if (!d)
                return errno == ENOENT ? 0 : se_errno(err, errno, "Cannot list kernels in %s", p->dir);
        for (struct dirent *e; (e = readdir(d));)
                if (is_kernel_dir(p, e->d_name))
                        g_ptr_array_add(found, g_strdup(e->d_name));
        closedir(d);
        return 0;
}

static int kernel_pool_scan(void *pool, char ***vids, StorageError *err) {
        g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
        if (list_kernel_dirs(pool, found, err) < 0)
                return -1;
        g_ptr_array_sort(found, compare_names);
        g_ptr_array_add(found, NULL);
        *vids = (char **) g_ptr_array_free(g_steal_pointer(&found), FALSE);
        return 0;
}

static int kernel_volume_init(void *pool, VolumeSpec *v, StorageError *err) {
        if (!v->vid || !*v->vid)
                return se_set(err, SE_INVALID_ARGUMENT, "A linux-kernel volume needs a vid (the kernel version)");
        if (v->save_on_stop)
                return se_set(err, SE_NOT_SUPPORTED, "LinuxKernel pool does not support save_on_stop=True (volume %s)",
                              v->vid);
        if (v->rw)
                return se_set(err, SE_NOT_SUPPORTED, "LinuxModules supports only read-only volumes (volume %s)", v->vid);
        if (!v->source)
                v->snap_on_start = false;
        v->revisions_to_keep = 0;
        return 0;
}

static int kernel_volume_noop(void *pool, VolumeSpec *v, StorageError *err) {
        return 0;
}

static char *kernel_file(const KernelPool *p, const VolumeSpec *v, const char *name) {
        return g_build_filename(p->dir, v->vid, name, NULL);
}

static int require_file(const KernelPool *p, const VolumeSpec *v, const char *name, StorageError *err) {
        g_autofree char *path = kernel_file(p, v, name);
        struct stat st;
        int r = fo_stat(path, &st, err);
        if (r == 0)
                return se_set(err, SE_MISSING_IMAGE, "Missing file: %s (volume %s)", path, v->vid);
        return r < 0 ? -1 : 0;
}

static int kernel_volume_verify(void *pool, VolumeSpec *v, StorageError *err) {
        if (require_file(pool, v, "vmlinuz", err) < 0 || require_file(pool, v, "initramfs", err) < 0)
                return -1;
        return 0;
}

static int kernel_volume_resize(void *pool, VolumeSpec *v, uint64_t size, StorageError *err) {
        return se_set(err, SE_NOT_SUPPORTED, "Volume %s: linux-kernel volumes cannot be resized", v->vid);
}

static int kernel_volume_revert(void *pool, VolumeSpec *v, const char *rev, StorageError *err) {
        return se_set(err, SE_NOT_SUPPORTED, "Volume %s: linux-kernel volumes have no revisions", v->vid);
}

/* The VM gets the modules disk only when modules.img exists. */
static int kernel_volume_query(void *pool, const VolumeSpec *v, VolumeInfo *out, StorageError *err) {
        KernelPool *p = pool;
        struct stat st;
        *out = (VolumeInfo) { 0 };
        out->path = kernel_file(p, v, "modules.img");
        out->kernels_dir = g_build_filename(p->dir, v->vid, NULL);
        int r = fo_stat(out->path, &st, err);
        out->bdev_path = g_strdup(r > 0 ? out->path : "");
        out->bdev_devtype = g_strdup("disk");
        out->bdev_rw = false;
        volume_info_fill_defaults(out);
        return r < 0 ? -1 : 0;
}

/* The modules image, which never changes through this service. */
static int kernel_volume_export(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        if (require_file(pool, v, "modules.img", err) < 0)
                return -1;
        *path = kernel_file(pool, v, "modules.img");
        *stable = false;
        return 0;
}

static int kernel_volume_export_end(void *pool, VolumeSpec *v, const char *path, StorageError *err) {
        return 0;
}

static const char *const kernel_params[] = { "dir_path", NULL };

const Driver driver_linux_kernel = {
        .name = "linux-kernel",
        .params = kernel_params,
        .max_revisions_to_keep = 0,
        .creates_volumes = false,
        .can_shrink = false,
        .pool_open = kernel_pool_open,
        .pool_free = kernel_pool_free,
        .pool_setup = kernel_pool_setup,
        .pool_usage = kernel_pool_usage,
        .pool_scan = kernel_pool_scan,
        .volume_init = kernel_volume_init,
        .volume_create = kernel_volume_noop,
        .volume_remove = kernel_volume_noop,
        .volume_start = kernel_volume_noop,
        .volume_stop = kernel_volume_noop,
        .volume_verify = kernel_volume_verify,
        .volume_resize = kernel_volume_resize,
        .volume_revert = kernel_volume_revert,
        .volume_query = kernel_volume_query,
        .volume_import_begin = NULL,
        .volume_import_end = NULL,
        .volume_import_clone = NULL,
        .volume_export = kernel_volume_export,
        .volume_export_end = kernel_volume_export_end,
};
