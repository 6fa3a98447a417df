/* The state store on a temp dir: round trips, atomic records, torn records
 * skipped without harming the others. */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

typedef struct Loaded {
        GPtrArray *pools;   /* "name driver k=v,..." */
        GPtrArray *volumes; /* VolumeSpec* */
        GPtrArray *started;
} Loaded;

static int cmp_strings(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void on_pool(const char *name, const char *driver, GHashTable *config, void *userdata) {
        Loaded *l = userdata;
        g_autofree gpointer *keys = (gpointer *) g_hash_table_get_keys_as_array(config, NULL);
        GString *s = g_string_new(NULL);
        g_string_printf(s, "%s %s", name, driver);
        g_autoptr(GPtrArray) sorted = g_ptr_array_new();
        for (guint i = 0; i < g_hash_table_size(config); i++)
                g_ptr_array_add(sorted, keys[i]);
        g_ptr_array_sort(sorted, cmp_strings);
        for (guint i = 0; i < sorted->len; i++) {
                const char *k = sorted->pdata[i];
                g_string_append_printf(s, " %s=%s", k, (const char *) g_hash_table_lookup(config, k));
        }
        g_ptr_array_add(l->pools, g_string_free(s, FALSE));
}

static void on_volume(const char *pool, const VolumeSpec *v, bool started, void *userdata) {
        Loaded *l = userdata;
        g_ptr_array_add(l->volumes, volume_spec_copy(v));
        g_ptr_array_add(l->started, GINT_TO_POINTER(started));
}

static int load(const char *dir, Loaded *l) {
        l->pools = g_ptr_array_new_with_free_func(g_free);
        l->volumes = g_ptr_array_new_with_free_func((GDestroyNotify) volume_spec_free);
        l->started = g_ptr_array_new();
        StoreLoader loader = { on_pool, on_volume, l };
        return store_load(dir, &loader);
}

static void loaded_clear(Loaded *l) {
        g_ptr_array_unref(l->pools);
        g_ptr_array_unref(l->volumes);
        g_ptr_array_unref(l->started);
}

static char *make_dir(void) {
        g_autoptr(GError) e = NULL;
        char *d = g_dir_make_tmp("store-XXXXXX", &e);
        g_assert_no_error(e);
        return d;
}

static GHashTable *config_new(const char *dir_path, const char *revisions) {
        GHashTable *c = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        g_hash_table_insert(c, g_strdup("dir_path"), g_strdup(dir_path));
        if (revisions)
                g_hash_table_insert(c, g_strdup("revisions_to_keep"), g_strdup(revisions));
        return c;
}

static VolumeSpec *spec_new(const char *vid) {
        VolumeSpec *v = g_new0(VolumeSpec, 1);
        v->vid = g_strdup(vid);
        v->name = g_strdup("private");
        v->vm = g_strdup("work");
        v->rw = true;
        v->save_on_stop = true;
        v->revisions_to_keep = 1;
        v->size = 2147483648ULL;
        return v;
}

static void rm_rf(const char *dir) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        g_assert_cmpint(system(cmd), ==, 0);
}

static int count_files(const char *dir, const char *substring) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        int n = 0;
        const char *name;
        while (d && (name = g_dir_read_name(d)))
                if (strstr(name, substring))
                        n++;
        return n;
}

static void test_round_trip(void) {
        g_autofree char *dir = make_dir();
        StorageError err = STORAGE_ERROR_INIT;
        g_assert_cmpint(store_init(dir, &err), ==, 0);
        g_autoptr(GHashTable) c1 = config_new("/var/lib/qubes", "1");
        g_autoptr(GHashTable) c2 = config_new("/var/lib/qubes/vm-kernels", NULL);
        g_assert_cmpint(store_save_pool(dir, "varlibqubes", "file", c1, &err), ==, 0);
        g_assert_cmpint(store_save_pool(dir, "linux-kernel", "linux-kernel", c2, &err), ==, 0);

        VolumeSpec *a = spec_new("appvms/work/private");
        VolumeSpec *b = spec_new("appvms/work/root");
        b->snap_on_start = true;
        b->save_on_stop = false;
        b->source = g_strdup("vm-templates/debian/root");
        b->template_vm = false;
        b->revisions_to_keep = 0;
        b->size = 10737418240ULL;
        g_assert_cmpint(store_save_volume(dir, "varlibqubes", a, true, &err), ==, 0);
        g_assert_cmpint(store_save_volume(dir, "varlibqubes", b, false, &err), ==, 0);
        g_assert_cmpint(err.code, ==, SE_OK);

        Loaded l;
        g_assert_cmpint(load(dir, &l), ==, 0);
        g_assert_cmpuint(l.pools->len, ==, 2);
        g_assert_cmpstr(l.pools->pdata[0], ==, "linux-kernel linux-kernel dir_path=/var/lib/qubes/vm-kernels");
        g_assert_cmpstr(l.pools->pdata[1], ==, "varlibqubes file dir_path=/var/lib/qubes revisions_to_keep=1");
        g_assert_cmpuint(l.volumes->len, ==, 2);
        VolumeSpec *la = l.volumes->pdata[0], *lb = l.volumes->pdata[1];
        g_assert_cmpstr(la->vid, ==, "appvms/work/private");
        g_assert_true(la->rw && la->save_on_stop && !la->snap_on_start);
        g_assert_null(la->source);
        g_assert_cmpuint(la->size, ==, 2147483648ULL);
        g_assert_cmpint(la->revisions_to_keep, ==, 1);
        g_assert_true(GPOINTER_TO_INT(l.started->pdata[0]));
        g_assert_cmpstr(lb->vid, ==, "appvms/work/root");
        g_assert_cmpstr(lb->source, ==, "vm-templates/debian/root");
        g_assert_true(lb->snap_on_start && !lb->save_on_stop);
        g_assert_cmpuint(lb->size, ==, 10737418240ULL);
        g_assert_false(GPOINTER_TO_INT(l.started->pdata[1]));
        loaded_clear(&l);

        /* removal */
        g_assert_cmpint(store_remove_volume(dir, "varlibqubes", "appvms/work/private", &err), ==, 0);
        g_assert_cmpint(load(dir, &l), ==, 0);
        g_assert_cmpuint(l.volumes->len, ==, 1);
        loaded_clear(&l);
        g_assert_cmpint(store_remove_volume(dir, "varlibqubes", "appvms/work/root", &err), ==, 0);
        g_assert_cmpint(store_remove_pool(dir, "varlibqubes", &err), ==, 0);
        g_assert_cmpint(load(dir, &l), ==, 0);
        g_assert_cmpuint(l.pools->len, ==, 1);
        loaded_clear(&l);

        volume_spec_free(a);
        volume_spec_free(b);
        rm_rf(dir);
}

static void write_file(const char *path, const char *data) {
        g_autoptr(GError) e = NULL;
        g_file_set_contents(path, data, -1, &e);
        g_assert_no_error(e);
}

static void test_torn_records_skipped(void) {
        g_autofree char *dir = make_dir();
        StorageError err = STORAGE_ERROR_INIT;
        g_assert_cmpint(store_init(dir, &err), ==, 0);
        g_autoptr(GHashTable) c = config_new("/srv/pool", "1");
        g_assert_cmpint(store_save_pool(dir, "good", "file", c, &err), ==, 0);
        VolumeSpec *a = spec_new("appvms/a/private");
        VolumeSpec *b = spec_new("appvms/b/private");
        g_assert_cmpint(store_save_volume(dir, "good", a, false, &err), ==, 0);
        g_assert_cmpint(store_save_volume(dir, "good", b, false, &err), ==, 0);

        /* a record cut in the middle, garbage, a record whose name disagrees
         * with its file, and a temp file of an interrupted write */
        g_autofree char *pools = g_build_filename(dir, "pools", NULL);
        g_autofree char *vols = g_build_filename(dir, "volumes", "good", NULL);
        g_autofree char *bpath = g_build_filename(vols, "appvms%b%private.volume", NULL);
        g_autofree char *content = NULL;
        g_assert_true(g_file_get_contents(bpath, &content, NULL, NULL));
        content[strlen(content) / 2] = '\0';
        write_file(bpath, content);
        g_autofree char *garbage = g_build_filename(pools, "bad.pool", NULL);
        write_file(garbage, "\x01\x02 not a key file [[[");
        g_autofree char *liar = g_build_filename(pools, "other.pool", NULL);
        write_file(liar, "[Pool]\nname=good\ndriver=file\n");
        g_autofree char *tmp = g_build_filename(vols, "appvms%c%private.volume~AbCdEf", NULL);
        write_file(tmp, "[Volume]\n");

        Loaded l;
        for (int i = 0; i < 3; i++)
                g_test_expect_message(G_LOG_DOMAIN, G_LOG_LEVEL_WARNING, "Skipping state record*");
        g_assert_cmpint(load(dir, &l), ==, 3);
        g_test_assert_expected_messages();
        g_assert_cmpuint(l.pools->len, ==, 1);
        g_assert_cmpuint(l.volumes->len, ==, 1);
        g_assert_cmpstr(((VolumeSpec *) l.volumes->pdata[0])->vid, ==, "appvms/a/private");
        loaded_clear(&l);
        g_assert_false(g_file_test(tmp, G_FILE_TEST_EXISTS));

        volume_spec_free(a);
        volume_spec_free(b);
        rm_rf(dir);
}

static void test_atomic_write_leaves_no_temp(void) {
        g_autofree char *dir = make_dir();
        StorageError err = STORAGE_ERROR_INIT;
        g_assert_cmpint(store_init(dir, &err), ==, 0);
        VolumeSpec *a = spec_new("appvms/a/private");
        for (int i = 0; i < 20; i++) {
                a->size = 1048576ULL * (uint64_t) (i + 1);
                g_assert_cmpint(store_save_volume(dir, "p", a, i % 2, &err), ==, 0);
        }
        g_autofree char *vols = g_build_filename(dir, "volumes", "p", NULL);
        g_assert_cmpint(count_files(vols, "~"), ==, 0);
        g_assert_cmpint(count_files(vols, ".volume"), ==, 1);

        volume_spec_free(a);
        rm_rf(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/store/round-trip", test_round_trip);
        g_test_add_func("/store/torn-records-skipped", test_torn_records_skipped);
        g_test_add_func("/store/atomic-write-leaves-no-temp", test_atomic_write_leaves_no_temp);
        return g_test_run();
}
