/* Unit tests for lib/fileops.c: what ends up on disk after each
 * primitive, including after failures (no temporary file is ever left). */
#include "fileops.h"
#include "test-util.h"

#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#define MiB (1024 * 1024)

typedef struct Fixture {
        char *dir;
        StorageError err;
} Fixture;

static void fixture_setup(Fixture *fx, gconstpointer data) {
        fx->dir = tu_make_tmpdir();
        fx->err = (StorageError) STORAGE_ERROR_INIT;
}

static void fixture_teardown(Fixture *fx, gconstpointer data) {
        tu_rm_rf(fx->dir);
        g_free(fx->dir);
        se_clear(&fx->err);
}

static char *in(const Fixture *fx, const char *name) {
        return g_build_filename(fx->dir, name, NULL);
}

/* ---- directories ---- */

static void test_mkdir(Fixture *fx, gconstpointer data) {
        g_autofree char *one = in(fx, "one");
        g_autofree char *deep = in(fx, "missing/deep");
        tu_assert_ok(fo_mkdir(one, &fx->err), &fx->err);
        g_assert_true(g_file_test(one, G_FILE_TEST_IS_DIR));
        tu_assert_ok(fo_mkdir(one, &fx->err), &fx->err);
        g_assert_cmpint(fo_mkdir(deep, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, deep, "No such file", NULL);
}

static void test_mkdir_p(Fixture *fx, gconstpointer data) {
        g_autofree char *deep = in(fx, "a/b/c");
        g_autofree char *file = in(fx, "file");
        g_autofree char *below_file = in(fx, "file/sub");
        tu_assert_ok(fo_mkdir_p(deep, &fx->err), &fx->err);
        g_assert_true(g_file_test(deep, G_FILE_TEST_IS_DIR));
        tu_assert_ok(fo_mkdir_p(deep, &fx->err), &fx->err);
        tu_write_file(file, "x");
        g_assert_cmpint(fo_mkdir_p(file, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, file, NULL);
        g_assert_cmpint(fo_mkdir_p(below_file, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "file", NULL);
}

static void test_rmdir_if_empty(Fixture *fx, gconstpointer data) {
        g_autofree char *full = in(fx, "full");
        g_autofree char *content = in(fx, "full/x");
        g_autofree char *empty = in(fx, "empty");
        tu_assert_ok(fo_mkdir(full, &fx->err), &fx->err);
        tu_write_file(content, "x");
        tu_assert_ok(fo_mkdir(empty, &fx->err), &fx->err);
        tu_assert_ok(fo_rmdir_if_empty(full, &fx->err), &fx->err);
        tu_assert_ok(fo_rmdir_if_empty(empty, &fx->err), &fx->err);
        tu_assert_ok(fo_rmdir_if_empty(empty, &fx->err), &fx->err);
        g_assert_true(tu_exists(content));
        g_assert_false(tu_exists(empty));
}

/* ---- files ---- */

static void test_remove(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "f");
        g_autofree char *dir = in(fx, "d");
        tu_write_file(file, "x");
        tu_assert_ok(fo_remove(file, &fx->err), &fx->err);
        g_assert_false(tu_exists(file));
        tu_assert_ok(fo_remove(file, &fx->err), &fx->err);
        tu_assert_ok(fo_mkdir(dir, &fx->err), &fx->err);
        g_assert_cmpint(fo_remove(dir, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, dir, NULL);
}

static void test_rename(Fixture *fx, gconstpointer data) {
        g_autofree char *from = in(fx, "from");
        g_autofree char *sub = in(fx, "sub");
        g_autofree char *to = in(fx, "sub/to");
        tu_assert_ok(fo_mkdir(sub, &fx->err), &fx->err);
        tu_write_file(from, "data");
        tu_write_file(to, "old");
        tu_assert_ok(fo_rename(from, to, &fx->err), &fx->err);
        g_autofree char *got = tu_read(to, NULL);
        g_assert_cmpstr(got, ==, "data");
        g_assert_false(tu_exists(from));
        g_assert_cmpint(fo_rename(from, to, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, from, NULL);
}

/* A thread deferring to an FoFlushes notes each directory it changes once,
 * however often and through whichever FoDir; the changes themselves are
 * made at once; fo_flushes_run syncs them and forgets them; without
 * deferral nothing is noted. */
static void test_flushes_deferred(Fixture *fx, gconstpointer data) {
        g_autofree char *sub = in(fx, "sub");
        tu_assert_ok(fo_mkdir(sub, &fx->err), &fx->err);
        g_auto(FoDir) a = FO_DIR_INIT, a2 = FO_DIR_INIT, b = FO_DIR_INIT;
        tu_assert_ok(fo_dir_open(&a, fx->dir, NULL, false, &fx->err), &fx->err);
        tu_assert_ok(fo_dir_open(&a2, fx->dir, NULL, false, &fx->err), &fx->err);
        tu_assert_ok(fo_dir_open(&b, fx->dir, "sub", false, &fx->err), &fx->err);
        FoFlushes *f = fo_flushes_new();
        fo_flushes_defer(f);
        tu_assert_ok(fo_sparse_create_at(&a, "one", MiB, FO_REPLACE, &fx->err), &fx->err);
        tu_assert_ok(fo_rename_at(&a2, "one", "two", &fx->err), &fx->err);
        g_assert_cmpuint(fo_flushes_owed(f), ==, 1);
        tu_assert_ok(fo_sparse_create_at(&b, "three", MiB, FO_NO_REPLACE, &fx->err), &fx->err);
        tu_assert_ok(fo_remove_at(&b, "three", &fx->err), &fx->err);
        g_assert_cmpuint(fo_flushes_owed(f), ==, 2);
        fo_flushes_defer(NULL);
        g_autofree char *two = in(fx, "two");
        g_assert_true(tu_exists(two));
        tu_assert_ok(fo_rename_at(&a, "two", "four", &fx->err), &fx->err);
        g_assert_cmpuint(fo_flushes_owed(f), ==, 2);
        tu_assert_ok(fo_flushes_run(f, &fx->err), &fx->err);
        g_assert_cmpuint(fo_flushes_owed(f), ==, 0);
        fo_flushes_free(f);
}

static void test_remove_temps(Fixture *fx, gconstpointer data) {
        const char *gone[] = { "x.img~abc123", "x.img~" };
        const char *kept[] = { "x.img", "y.img~abc123", "x.img.old~abc123", "x.imgx~1" };
        for (size_t i = 0; i < G_N_ELEMENTS(gone); i++) {
                g_autofree char *p = in(fx, gone[i]);
                tu_write_file(p, "t");
        }
        for (size_t i = 0; i < G_N_ELEMENTS(kept); i++) {
                g_autofree char *p = in(fx, kept[i]);
                tu_write_file(p, "k");
        }
        g_autofree char *target = in(fx, "x.img");
        tu_assert_ok(fo_remove_temps(target, &fx->err), &fx->err);
        for (size_t i = 0; i < G_N_ELEMENTS(gone); i++) {
                g_autofree char *p = in(fx, gone[i]);
                g_assert_false(tu_exists(p));
        }
        for (size_t i = 0; i < G_N_ELEMENTS(kept); i++) {
                g_autofree char *p = in(fx, kept[i]);
                g_assert_true(tu_exists(p));
        }
        g_autofree char *nowhere = in(fx, "missing/x.img");
        tu_assert_ok(fo_remove_temps(nowhere, &fx->err), &fx->err);
}

static void test_stat_and_allocated(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "f");
        struct stat st;
        uint64_t bytes = 1;
        g_assert_cmpint(fo_stat(file, &st, &fx->err), ==, 0);
        tu_assert_ok(fo_allocated(file, &bytes, &fx->err), &fx->err);
        g_assert_cmpuint(bytes, ==, 0);
        tu_fill(file, 0, 64 * 1024, 0xab);
        g_assert_cmpint(fo_stat(file, &st, &fx->err), ==, 1);
        g_assert_cmpint(st.st_size, ==, 64 * 1024);
        tu_assert_ok(fo_allocated(file, &bytes, &fx->err), &fx->err);
        g_assert_cmpuint(bytes, ==, tu_allocated(file));
        g_assert_cmpuint(bytes, >=, 64 * 1024);
}

static void test_resize(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "f");
        tu_write_file(file, "keep");
        tu_assert_ok(fo_resize(file, 8 * MiB, &fx->err), &fx->err);
        g_assert_cmpuint(tu_size(file), ==, 8 * MiB);
        g_autofree char *got = tu_read(file, NULL);
        g_assert_cmpstr(got, ==, "keep");
        g_autofree char *missing = in(fx, "missing");
        g_assert_cmpint(fo_resize(missing, MiB, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, missing, NULL);
        g_assert_false(tu_exists(missing));
}

/* ---- atomic creation ---- */

static void test_atomic_write(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "new/dir/f");
        g_autofree char *parent = in(fx, "new/dir");
        tu_assert_ok(fo_atomic_write(file, "first", 5, &fx->err), &fx->err);
        tu_assert_ok(fo_atomic_write(file, "second", 6, &fx->err), &fx->err);
        g_autofree char *got = tu_read(file, NULL);
        g_assert_cmpstr(got, ==, "second");
        g_assert_false(tu_has_temp_files(parent));
}

/* Records the names in the directory while the temporary file exists. */
static int fill_then_fail(int fd, const char *path, void *userdata, StorageError *err) {
        g_autofree char *dir = g_path_get_dirname(path);
        g_assert_cmpint(write(fd, "partial", 7), ==, 7);
        GDir *d = g_dir_open(dir, 0, NULL);
        GString *names = g_string_new(NULL);
        for (const char *name; (name = g_dir_read_name(d));)
                g_string_append_printf(names, "%s\n", name);
        g_dir_close(d);
        *(char **) userdata = g_string_free(names, FALSE);
        return se_set(err, SE_FAILED, "fill of %s failed on purpose", path);
}

static void test_atomic_fill_error(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "f");
        g_autofree char *names = NULL;
        tu_write_file(file, "old");
        g_assert_cmpint(fo_atomic_fill(file, FO_REPLACE, fill_then_fail, &names, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, file, "on purpose", NULL);
        g_assert_true(g_regex_match_simple("^f~[A-Za-z0-9]{6}$", names, G_REGEX_MULTILINE, 0));
        g_autofree char *got = tu_read(file, NULL);
        g_assert_cmpstr(got, ==, "old");
        g_assert_false(tu_has_temp_files(fx->dir));
}

static void test_no_replace(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "f");
        tu_write_file(file, "old");
        g_assert_cmpint(fo_sparse_create(file, MiB, FO_NO_REPLACE, &fx->err), ==, 1);
        g_autofree char *got = tu_read(file, NULL);
        g_assert_cmpstr(got, ==, "old");
        g_assert_false(tu_has_temp_files(fx->dir));
        tu_assert_ok(fo_remove(file, &fx->err), &fx->err);
        g_assert_cmpint(fo_sparse_create(file, MiB, FO_NO_REPLACE, &fx->err), ==, 0);
        g_assert_cmpuint(tu_size(file), ==, MiB);
}

static void test_sparse_create(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "vm/f.img");
        g_autofree char *vm = in(fx, "vm");
        tu_assert_ok(fo_sparse_create(file, 10ULL << 30, FO_REPLACE, &fx->err), &fx->err);
        g_assert_cmpuint(tu_size(file), ==, 10ULL << 30);
        g_assert_cmpuint(tu_allocated(file), ==, 0);
        tu_fill(file, 0, 4096, 1);
        tu_assert_ok(fo_sparse_create(file, MiB, FO_REPLACE, &fx->err), &fx->err);
        g_assert_cmpuint(tu_size(file), ==, MiB);
        g_assert_cmpuint(tu_allocated(file), ==, 0);
        g_assert_false(tu_has_temp_files(vm));
}

/* ---- copy ---- */

/* 16 MiB: 1 MiB of data, an 8 MiB hole, 1 MiB of data, a 6 MiB hole. */
static void make_sparse_source(const char *path) {
        tu_fill(path, 0, MiB, 0x11);
        tu_fill(path, 9 * MiB, MiB, 0x22);
        g_assert_cmpint(truncate(path, 16 * MiB), ==, 0);
}

static void assert_sparse_copy(const char *src, const char *dst) {
        g_assert_cmpuint(tu_size(dst), ==, 16 * MiB);
        g_assert_true(tu_same_contents(src, dst));
        g_assert_cmpuint(tu_allocated(dst), >=, 2 * MiB);
        g_assert_cmpuint(tu_allocated(dst), <=, 3 * MiB);
}

static bool reflink_impossible_here(const char *dir) {
        struct statfs s;
        g_assert_cmpint(statfs(dir, &s), ==, 0);
        return s.f_type == EXT4_SUPER_MAGIC || s.f_type == TMPFS_MAGIC;
}

static void copy_falls_back_in(Fixture *fx, const char *dir) {
        g_autofree char *src = g_build_filename(dir, "src.img", NULL);
        g_autofree char *dst = g_build_filename(dir, "dst.img", NULL);
        bool reflinked = true;
        make_sparse_source(src);
        tu_write_file(dst, "old");
        tu_assert_ok(fo_copy(src, dst, &reflinked, &fx->err), &fx->err);
        if (reflink_impossible_here(dir))
                g_assert_false(reflinked);
        assert_sparse_copy(src, dst);
        g_assert_false(tu_has_temp_files(dir));
}

static void test_copy_fallback(Fixture *fx, gconstpointer data) {
        copy_falls_back_in(fx, fx->dir);
}

static void test_copy_fallback_tmpfs(Fixture *fx, gconstpointer data) {
        struct statfs s;
        if (statfs("/dev/shm", &s) < 0 || s.f_type != TMPFS_MAGIC) {
                g_error("this test needs a tmpfs at /dev/shm");
        }
        g_autofree char *dir = g_build_filename("/dev/shm", "qubes-storaged-unit-XXXXXX", NULL);
        g_assert_nonnull(g_mkdtemp(dir));
        copy_falls_back_in(fx, dir);
        tu_rm_rf(dir);
}

static void test_copy_missing_source(Fixture *fx, gconstpointer data) {
        g_autofree char *src = in(fx, "missing.img");
        g_autofree char *dst = in(fx, "dst.img");
        g_assert_cmpint(fo_copy(src, dst, NULL, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, src, NULL);
        g_assert_false(tu_exists(dst));
}

typedef struct SeamCase {
        int errnum;
        bool falls_back;
} SeamCase;

static void seam_child(Fixture *fx, const SeamCase *c) {
        g_autofree char *src = in(fx, "src.img");
        g_autofree char *dst = in(fx, "dst.img");
        bool reflinked = true;
        make_sparse_source(src);
        tu_write_file(dst, "old");
        int r = fo_copy(src, dst, &reflinked, &fx->err);
        g_assert_false(tu_has_temp_files(fx->dir));
        if (c->falls_back) {
                tu_assert_ok(r, &fx->err);
                g_assert_false(reflinked);
                assert_sparse_copy(src, dst);
                return;
        }
        g_assert_cmpint(r, ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, dst, g_strerror(c->errnum), NULL);
        g_autofree char *got = tu_read(dst, NULL);
        g_assert_cmpstr(got, ==, "old");
}

/* The seam is read once per process: each case runs in a child. */
static void test_copy_seam(Fixture *fx, gconstpointer data) {
        const SeamCase *c = data;
        if (g_test_subprocess()) {
                seam_child(fx, c);
                return;
        }
        g_autofree char *value = g_strdup_printf("%d", c->errnum);
        g_setenv(FO_FICLONE_ERRNO_ENV, value, TRUE);
        g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
        g_unsetenv(FO_FICLONE_ERRNO_ENV);
        g_test_trap_assert_passed();
}

/* ---- pure helpers ---- */

static void test_normpath(void) {
        const char *cases[][2] = {
                { "/", "/" },
                { "/var/lib/qubes", "/var/lib/qubes" },
                { "/var//lib/./qubes/", "/var/lib/qubes" },
                { "/var/lib/../lib/qubes/..", "/var/lib" },
                { "/../a", "/a" },
                { "a/../../b", "../b" },
                { "", "." },
        };
        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autofree char *got = fo_normpath(cases[i][0]);
                g_assert_cmpstr(got, ==, cases[i][1]);
        }
}

static void test_iso8601(void) {
        g_autofree char *epoch = fo_iso8601_utc(0);
        g_autofree char *t = fo_iso8601_utc(1521065906);
        g_assert_cmpstr(epoch, ==, "1970-01-01T00:00:00Z");
        g_assert_cmpstr(t, ==, "2018-03-14T22:18:26Z");
}

static void test_config_dir_path(void) {
        StorageError err = STORAGE_ERROR_INIT;
        g_autoptr(GHashTable) config = tu_config_new(NULL);
        g_autofree char *dir = NULL;
        g_assert_cmpint(fo_config_dir_path(config, &dir, &err), ==, -1);
        tu_assert_error(&err, SE_INVALID_ARGUMENT, "dir_path", NULL);
        g_hash_table_insert(config, g_strdup("dir_path"), g_strdup("relative/dir"));
        g_assert_cmpint(fo_config_dir_path(config, &dir, &err), ==, -1);
        tu_assert_error(&err, SE_INVALID_ARGUMENT, "relative/dir", NULL);
        g_hash_table_insert(config, g_strdup("dir_path"), g_strdup("/var//lib/qubes/"));
        tu_assert_ok(fo_config_dir_path(config, &dir, &err), &err);
        g_assert_cmpstr(dir, ==, "/var/lib/qubes");
        g_assert_cmpstr(g_hash_table_lookup(config, "dir_path"), ==, "/var/lib/qubes");
}

static void test_loop_no_device(Fixture *fx, gconstpointer data) {
        g_autofree char *file = in(fx, "f.img");
        tu_write_file(file, "x");
        tu_assert_ok(fo_loop_set_capacity(file, &fx->err), &fx->err);
        g_autofree char *missing = in(fx, "missing.img");
        g_assert_cmpint(fo_loop_set_capacity(missing, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, missing, NULL);
}

#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

static void add_seam_case(const SeamCase *c, const char *name) {
        g_autofree char *path = g_strdup_printf("/fileops/copy/ficlone-%s", name);
        g_test_add(path, Fixture, c, fixture_setup, test_copy_seam, fixture_teardown);
}

static bool started_as_subprocess(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--GTestSubprocess") == 0)
                        return true;
        return false;
}

/* ---- below a pool: no symbolic link is ever followed ---- */

static void test_dir_beneath(Fixture *fx, gconstpointer data) {
        g_autofree char *outside = in(fx, "outside");
        g_autofree char *pool = in(fx, "pool");
        g_autofree char *appvms = in(fx, "pool/appvms");
        g_autofree char *link = in(fx, "pool/appvms/evil");
        tu_assert_ok(fo_mkdir(outside, &fx->err), &fx->err);
        tu_assert_ok(fo_mkdir_p(appvms, &fx->err), &fx->err);
        g_assert_cmpint(symlink(outside, link), ==, 0);

        g_auto(FoDir) d = FO_DIR_INIT;
        tu_assert_ok(fo_dir_open(&d, pool, "appvms/work", false, &fx->err), &fx->err);
        g_assert_cmpint(d.fd, ==, -1); /* missing, not made */
        struct stat st;
        g_assert_cmpint(fo_stat_at(&d, "x.img", &st, &fx->err), ==, 0);
        g_assert_cmpint(fo_sparse_create_at(&d, "x.img", MiB, FO_REPLACE, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "x.img", NULL);
        fo_dir_close(&d);

        tu_assert_ok(fo_dir_open(&d, pool, "appvms/work", true, &fx->err), &fx->err);
        g_assert_cmpint(d.fd, >=, 0);
        tu_assert_ok(fo_sparse_create_at(&d, "x.img", MiB, FO_REPLACE, &fx->err), &fx->err);
        fo_dir_close(&d);

        for (int create = 0; create <= 1; create++) {
                g_assert_cmpint(fo_dir_open(&d, pool, "appvms/evil", create, &fx->err), ==, -1);
                tu_assert_error(&fx->err, SE_FAILED, "appvms/evil", "symbolic link", NULL);
                fo_dir_close(&d);
        }

        /* a link where a file is expected */
        g_autofree char *target = in(fx, "outside/precious");
        g_autofree char *img_link = in(fx, "pool/appvms/work/y.img");
        tu_write_file(target, "precious");
        g_assert_cmpint(symlink(target, img_link), ==, 0);
        tu_assert_ok(fo_dir_open(&d, pool, "appvms/work", false, &fx->err), &fx->err);
        g_assert_cmpint(fo_stat_at(&d, "y.img", &st, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "symbolic link", NULL);
        g_assert_cmpint(fo_resize_at(&d, "y.img", MiB, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "y.img", NULL);
        g_assert_cmpint(fo_copy_at(&d, "y.img", &d, "z.img", NULL, &fx->err), ==, -1);
        tu_assert_error(&fx->err, SE_FAILED, "y.img", NULL);
        g_assert_cmpuint(tu_size(target), ==, 8);
        g_autofree char *z = in(fx, "pool/appvms/work/z.img");
        g_assert_false(tu_exists(z));
}

int main(int argc, char **argv) {
        static const SeamCase ebadf = { EBADF, true }, einval = { EINVAL, true }, eopnotsupp = { EOPNOTSUPP, true },
                              exdev = { EXDEV, true }, eio = { EIO, false }, enospc = { ENOSPC, false };
        /* Only the children of test_copy_seam run with the seam set. */
        if (!started_as_subprocess(argc, argv))
                g_unsetenv(FO_FICLONE_ERRNO_ENV);
        g_test_init(&argc, &argv, NULL);
        ADD("/fileops/mkdir", test_mkdir);
        ADD("/fileops/mkdir-p", test_mkdir_p);
        ADD("/fileops/rmdir-if-empty", test_rmdir_if_empty);
        ADD("/fileops/remove", test_remove);
        ADD("/fileops/rename", test_rename);
        ADD("/fileops/remove-temps", test_remove_temps);
        ADD("/fileops/stat-and-allocated", test_stat_and_allocated);
        ADD("/fileops/resize", test_resize);
        ADD("/fileops/atomic-write", test_atomic_write);
        ADD("/fileops/atomic-fill-error", test_atomic_fill_error);
        ADD("/fileops/no-replace", test_no_replace);
        ADD("/fileops/sparse-create", test_sparse_create);
        ADD("/fileops/copy/fallback", test_copy_fallback);
        ADD("/fileops/copy/fallback-tmpfs", test_copy_fallback_tmpfs);
        ADD("/fileops/copy/missing-source", test_copy_missing_source);
        add_seam_case(&ebadf, "EBADF");
        add_seam_case(&einval, "EINVAL");
        add_seam_case(&eopnotsupp, "EOPNOTSUPP");
        add_seam_case(&exdev, "EXDEV");
        add_seam_case(&eio, "EIO");
        add_seam_case(&enospc, "ENOSPC");
        ADD("/fileops/loop-no-device", test_loop_no_device);
        ADD("/fileops/dir-beneath", test_dir_beneath);
        ADD("/fileops/flushes-deferred", test_flushes_deferred);
        g_test_add_func("/fileops/normpath", test_normpath);
        g_test_add_func("/fileops/iso8601", test_iso8601);
        g_test_add_func("/fileops/config-dir-path", test_config_dir_path);
        return g_test_run();
}
