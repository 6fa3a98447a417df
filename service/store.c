#include "store.h"

#include "fileops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POOL_GROUP "Pool"
#define CONFIG_GROUP "Config"
#define VOLUME_GROUP "Volume"

/* Records are written with the shared crash-safe file primitives. */
static int write_record(const char *dir, const char *name, const char *data, size_t len, StorageError *err) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        return fo_atomic_write(path, data, len, err);
}

static int remove_record(const char *dir, const char *name, StorageError *err) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        return fo_remove(path, err);
}

/* vids contain '/', never '%': the mapping to a file name is one-to-one.
 * Names too long for the filesystem (vids go up to 255 characters) become
 * the vid's SHA-256; the record holds the vid either way. */
#define MAX_RECORD_NAME 200

static char *vid_to_file(const char *vid) {
        if (strlen(vid) > MAX_RECORD_NAME) {
                g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, vid, -1);
                return g_strconcat("sha256-", hash, ".volume", NULL);
        }
        g_autofree char *s = g_strdup(vid);
        g_strdelimit(s, "/", '%');
        return g_strconcat(s, ".volume", NULL);
}

static char *pool_volume_dir(const char *dir, const char *pool) {
        return g_build_filename(dir, "volumes", pool, NULL);
}

int store_init(const char *dir, StorageError *err) {
        g_autofree char *pools = g_build_filename(dir, "pools", NULL);
        g_autofree char *volumes = g_build_filename(dir, "volumes", NULL);
        if (g_mkdir_with_parents(dir, 0755) < 0)
                return se_errno(err, errno, "Cannot create state directory %s", dir);
        if (fo_mkdir(pools, err) < 0 || fo_mkdir(volumes, err) < 0)
                return -1;
        return 0;
}

static int save_keyfile(const char *dir, const char *name, GKeyFile *kf, StorageError *err) {
        gsize len = 0;
        /* never fails (GLib reports no error for it) */
        g_autofree char *data = g_key_file_to_data(kf, &len, NULL);
        return write_record(dir, name, data, len, err);
}

int store_save_pool(const char *dir, const char *name, const char *driver, GHashTable *config, StorageError *err) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_key_file_set_string(kf, POOL_GROUP, "name", name);
        g_key_file_set_string(kf, POOL_GROUP, "driver", driver);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, config);
        while (g_hash_table_iter_next(&it, &k, &v))
                g_key_file_set_string(kf, CONFIG_GROUP, k, v);
        g_autofree char *pools = g_build_filename(dir, "pools", NULL);
        g_autofree char *vols = pool_volume_dir(dir, name);
        g_autofree char *file = g_strconcat(name, ".pool", NULL);
        if (fo_mkdir(vols, err) < 0)
                return -1;
        return save_keyfile(pools, file, kf, err);
}

int store_remove_pool(const char *dir, const char *name, StorageError *err) {
        g_autofree char *pools = g_build_filename(dir, "pools", NULL);
        g_autofree char *file = g_strconcat(name, ".pool", NULL);
        if (remove_record(pools, file, err) < 0)
                return -1;
        /* The volume directory is empty (pools in use are not removed);
         * leftovers of torn writes are not worth failing for. */
        g_autofree char *vols = pool_volume_dir(dir, name);
        fo_rmdir_if_empty(vols, NULL);
        return 0;
}

bool store_volume_record_differs(const VolumeSpec *a, bool a_started, const VolumeSpec *b, bool b_started) {
        return g_strcmp0(a->vid, b->vid) != 0 || g_strcmp0(a->name, b->name) != 0 || g_strcmp0(a->vm, b->vm) != 0 ||
               g_strcmp0(a->source, b->source) != 0 || a->template_vm != b->template_vm || a->rw != b->rw ||
               a->snap_on_start != b->snap_on_start || a->save_on_stop != b->save_on_stop ||
               a->ephemeral != b->ephemeral || a_started != b_started ||
               a->revisions_to_keep != b->revisions_to_keep || a->size != b->size;
}

int store_save_volume(const char *dir, const char *pool, const VolumeSpec *v, bool started, StorageError *err) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_key_file_set_string(kf, VOLUME_GROUP, "vid", v->vid);
        g_key_file_set_string(kf, VOLUME_GROUP, "name", v->name ? v->name : "");
        g_key_file_set_string(kf, VOLUME_GROUP, "vm", v->vm ? v->vm : "");
        g_key_file_set_string(kf, VOLUME_GROUP, "source", v->source ? v->source : "");
        g_key_file_set_boolean(kf, VOLUME_GROUP, "template", v->template_vm);
        g_key_file_set_boolean(kf, VOLUME_GROUP, "rw", v->rw);
        g_key_file_set_boolean(kf, VOLUME_GROUP, "snap_on_start", v->snap_on_start);
        g_key_file_set_boolean(kf, VOLUME_GROUP, "save_on_stop", v->save_on_stop);
        g_key_file_set_boolean(kf, VOLUME_GROUP, "ephemeral", v->ephemeral);
        g_key_file_set_boolean(kf, VOLUME_GROUP, "started", started);
        g_key_file_set_integer(kf, VOLUME_GROUP, "revisions_to_keep", v->revisions_to_keep);
        g_key_file_set_uint64(kf, VOLUME_GROUP, "size", v->size);
        g_autofree char *vols = pool_volume_dir(dir, pool);
        g_autofree char *file = vid_to_file(v->vid);
        if (fo_mkdir(vols, err) < 0)
                return -1;
        return save_keyfile(vols, file, kf, err);
}

int store_remove_volume(const char *dir, const char *pool, const char *vid, StorageError *err) {
        g_autofree char *vols = pool_volume_dir(dir, pool);
        g_autofree char *file = vid_to_file(vid);
        return remove_record(vols, file, err);
}

static int cmp_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sorted names of the files in dir with the given suffix; temp files of
 * interrupted writes (name~XXXXXX) are removed. */
static GPtrArray *list_records(const char *dir, const char *suffix) {
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        /* no directory: no records */
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        if (!d)
                return names;
        const char *n;
        while ((n = g_dir_read_name(d))) {
                if (strchr(n, '~')) {
                        g_autofree char *p = g_build_filename(dir, n, NULL);
                        unlink(p);
                        continue;
                }
                if (g_str_has_suffix(n, suffix))
                        g_ptr_array_add(names, g_strdup(n));
        }
        g_ptr_array_sort(names, cmp_names);
        return names;
}

static GKeyFile *read_record(const char *dir, const char *name) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        g_autoptr(GError) e = NULL;
        GKeyFile *kf = g_key_file_new();
        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &e)) {
                g_warning("Skipping state record %s: %s", path, e->message);
                g_key_file_free(kf);
                return NULL;
        }
        return kf;
}

static bool load_pool(const char *dir, const char *file, const StoreLoader *loader, GPtrArray *loaded) {
        g_autoptr(GKeyFile) kf = read_record(dir, file);
        if (!kf)
                return false;
        /* a missing key reads as NULL: the record is refused below */
        g_autofree char *name = g_key_file_get_string(kf, POOL_GROUP, "name", NULL);
        g_autofree char *driver = g_key_file_get_string(kf, POOL_GROUP, "driver", NULL);
        g_autofree char *expected = name ? g_strconcat(name, ".pool", NULL) : NULL;
        if (!name || !driver || strcmp(expected, file) != 0) {
                g_warning("Skipping state record %s/%s: no or wrong name/driver", dir, file);
                return false;
        }
        g_autoptr(GHashTable) config = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        /* no config group: no parameters */
        g_auto(GStrv) keys = g_key_file_get_keys(kf, CONFIG_GROUP, NULL, NULL);
        for (size_t i = 0; keys && keys[i]; i++)
                g_hash_table_insert(config, g_strdup(keys[i]), g_key_file_get_string(kf, CONFIG_GROUP, keys[i], NULL));
        loader->pool(name, driver, config, loader->userdata);
        g_ptr_array_add(loaded, g_strdup(name));
        return true;
}

static bool get_bool(GKeyFile *kf, const char *key, bool *out) {
        g_autoptr(GError) e = NULL;
        *out = g_key_file_get_boolean(kf, VOLUME_GROUP, key, &e);
        return !e;
}

static bool load_volume(const char *dir, const char *pool, const char *file, const StoreLoader *loader) {
        g_autoptr(GKeyFile) kf = read_record(dir, file);
        if (!kf)
                return false;
        g_autoptr(GError) e = NULL;
        VolumeSpec v = { 0 };
        bool started = false, ok = true;
        /* a missing key reads as NULL: the record is refused below */
        v.vid = g_key_file_get_string(kf, VOLUME_GROUP, "vid", NULL);
        v.name = g_key_file_get_string(kf, VOLUME_GROUP, "name", NULL);
        v.vm = g_key_file_get_string(kf, VOLUME_GROUP, "vm", NULL);
        v.source = g_key_file_get_string(kf, VOLUME_GROUP, "source", NULL);
        g_autofree char *expected = v.vid ? vid_to_file(v.vid) : NULL;
        ok = v.vid && v.name && v.vm && v.source && strcmp(expected, file) == 0;
        ok = ok && get_bool(kf, "template", &v.template_vm) && get_bool(kf, "rw", &v.rw) &&
             get_bool(kf, "snap_on_start", &v.snap_on_start) && get_bool(kf, "save_on_stop", &v.save_on_stop) &&
             get_bool(kf, "ephemeral", &v.ephemeral) && get_bool(kf, "started", &started);
        if (ok) {
                v.revisions_to_keep = g_key_file_get_integer(kf, VOLUME_GROUP, "revisions_to_keep", &e);
                if (!e)
                        v.size = g_key_file_get_uint64(kf, VOLUME_GROUP, "size", &e);
                ok = !e && v.revisions_to_keep >= 0;
        }
        if (ok) {
                if (!*v.source)
                        g_clear_pointer(&v.source, g_free);
                loader->volume(pool, &v, started, loader->userdata);
        } else
                g_warning("Skipping state record %s/%s: missing or invalid attributes", dir, file);
        g_free(v.vid);
        g_free(v.name);
        g_free(v.vm);
        g_free(v.source);
        return ok;
}

int store_load(const char *dir, const StoreLoader *loader) {
        int skipped = 0;
        g_autofree char *pools_dir = g_build_filename(dir, "pools", NULL);
        g_autoptr(GPtrArray) pools = list_records(pools_dir, ".pool");
        g_autoptr(GPtrArray) loaded = g_ptr_array_new_with_free_func(g_free);
        for (size_t i = 0; i < pools->len; i++)
                if (!load_pool(pools_dir, pools->pdata[i], loader, loaded))
                        skipped++;
        for (size_t i = 0; i < loaded->len; i++) {
                const char *pool = loaded->pdata[i];
                g_autofree char *vdir = pool_volume_dir(dir, pool);
                g_autoptr(GPtrArray) vols = list_records(vdir, ".volume");
                for (size_t j = 0; j < vols->len; j++)
                        if (!load_volume(vdir, pool, vols->pdata[j], loader))
                                skipped++;
        }
        return skipped;
}
