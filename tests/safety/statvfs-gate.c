/* Test helper, LD_PRELOADed into the service: holds statvfs() and
 * fstatvfs() of paths under $QS_STATVFS_GATE_DIR while the file
 * $QS_STATVFS_GATE exists, so a test can keep a usage refresh in flight for
 * as long as it needs (no timing). On entering, it creates
 * $QS_STATVFS_GATE.entered; removing the gate file lets every held call go on. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static void hold(const char *path) {
        const char *dir = getenv("QS_STATVFS_GATE_DIR");
        const char *gate = getenv("QS_STATVFS_GATE");
        if (!dir || !gate || !path || strncmp(path, dir, strlen(dir)) != 0 || access(gate, F_OK) < 0)
                return;
        char entered[PATH_MAX];
        snprintf(entered, sizeof(entered), "%s.entered", gate);
        int fd = open(entered, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        while (access(gate, F_OK) == 0)
                usleep(10000);
}

int statvfs(const char *path, struct statvfs *buf) {
        static int (*real)(const char *, struct statvfs *);
        if (!real)
                real = (int (*)(const char *, struct statvfs *)) dlsym(RTLD_NEXT, "statvfs");
        hold(path);
        return real(path, buf);
}

int fstatvfs(int fd, struct statvfs *buf) {
        static int (*real)(int, struct statvfs *);
        if (!real)
                real = (int (*)(int, struct statvfs *)) dlsym(RTLD_NEXT, "fstatvfs");
        char link[64], path[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof(path) - 1);
        if (n > 0) {
                path[n] = '\0';
                hold(path);
        }
        return real(fd, buf);
}
