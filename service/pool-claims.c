#include "pool-claims.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"

typedef struct Claim {
        char *name;
        const Driver *driver;
        GHashTable *config;
} Claim;

struct PoolClaims {
        GPtrArray *pools; /* Claim* */
};

static void claim_free(Claim *c) {
        g_free(c->name);
        g_hash_table_unref(c->config);
        g_free(c);
}

PoolClaims *pool_claims_snapshot(Manager *m) {
        PoolClaims *c = g_new0(PoolClaims, 1);
        c->pools = g_ptr_array_new_with_free_func((GDestroyNotify) claim_free);
        g_autoptr(GPtrArray) pools = model_pools(m);
        for (size_t i = 0; i < pools->len; i++) {
                Pool *p = pools->pdata[i];
                Claim *cl = g_new0(Claim, 1);
                cl->name = g_strdup(p->name);
                cl->driver = p->driver;
                /* a published config is replaced, never changed in place */
                cl->config = g_hash_table_ref(p->config);
                g_ptr_array_add(c->pools, cl);
        }
        return c;
}

void pool_claims_free(PoolClaims *c) {
        if (!c)
                return;
        g_ptr_array_unref(c->pools);
        g_free(c);
}

/* The directory with every symlink of its existing part resolved; the part
 * that does not exist yet is appended as it is. */
static char *canonical_dir(const char *dir) {
        g_autofree char *head = g_strdup(dir);
        g_autofree char *tail = g_strdup("");
        for (;;) {
                char buf[PATH_MAX];
                if (realpath(head, buf)) {
                        if (!*tail)
                                return g_strdup(buf);
                        return strcmp(buf, "/") == 0 ? g_strconcat("/", tail, NULL) : g_strconcat(buf, "/", tail, NULL);
                }
                char *slash = strrchr(head, '/');
                if ((errno != ENOENT && errno != ENOTDIR) || !slash || slash == head)
                        return g_strdup(dir);
                char *t = *tail ? g_strconcat(slash + 1, "/", tail, NULL) : g_strdup(slash + 1);
                g_free(tail);
                tail = t;
                *slash = '\0';
        }
}

static bool inside(const char *inner, const char *outer) {
        size_t n = strlen(outer);
        return strncmp(inner, outer, n) == 0 && (inner[n] == '/' || strcmp(outer, "/") == 0) && inner[n] != '\0';
}

/* rest (a relative path) is top or below it. */
static bool under(const char *rest, const char *top) {
        size_t n = strlen(top);
        return strncmp(rest, top, n) == 0 && (rest[n] == '\0' || rest[n] == '/');
}

/* A directory pool: its dir as claimed. */
typedef struct DirClaim {
        char *dir;        /* canonical */
        bool volume_dirs; /* it keeps its volumes under appvms/ and vm-templates/ only */
        bool exists;
        struct stat st;
} DirClaim;

static void dir_claim_init(DirClaim *c, const Driver *d, const char *dir) {
        c->dir = canonical_dir(dir);
        c->volume_dirs = d->creates_volumes;
        c->exists = stat(c->dir, &c->st) == 0;
}

/* Directory pools may not share a directory nor nest; except that a pool
 * that defines no volumes of its own (linux-kernel) may sit inside a file
 * pool's directory outside its volume directories (the default layout:
 * <base>/vm-kernels beside <base>/appvms). */
static bool dirs_clash(const DirClaim *a, const DirClaim *b) {
        if (strcmp(a->dir, b->dir) == 0)
                return true;
        if (a->exists && b->exists && a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino)
                return true;
        const DirClaim *inner = inside(a->dir, b->dir) ? a : inside(b->dir, a->dir) ? b : NULL;
        if (!inner)
                return false;
        const DirClaim *outer = inner == a ? b : a;
        if (inner->volume_dirs || !outer->volume_dirs)
                return true;
        const char *rest = inner->dir + strlen(outer->dir) + (strcmp(outer->dir, "/") != 0);
        return under(rest, "appvms") || under(rest, "vm-templates");
}

static const char *param(GHashTable *config, const char *key) {
        return config ? g_hash_table_lookup(config, key) : NULL;
}

int pool_claims_check(const PoolClaims *c, const char *name, const Driver *d, GHashTable *config,
                      StorageError *err) {
        const char *dir = param(config, "dir_path");
        const char *vg = param(config, "volume_group"), *thin = param(config, "thin_pool");
        DirClaim mine = { 0 };
        if (dir) {
                struct stat st;
                if (strcmp(dir, "/") == 0)
                        return se_set(err, SE_INVALID_ARGUMENT, "Pool %s: dir_path / would hold the whole system",
                                      name);
                if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
                        return se_set(err, SE_INVALID_ARGUMENT,
                                      "Pool %s: dir_path %s is a symlink (name the directory itself)", name, dir);
                dir_claim_init(&mine, d, dir);
                if (strcmp(mine.dir, "/") == 0) {
                        g_free(mine.dir);
                        return se_set(err, SE_INVALID_ARGUMENT, "Pool %s: dir_path %s is / (the whole system)", name,
                                      dir);
                }
        }
        int r = 0;
        for (size_t i = 0; r == 0 && c && i < c->pools->len; i++) {
                const Claim *o = c->pools->pdata[i];
                const char *odir = param(o->config, "dir_path");
                const char *ovg = param(o->config, "volume_group"), *othin = param(o->config, "thin_pool");
                if (dir && odir) {
                        DirClaim theirs = { 0 };
                        dir_claim_init(&theirs, o->driver, odir);
                        if (dirs_clash(&mine, &theirs))
                                r = se_set(err, SE_ALREADY_EXISTS,
                                           "Pool %s: dir_path %s overlaps the directory %s of pool %s", name, dir,
                                           odir, o->name);
                        g_free(theirs.dir);
                } else if (vg && thin && ovg && othin && strcmp(vg, ovg) == 0 && strcmp(thin, othin) == 0)
                        r = se_set(err, SE_ALREADY_EXISTS, "Pool %s: thin pool %s/%s is used by pool %s", name, vg,
                                   thin, o->name);
        }
        g_free(mine.dir);
        return r;
}
