/* bench/floor - the floor for bench/reflink: the file operations of the
 * reference implementation's file-reflink driver, issued in-process, with no
 * IPC and no bookkeeping beyond what the operations themselves need.
 *
 * It is a persistent subprocess driven over stdin/stdout, so that bench/reflink
 * can interleave it sample by sample with the service without paying for an
 * exec per sample. One command per line; one reply line per command:
 * "ok <elapsed ns>" (the time the operation itself took, CLOCK_MONOTONIC) or
 * "error <message>".
 *
 *   pool DIR KEEP                    the pool directory (made if missing) and
 *                                    its revisions_to_keep
 *   vol VID origin|snapshot|volatile SIZE [SOURCE-VID]
 *                                    declares a volume (no file operation)
 *   create VID                       deletes every image of VID, then an origin
 *                                    gets a sparse clean image of SIZE
 *   remove VID                       deletes every image of VID, rmdir of its
 *                                    directory if empty
 *   start [-s] VID...                Start of the volumes, each in its own
 *                                    thread, in parallel (-s: one at a time)
 *   stop [-s] VID...                 Stop of them, likewise
 *   import_volume DST SRC            copies SRC's clean image to DST's -import
 *                                    image and commits it
 *   import_data VID SIZE FILE        sparse-creates VID's -import image of SIZE,
 *                                    writes FILE's bytes into it read from a
 *                                    pipe (a thread feeds FILE into the pipe,
 *                                    as `cat FILE |` would; blocks of zeros
 *                                    are skipped, as dd conv=sparse does),
 *                                    then commits it
 *   quit
 *
 * Image names, for VID a/b/c in pool P: P/a/b/c.img (clean), c-dirty.img,
 * c-import.img, c.img.<N>@<YYYY-MM-DDTHH:MM:SS>Z (revisions) and temp files
 * <name>~XXXXXX beside their target.
 *
 * The primitives, as the reference does them:
 *   atomic replace   temp file <dst>~XXXXXX in dst's directory (made if
 *                    needed, with an fsync of its parent), written, fsync'd,
 *                    renamed onto dst, then an fsync of the directory
 *   copy             atomic replace whose content is a FICLONE of src
 *   sparse create    atomic replace whose content is ftruncate(size)
 *   remove           unlink, then an fsync of the directory (nothing when the
 *                    file is missing)
 *   rename           rename, then an fsync of the directory
 *   commit(F)        copy clean -> clean.<last+1>@<ctime of clean>Z when
 *                    revisions are kept, prune revisions beyond KEEP, fsync
 *                    F, rename F -> clean
 *
 * Per VM cycle (start of a snapshot, an origin and a volatile, then stop of
 * the three, revisions_to_keep 1) that is 4 FICLONE, 6 renames and 16
 * fsyncs: check with `strace -c -f`.
 *
 * A machine without FICLONE on the pool's filesystem is an error here (the
 * reference would fall back to cp --sparse=always, which is not the floor of
 * anything).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_VOLUMES 64
#define MAX_ARGS 16
#define ERR_LEN 512
#define COPY_BLOCK (1 << 20)

enum kind { ORIGIN, SNAPSHOT, VOLATILE };

struct volume {
	char vid[256];
	enum kind kind;
	uint64_t size;
	char source[256];
	bool used;
};

static char pool_dir[4096];
static int keep;
static struct volume volumes[MAX_VOLUMES];
static mode_t file_mode;

/* snprintf that treats truncation as the bug it would be here */
__attribute__((format(printf, 3, 4))) static void sfmt(char *out, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(out, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		fprintf(stderr, "floor: a name is too long: %s\n", out);
		exit(2);
	}
}

/* ---- errors: each thread keeps its first error message ---- */

static __thread char err_msg[ERR_LEN];

static int fail(int err, const char *fmt, ...)
{
	if (!err_msg[0]) {
		va_list ap;
		char what[ERR_LEN - 64];

		va_start(ap, fmt);
		vsnprintf(what, sizeof what, fmt, ap);
		va_end(ap);
		sfmt(err_msg, sizeof err_msg, "%s: %s", what, strerror(err));
	}
	return -err;
}

/* ---- paths ---- */

static struct volume *find_volume(const char *vid)
{
	for (int i = 0; i < MAX_VOLUMES; i++)
		if (volumes[i].used && strcmp(volumes[i].vid, vid) == 0)
			return &volumes[i];
	return NULL;
}

/* P/<vid><suffix> */
static void image_path(char *out, size_t len, const char *vid, const char *suffix)
{
	sfmt(out, len, "%s/%s%s", pool_dir, vid, suffix);
}

static void dir_of(char *out, size_t len, const char *path)
{
	sfmt(out, len, "%s", path);
	char *slash = strrchr(out, '/');
	if (slash == out)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		sfmt(out, len, ".");
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* ---- primitives ---- */

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(errno, "open %s", path);
	int r = fsync(fd) < 0 ? fail(errno, "fsync %s", path) : 0;
	close(fd);
	return r;
}

/* mkdir -p; every directory made is followed by an fsync of its parent */
static int make_dir(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return 0;
	char parent[4096];
	dir_of(parent, sizeof parent, path);
	if (strcmp(parent, path) != 0) {
		int r = make_dir(parent);
		if (r < 0)
			return r;
	}
	if (mkdir(path, 0777) < 0) {
		if (errno == EEXIST)
			return 0;
		return fail(errno, "mkdir %s", path);
	}
	return fsync_path(parent);
}

static int remove_file(const char *path)
{
	if (unlink(path) < 0) {
		if (errno == ENOENT)
			return 0;
		return fail(errno, "unlink %s", path);
	}
	char dir[4096];
	dir_of(dir, sizeof dir, path);
	return fsync_path(dir);
}

static int rename_file(const char *from, const char *to)
{
	if (rename(from, to) < 0)
		return fail(errno, "rename %s -> %s", from, to);
	char d1[4096], d2[4096];
	dir_of(d1, sizeof d1, to);
	dir_of(d2, sizeof d2, from);
	int r = fsync_path(d1);
	if (r == 0 && strcmp(d1, d2) != 0)
		r = fsync_path(d2);
	return r;
}

/* atomic replace, first half: the temp file beside dst */
static int replace_begin(const char *dst, char *tmp, size_t len)
{
	char dir[4096];
	dir_of(dir, sizeof dir, dst);
	int r = make_dir(dir);
	if (r < 0)
		return r;
	sfmt(tmp, len, "%s~XXXXXX", dst);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return fail(errno, "mkstemp %s", tmp);
	return fd;
}

/* second half: flush, mode, rename onto dst, flush the directory */
static int replace_end(int fd, const char *tmp, const char *dst, int r)
{
	if (r == 0 && fsync(fd) < 0)
		r = fail(errno, "fsync %s", tmp);
	if (r == 0 && fchmod(fd, file_mode) < 0)
		r = fail(errno, "chmod %s", tmp);
	close(fd);
	if (r == 0)
		r = rename_file(tmp, dst);
	if (r < 0)
		unlink(tmp);
	return r;
}

static int copy_file(const char *src, const char *dst)
{
	char tmp[4096];
	int sfd = open(src, O_RDONLY | O_CLOEXEC);
	if (sfd < 0)
		return fail(errno, "open %s", src);
	int fd = replace_begin(dst, tmp, sizeof tmp);
	if (fd < 0) {
		close(sfd);
		return fd;
	}
	int r = 0;
	if (ioctl(fd, FICLONE, sfd) < 0)
		r = fail(errno, "FICLONE %s -> %s (the floor needs reflinks)", src, tmp);
	close(sfd);
	return replace_end(fd, tmp, dst, r);
}

static int create_sparse(const char *path, uint64_t size)
{
	char tmp[4096];
	int fd = replace_begin(path, tmp, sizeof tmp);
	if (fd < 0)
		return fd;
	int r = 0;
	if (size > 0 && ftruncate(fd, (off_t)size) < 0)
		r = fail(errno, "truncate %s", tmp);
	return replace_end(fd, tmp, path, r);
}

/* ---- revisions: <base>.img.<N>@<ts>Z ---- */

struct revision {
	long n;
	char name[512];
};

static bool parse_revision(const char *name, const char *base, long *n)
{
	size_t bl = strlen(base);
	if (strncmp(name, base, bl) != 0 || strncmp(name + bl, ".img.", 5) != 0)
		return false;
	const char *p = name + bl + 5;
	char *end;
	errno = 0;
	long v = strtol(p, &end, 10);
	if (end == p || errno || *end != '@')
		return false;
	size_t l = strlen(end);
	if (l < 2 || end[l - 1] != 'Z')
		return false;
	*n = v;
	return true;
}

static int cmp_revision(const void *a, const void *b)
{
	const struct revision *x = a, *y = b;
	return (x->n > y->n) - (x->n < y->n);
}

/* the revisions of the image, oldest first; returns the count or -errno */
static int list_revisions(const char *vid, struct revision *out, int max)
{
	char clean[4096], dir[4096], base[256];
	image_path(clean, sizeof clean, vid, "");
	dir_of(dir, sizeof dir, clean);
	sfmt(base, sizeof base, "%s", base_of(clean));
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : fail(errno, "opendir %s", dir);
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) && count < max) {
		long n;
		if (parse_revision(e->d_name, base, &n)) {
			out[count].n = n;
			sfmt(out[count].name, sizeof out[count].name, "%s/%s", dir, e->d_name);
			count++;
		}
	}
	closedir(d);
	qsort(out, count, sizeof *out, cmp_revision);
	return count;
}

/* every image of vid: temp files, -import, revisions, clean, dirty */
static bool is_image_of(const char *name, const char *base)
{
	static const char *const suffixes[] = { ".img", "-dirty.img", "-import.img" };
	size_t bl = strlen(base);
	long n;
	if (strncmp(name, base, bl) != 0)
		return false;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t sl = strlen(suffixes[i]);
		if (strncmp(name + bl, suffixes[i], sl) == 0 && (name[bl + sl] == '\0' || name[bl + sl] == '~'))
			return true;
	}
	return parse_revision(name, base, &n) || (strncmp(name + bl, ".img.", 5) == 0 && strchr(name, '~'));
}

/* only_temp: the temp files and the -import image (what Start throws away) */
static int delete_images(const char *vid, bool only_temp)
{
	char clean[4096], dir[4096], base[256], victims[64][512];
	int nv = 0;
	image_path(clean, sizeof clean, vid, "");
	dir_of(dir, sizeof dir, clean);
	sfmt(base, sizeof base, "%s", base_of(clean));
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : fail(errno, "opendir %s", dir);
	struct dirent *e;
	char import_name[300];
	sfmt(import_name, sizeof import_name, "%s-import.img", base);
	while ((e = readdir(d)) && nv < 64) {
		if (!is_image_of(e->d_name, base))
			continue;
		if (only_temp && !strchr(e->d_name, '~') && strcmp(e->d_name, import_name) != 0)
			continue;
		sfmt(victims[nv++], sizeof victims[0], "%s/%s", dir, e->d_name);
	}
	closedir(d);
	for (int i = 0; i < nv; i++) {
		int r = remove_file(victims[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the driver's operations ---- */

static int commit(struct volume *v, const char *from)
{
	char clean[4096];
	image_path(clean, sizeof clean, v->vid, ".img");
	struct revision revs[64];
	int n = list_revisions(v->vid, revs, 64);
	if (n < 0)
		return n;
	int r;
	if (keep > 0) {
		struct stat st;
		if (stat(clean, &st) < 0)
			return fail(errno, "stat %s", clean);
		char ts[64], rev[4096 + 96];
		time_t t = st.st_ctim.tv_sec;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		long next = n > 0 ? revs[n - 1].n + 1 : 1;
		sfmt(rev, sizeof rev, "%s.%ld@%sZ", clean, next, ts);
		if ((r = copy_file(clean, rev)) < 0)
			return r;
		n = list_revisions(v->vid, revs, 64);
		if (n < 0)
			return n;
	}
	for (int i = 0; i < n - keep; i++)
		if ((r = remove_file(revs[i].name)) < 0)
			return r;
	if ((r = fsync_path(from)) < 0)
		return r;
	return rename_file(from, clean);
}

static int op_create(struct volume *v)
{
	int r = delete_images(v->vid, false);
	if (r < 0 || v->kind != ORIGIN)
		return r;
	char clean[4096];
	image_path(clean, sizeof clean, v->vid, ".img");
	return create_sparse(clean, v->size);
}

static int op_remove(struct volume *v)
{
	int r = delete_images(v->vid, false);
	if (r < 0)
		return r;
	char clean[4096], dir[4096], parent[4096];
	image_path(clean, sizeof clean, v->vid, "");
	dir_of(dir, sizeof dir, clean);
	if (rmdir(dir) < 0) {
		if (errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST)
			return 0;
		return fail(errno, "rmdir %s", dir);
	}
	dir_of(parent, sizeof parent, dir);
	return fsync_path(parent);
}

static int op_start(struct volume *v)
{
	char clean[4096], dirty[4096];
	image_path(clean, sizeof clean, v->vid, ".img");
	image_path(dirty, sizeof dirty, v->vid, "-dirty.img");
	int r = delete_images(v->vid, true);
	if (r < 0)
		return r;
	if (v->kind == VOLATILE)
		return create_sparse(dirty, v->size);
	if (v->kind == ORIGIN && access(dirty, F_OK) == 0)
		return 0; /* dirty after a crash: reused as it is */
	if (v->kind == SNAPSHOT) {
		struct volume *src = find_volume(v->source);
		char source_clean[4096];
		if (!src)
			return fail(ENOENT, "source %s of %s", v->source, v->vid);
		image_path(source_clean, sizeof source_clean, src->vid, ".img");
		if ((r = copy_file(source_clean, clean)) < 0)
			return r;
	}
	return copy_file(clean, dirty);
}

static int op_stop(struct volume *v)
{
	char clean[4096], dirty[4096];
	image_path(clean, sizeof clean, v->vid, ".img");
	image_path(dirty, sizeof dirty, v->vid, "-dirty.img");
	if (v->kind == ORIGIN)
		return commit(v, dirty);
	if (v->kind == VOLATILE) {
		struct stat st;
		if (stat(dirty, &st) == 0)
			v->size = (uint64_t)st.st_size;
	}
	int r = remove_file(dirty);
	return r < 0 ? r : remove_file(clean);
}

static int op_import_volume(struct volume *dst, struct volume *src)
{
	if (dst->kind != ORIGIN)
		return 0;
	char from[4096], import[4096];
	image_path(from, sizeof from, src->vid, ".img");
	image_path(import, sizeof import, dst->vid, "-import.img");
	int r = copy_file(from, import);
	if (r == 0)
		r = commit(dst, import);
	if (r < 0)
		unlink(import);
	return r;
}

struct feeder {
	int in, out;
	int err;
};

/* `cat FILE |`: FILE into the pipe */
static void *feed(void *arg)
{
	struct feeder *f = arg;
	char *buf = malloc(COPY_BLOCK);
	if (!buf) {
		f->err = ENOMEM;
		close(f->out);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(f->in, buf, COPY_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				f->err = errno;
			break;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(f->out, buf + done, (size_t)(n - done));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				f->err = errno;
				goto out;
			}
			done += w;
		}
	}
out:
	free(buf);
	close(f->out);
	return NULL;
}

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* import_data (sparse create), the data written, import_data_end(ok) */
static int op_import_data(struct volume *v, uint64_t size, const char *file)
{
	if (v->kind != ORIGIN)
		return fail(EINVAL, "import_data into %s: not an origin", v->vid);
	char import[4096];
	image_path(import, sizeof import, v->vid, "-import.img");
	int r = create_sparse(import, size);
	if (r < 0)
		return r;
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return fail(errno, "pipe");
	struct feeder f = { .in = open(file, O_RDONLY | O_CLOEXEC), .out = pipefd[1] };
	if (f.in < 0) {
		r = fail(errno, "open %s", file);
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	pthread_t thread;
	if ((r = pthread_create(&thread, NULL, feed, &f)) != 0) {
		close(f.in);
		close(pipefd[0]);
		close(pipefd[1]);
		return fail(r, "pthread_create");
	}
	int fd = open(import, O_WRONLY | O_CLOEXEC);
	char *buf = malloc(COPY_BLOCK);
	uint64_t off = 0;
	if (fd < 0)
		r = fail(errno, "open %s", import);
	else if (!buf)
		r = fail(ENOMEM, "buffer");
	while (r == 0) {
		size_t got = 0;
		while (got < COPY_BLOCK) { /* full blocks, as dd iflag=fullblock */
			ssize_t n = read(pipefd[0], buf + got, COPY_BLOCK - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = fail(errno, "read the pipe");
				break;
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		if (r < 0 || got == 0)
			break;
		if (!all_zero(buf, got)) {
			for (size_t done = 0; done < got;) {
				ssize_t w = pwrite(fd, buf + done, got - done, (off_t)(off + done));
				if (w < 0) {
					r = fail(errno, "write %s", import);
					break;
				}
				done += (size_t)w;
			}
		}
		off += got;
	}
	close(pipefd[0]);
	pthread_join(thread, NULL);
	close(f.in);
	free(buf);
	if (fd >= 0)
		close(fd);
	if (r == 0 && f.err)
		r = fail(f.err, "read %s", file);
	if (r == 0 && off != size)
		r = fail(EIO, "import into %s: %" PRIu64 " bytes, expected %" PRIu64, v->vid, off, size);
	if (r == 0)
		r = commit(v, import);
	if (r < 0)
		unlink(import);
	return r;
}

/* ---- start/stop of several volumes ---- */

struct job {
	struct volume *v;
	int (*op)(struct volume *);
	int r;
	char err[ERR_LEN];
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	err_msg[0] = '\0';
	j->r = j->op(j->v);
	sfmt(j->err, sizeof j->err, "%s", err_msg);
	return NULL;
}

static int run_many(int (*op)(struct volume *), struct volume **vols, int n, bool serial)
{
	struct job jobs[MAX_ARGS];
	pthread_t threads[MAX_ARGS];
	bool started[MAX_ARGS] = { false };
	int r = 0;
	for (int i = 0; i < n; i++)
		jobs[i] = (struct job){ .v = vols[i], .op = op };
	if (serial) {
		for (int i = 0; i < n && r == 0; i++)
			r = op(vols[i]);
		return r;
	}
	for (int i = 0; i < n; i++) {
		int e = pthread_create(&threads[i], NULL, run_job, &jobs[i]);
		if (e != 0) {
			r = fail(e, "pthread_create");
			break;
		}
		started[i] = true;
	}
	for (int i = 0; i < n; i++) {
		if (!started[i])
			continue;
		pthread_join(threads[i], NULL);
		if (jobs[i].r < 0 && r == 0) {
			r = jobs[i].r;
			sfmt(err_msg, sizeof err_msg, "%s", jobs[i].err);
		}
	}
	return r;
}

/* ---- the command loop ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		return fail(EINVAL, "size %s", s);
	*out = v;
	return 0;
}

static struct volume *need_volume(const char *vid)
{
	struct volume *v = find_volume(vid);
	if (!v)
		fail(ENOENT, "volume %s was not declared", vid);
	return v;
}

static int declare(int argc, char **argv)
{
	if (argc < 4 || argc > 5)
		return fail(EINVAL, "usage: vol VID origin|snapshot|volatile SIZE [SOURCE]");
	enum kind k;
	if (strcmp(argv[2], "origin") == 0)
		k = ORIGIN;
	else if (strcmp(argv[2], "snapshot") == 0)
		k = SNAPSHOT;
	else if (strcmp(argv[2], "volatile") == 0)
		k = VOLATILE;
	else
		return fail(EINVAL, "kind %s", argv[2]);
	if (k == SNAPSHOT && argc != 5)
		return fail(EINVAL, "snapshot %s needs a source", argv[1]);
	uint64_t size;
	int r = parse_size(argv[3], &size);
	if (r < 0)
		return r;
	struct volume *v = find_volume(argv[1]);
	for (int i = 0; !v && i < MAX_VOLUMES; i++)
		if (!volumes[i].used)
			v = &volumes[i];
	if (!v)
		return fail(ENOSPC, "more than %d volumes", MAX_VOLUMES);
	if (strlen(argv[1]) >= sizeof v->vid || (argc == 5 && strlen(argv[4]) >= sizeof v->source))
		return fail(ENAMETOOLONG, "vid %s", argv[1]);
	*v = (struct volume){ .kind = k, .size = size, .used = true };
	sfmt(v->vid, sizeof v->vid, "%s", argv[1]);
	if (argc == 5)
		sfmt(v->source, sizeof v->source, "%s", argv[4]);
	return 0;
}

static int dispatch(int argc, char **argv)
{
	const char *cmd = argv[0];
	struct volume *a, *b;
	if (strcmp(cmd, "pool") == 0) {
		if (argc != 3)
			return fail(EINVAL, "usage: pool DIR KEEP");
		sfmt(pool_dir, sizeof pool_dir, "%s", argv[1]);
		keep = atoi(argv[2]);
		return make_dir(pool_dir);
	}
	if (!pool_dir[0])
		return fail(EINVAL, "no pool yet");
	if (strcmp(cmd, "vol") == 0)
		return declare(argc, argv);
	if ((strcmp(cmd, "create") == 0 || strcmp(cmd, "remove") == 0) && argc == 2) {
		if (!(a = need_volume(argv[1])))
			return -ENOENT;
		return cmd[0] == 'c' ? op_create(a) : op_remove(a);
	}
	if (strcmp(cmd, "start") == 0 || strcmp(cmd, "stop") == 0) {
		bool serial = argc > 1 && strcmp(argv[1], "-s") == 0;
		struct volume *vols[MAX_ARGS];
		int n = 0;
		for (int i = serial ? 2 : 1; i < argc; i++)
			if (!(vols[n++] = need_volume(argv[i])))
				return -ENOENT;
		if (n == 0)
			return fail(EINVAL, "%s of no volume", cmd);
		return run_many(strcmp(cmd, "start") == 0 ? op_start : op_stop, vols, n, serial);
	}
	if (strcmp(cmd, "import_volume") == 0 && argc == 3) {
		if (!(a = need_volume(argv[1])) || !(b = need_volume(argv[2])))
			return -ENOENT;
		return op_import_volume(a, b);
	}
	if (strcmp(cmd, "import_data") == 0 && argc == 4) {
		uint64_t size;
		int r;
		if (!(a = need_volume(argv[1])))
			return -ENOENT;
		if ((r = parse_size(argv[2], &size)) < 0)
			return r;
		return op_import_data(a, size, argv[3]);
	}
	return fail(EINVAL, "unknown command or wrong arguments: %s", cmd);
}

int main(void)
{
	char line[8192];
	mode_t mask = umask(0);
	umask(mask);
	file_mode = 0666 & ~mask;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin)) {
		char *argv[MAX_ARGS + 2], *save = NULL;
		int argc = 0;
		for (char *t = strtok_r(line, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
			if (argc == MAX_ARGS + 1) {
				argc = -1;
				break;
			}
			argv[argc++] = t;
		}
		if (argc == 0)
			continue;
		if (argc < 0) {
			printf("error too many arguments\n");
			continue;
		}
		if (strcmp(argv[0], "quit") == 0)
			break;
		err_msg[0] = '\0';
		uint64_t t0 = now_ns();
		int r = dispatch(argc, argv);
		uint64_t t1 = now_ns();
		if (r < 0)
			printf("error %s\n", err_msg[0] ? err_msg : strerror(-r));
		else
			printf("ok %" PRIu64 "\n", t1 - t0);
	}
	return 0;
}
