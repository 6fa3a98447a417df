/* stream_copy: exact sizes from pipes and files, holes for zero blocks,
 * cancellation; what Import builds on. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream.h"
#include "test-util.h"

#define MiB (1024 * 1024)

typedef struct Fixture {
        char *dir;
        char *dest;
        int out;
} Fixture;

static void setup(Fixture *f, gconstpointer data) {
        f->dir = tu_make_tmpdir();
        f->dest = g_build_filename(f->dir, "dest.img", NULL);
        f->out = open(f->dest, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        g_assert_cmpint(f->out, >=, 0);
}

static void teardown(Fixture *f, gconstpointer data) {
        close(f->out);
        tu_rm_rf(f->dir);
        g_free(f->dest);
        g_free(f->dir);
}

/* A pipe whose writer (a child) sends len bytes of pattern then closes. */
static int pipe_of(size_t len, unsigned char value) {
        int p[2];
        g_assert_cmpint(pipe(p), ==, 0);
        pid_t pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                close(p[0]);
                char buf[65536];
                memset(buf, value, sizeof(buf));
                for (size_t done = 0; done < len;) {
                        size_t n = len - done < sizeof(buf) ? len - done : sizeof(buf);
                        ssize_t w = write(p[1], buf, n);
                        if (w <= 0)
                                _exit(1);
                        done += (size_t) w;
                }
                _exit(0);
        }
        close(p[1]);
        return p[0];
}

static void test_exact_from_pipe(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        CopyProgress p = { .cancel_fd = -1 };
        g_assert_cmpint(ftruncate(f->out, 3 * MiB), ==, 0);
        int in = pipe_of(3 * MiB, 0xab);
        tu_assert_ok(stream_copy(in, f->out, 3 * MiB, true, &p, &err), &err);
        close(in);
        g_assert_cmpuint(atomic_load(&p.bytes), ==, 3 * MiB);
        size_t len = 0;
        g_autofree char *data_read = tu_read(f->dest, &len);
        g_assert_cmpuint(len, ==, 3 * MiB);
        g_assert_cmpint((unsigned char) data_read[0], ==, 0xab);
        g_assert_cmpint((unsigned char) data_read[len - 1], ==, 0xab);
}

static void test_too_little(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        int in = pipe_of(1000, 1);
        g_assert_cmpint(stream_copy(in, f->out, 4096, true, NULL, &err), ==, -1);
        close(in);
        tu_assert_error(&err, SE_IMPORT_FAILED, "not enough data (copied 1000 bytes, expected 4096 bytes)", NULL);
}

static void test_too_much(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        int in = pipe_of(5000, 1);
        g_assert_cmpint(stream_copy(in, f->out, 4096, true, NULL, &err), ==, -1);
        close(in);
        tu_assert_error(&err, SE_IMPORT_FAILED, "too much data (expected 4096 bytes)", NULL);
}

static void test_zeros_stay_holes(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        g_assert_cmpint(ftruncate(f->out, 8 * MiB), ==, 0);
        int in = pipe_of(8 * MiB, 0);
        tu_assert_ok(stream_copy(in, f->out, 8 * MiB, true, NULL, &err), &err);
        close(in);
        g_assert_cmpuint(tu_size(f->dest), ==, 8 * MiB);
        g_assert_cmpuint(tu_allocated(f->dest), ==, 0);
}

static void test_sparse_file_source(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        g_autofree char *src = g_build_filename(f->dir, "src.img", NULL);
        tu_fill(src, 0, MiB, 7);
        tu_fill(src, 9 * MiB, MiB, 9); /* a hole of 8 MiB between */
        g_assert_cmpint(ftruncate(f->out, 10 * MiB), ==, 0);
        int in = open(src, O_RDONLY | O_CLOEXEC);
        tu_assert_ok(stream_copy(in, f->out, 10 * MiB, false, NULL, &err), &err);
        close(in);
        g_assert_true(tu_same_contents(src, f->dest));
        g_assert_cmpuint(tu_allocated(f->dest), <=, tu_allocated(src));
}

static void test_short_file_source(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        g_autofree char *src = g_build_filename(f->dir, "src.img", NULL);
        tu_fill(src, 0, 4096, 7);
        int in = open(src, O_RDONLY | O_CLOEXEC);
        g_assert_cmpint(stream_copy(in, f->out, 8192, false, NULL, &err), ==, -1);
        close(in);
        tu_assert_error(&err, SE_IMPORT_FAILED, "copied 4096 bytes, expected 8192 bytes", NULL);
}

static void test_cancel_while_waiting(Fixture *f, gconstpointer data) {
        StorageError err = STORAGE_ERROR_INIT;
        int p[2];
        g_assert_cmpint(pipe(p), ==, 0);
        g_assert_cmpint(write(p[1], "abc", 3), ==, 3); /* then nothing: the copy waits */
        CopyProgress prog = { .cancel_fd = eventfd(0, EFD_CLOEXEC) };
        atomic_store(&prog.cancelled, true);
        uint64_t one = 1;
        g_assert_cmpint(write(prog.cancel_fd, &one, sizeof(one)), ==, sizeof(one));
        g_assert_cmpint(stream_copy(p[0], f->out, MiB, true, &prog, &err), ==, -1);
        tu_assert_error(&err, SE_CANCELLED, "cancelled", NULL);
        close(p[0]);
        close(p[1]);
        close(prog.cancel_fd);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/stream/" name, Fixture, NULL, setup, fn, teardown)
        ADD("exact-from-pipe", test_exact_from_pipe);
        ADD("too-little", test_too_little);
        ADD("too-much", test_too_much);
        ADD("zeros-stay-holes", test_zeros_stay_holes);
        ADD("sparse-file-source", test_sparse_file_source);
        ADD("short-file-source", test_short_file_source);
        ADD("cancel-while-waiting", test_cancel_while_waiting);
        return g_test_run();
}
