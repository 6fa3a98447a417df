/* The `lvm_thin` driver (docs/drivers.md, "lvm_thin"): volumes are thin
 * LVs in one thin pool, handled through libblockdev's lvm plugin. With vid
 * <vg>/L (default L = vm-<vm>-<name>):
 *   L                 the committed data (origin volumes; a running volatile)
 *   L-snap            what a started origin or snapshot volume uses
 *   L-import          staged import data (origin volumes)
 *   L-<seconds>-back  revisions; the id is "<seconds>-back"
 *   L-export-<n>      thin snapshots handed out by Export
 * ImportBegin hands out not L-import but a device-mapper linear device over
 * it, /dev/mapper/qsd_import_<hash of the vid>_<n>: at import_end its table
 * becomes an error target before L-import is committed or removed, so
 * nothing written through the client's fd afterwards reaches any LV.
 * Everything the driver reports comes from the shared LV cache (lvm-cache.c),
 * refreshed after every change and, for reads, when older than 29 s (a
 * volume's view: 1 s).
 *
 * Cost: each operation comment says how many `lvm` processes it runs. "lvs"
 * is the refresh at the end; transactions that end together (StartVolumes of
 * one VM) share one lvs, so a VM start of three volumes runs 3 + 1.
 */
#include "clock.h"
#include "driver.h"
#include "fileops.h"
#include "lvm-cache.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ThinPool {
        char *vg;
        char *pool;
} ThinPool;

/* ---- names ---- */

typedef struct Names {
        const char *vg;
        char *lv;     /* L */
        char *snap;   /* L-snap */
        char *import; /* L-import */
} Names;

static void names_clear(Names *n) {
        g_free(n->lv);
        g_free(n->snap);
        g_free(n->import);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Names, names_clear)

static void names_get(const ThinPool *p, const char *vid, Names *n) {
        const char *slash = strchr(vid, '/');
        n->vg = p->vg;
        n->lv = g_strdup(slash ? slash + 1 : vid);
        n->snap = g_strconcat(n->lv, "-snap", NULL);
        n->import = g_strconcat(n->lv, "-import", NULL);
}

/* The handed-out devices of the volume: qsd_import_<32 hex digits>_* */
static char *handout_prefix(const char *vid) {
        g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, vid, -1);
        return g_strdup_printf("qsd_import_%.32s", sum);
}

static int fence_handouts(const VolumeSpec *v, StorageError *err) {
        g_autofree char *prefix = handout_prefix(v->vid);
        return lvm_handout_fence(prefix, err);
}

static char *dev_path(const char *vg, const char *lv) {
        return g_strdup_printf("/dev/%s/%s", vg, lv);
}

/* ---- revisions ---- */

typedef struct Rev {
        int64_t secs;
        char *name; /* the LV */
        char *id;   /* "<secs>-back" */
} Rev;

static void rev_free(Rev *r) {
        g_free(r->name);
        g_free(r->id);
        g_free(r);
}

static int cmp_rev(gconstpointer a, gconstpointer b) {
        const Rev *x = *(Rev *const *) a, *y = *(Rev *const *) b;
        return x->secs < y->secs ? -1 : x->secs > y->secs;
}

/* "<L>-<digits>-back": the remainder after "<L>-" has exactly one '-', so
 * VM a's revisions never include a-root's "vm-a-root-private-<s>-back". */
static Rev *parse_rev(const char *lv, const char *name) {
        size_t n = strlen(lv);
        if (strncmp(name, lv, n) != 0 || name[n] != '-')
                return NULL;
        const char *rest = name + n + 1;
        const char *dash = strchr(rest, '-');
        if (!dash || dash == rest || strcmp(dash, "-back") != 0)
                return NULL;
        for (const char *c = rest; c < dash; c++)
                if (!g_ascii_isdigit(*c))
                        return NULL;
        Rev *r = g_new0(Rev, 1);
        r->secs = g_ascii_strtoll(rest, NULL, 10);
        r->name = g_strdup(name);
        r->id = g_strdup(rest);
        return r;
}

/* Oldest first. */
static GPtrArray *list_revisions(const char *vg, const char *lv) {
        GPtrArray *revs = g_ptr_array_new_with_free_func((GDestroyNotify) rev_free);
        g_autofree char *prefix = g_strconcat(lv, "-", NULL);
        g_autoptr(GPtrArray) lvs = lvm_cache_list(vg, prefix);
        for (guint i = 0; i < lvs->len; i++) {
                Rev *r = parse_rev(lv, ((LvmLv *) lvs->pdata[i])->name);
                if (r)
                        g_ptr_array_add(revs, r);
        }
        g_ptr_array_sort(revs, cmp_rev);
        return revs;
}

/* The LV holding the committed data: L, else the newest revision, else NULL
 * (_vid_current of the reference). */
static char *current_lv(const char *vg, const char *lv) {
        if (lvm_cache_has(vg, lv))
                return g_strdup(lv);
        g_autoptr(GPtrArray) revs = list_revisions(vg, lv);
        return revs->len ? g_strdup(((Rev *) revs->pdata[revs->len - 1])->name) : NULL;
}

static char *lv_of_vid(const char *vid) {
        const char *slash = strchr(vid, '/');
        return g_strdup(slash ? slash + 1 : vid);
}

/* The source's committed LV (snapshot volumes). */
static char *source_current(const ThinPool *p, const VolumeSpec *v) {
        if (!v->source)
                return NULL;
        g_autofree char *lv = lv_of_vid(v->source);
        return current_lv(p->vg, lv);
}

/* ---- commit ---- */

/* Makes `from` the committed L (the reference's _commit): the old L becomes
 * L-<now>-back, then revisions beyond revisions_to_keep go (errors there are
 * ignored). Caller holds the transaction. lvm: 2 renames (+1 lvremove when
 * revisions must go). With revisions_to_keep 0 and safe_remove false (stop:
 * a crash in between leaves -snap, which the next start reuses) the old L is
 * removed instead of renamed: lvremove + lvrename. */
static int commit(LvmTx *tx, const VolumeSpec *v, const Names *n, const char *from, bool safe_remove, StorageError *err) {
        g_autoptr(GPtrArray) revs = list_revisions(n->vg, n->lv);
        bool have_current = lvm_cache_has(n->vg, n->lv);
        int keep = v->revisions_to_keep > 0 ? v->revisions_to_keep : 0;
        g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func(g_free);

        if (keep == 0 && !safe_remove) {
                if (have_current)
                        g_ptr_array_add(doomed, g_strdup(n->lv));
                for (guint i = 0; i < revs->len; i++)
                        g_ptr_array_add(doomed, g_strdup(((Rev *) revs->pdata[i])->name));
                g_ptr_array_add(doomed, NULL);
                if (doomed->len > 1 && lvm_remove(tx, (const char *const *) doomed->pdata, err) < 0)
                        return -1;
                return lvm_rename(tx, from, n->lv, err);
        }
        if (have_current) {
                /* the newest revision sorts last, whatever the clock did */
                int64_t secs = (int64_t) (clock_usec(CLOCK_REALTIME) / G_USEC_PER_SEC);
                if (revs->len && ((Rev *) revs->pdata[revs->len - 1])->secs >= secs)
                        secs = ((Rev *) revs->pdata[revs->len - 1])->secs + 1;
                g_autofree char *back = NULL;
                for (;; secs++) {
                        g_free(back);
                        back = g_strdup_printf("%s-%" PRId64 "-back", n->lv, secs);
                        if (!lvm_cache_has(n->vg, back))
                                break;
                }
                if (lvm_rename(tx, n->lv, back, err) < 0)
                        return -1;
                Rev *r = g_new0(Rev, 1);
                r->secs = secs;
                r->name = g_steal_pointer(&back);
                g_ptr_array_add(revs, r);
                g_ptr_array_sort(revs, cmp_rev);
        }
        if (lvm_rename(tx, from, n->lv, err) < 0)
                return -1;
        for (guint i = 0; (int) (revs->len - i) > keep; i++)
                g_ptr_array_add(doomed, g_strdup(((Rev *) revs->pdata[i])->name));
        g_ptr_array_add(doomed, NULL);
        StorageError ignored = STORAGE_ERROR_INIT;
        if (doomed->len > 1 && lvm_remove(tx, (const char *const *) doomed->pdata, &ignored) < 0)
                g_warning("Volume %s: %s", v->vid, ignored.message);
        se_clear(&ignored);
        return 0;
}

/* ---- pool ---- */

static int thin_pool_open(GHashTable *config, void **pool, StorageError *err) {
        const char *vg = g_hash_table_lookup(config, "volume_group");
        const char *tp = g_hash_table_lookup(config, "thin_pool");
        if (!vg || !*vg)
                return se_set(err, SE_INVALID_ARGUMENT, "Missing parameter volume_group");
        if (!tp || !*tp)
                return se_set(err, SE_INVALID_ARGUMENT, "Missing parameter thin_pool");
        if (!lvm_valid_name(vg))
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid volume_group '%s'", vg);
        if (!lvm_valid_name(tp))
                return se_set(err, SE_INVALID_ARGUMENT, "Invalid thin_pool '%s'", tp);
        /* normally done by the service before threads start; a no-op then */
        if (lvm_init(err) < 0)
                return -1;
        ThinPool *p = g_new0(ThinPool, 1);
        p->vg = g_strdup(vg);
        p->pool = g_strdup(tp);
        *pool = p;
        return 0;
}

static void thin_pool_free(void *pool) {
        ThinPool *p = pool;
        if (!p)
                return;
        g_free(p->vg);
        g_free(p->pool);
        g_free(p);
}

/* lvm: 1 (lvs). */
static int thin_pool_setup(void *pool, StorageError *err) {
        ThinPool *p = pool;
        if (lvm_cache_ensure(0, err) < 0)
                return -1;
        g_autoptr(LvmLv) lv = lvm_cache_get(p->vg, p->pool);
        if (!lv)
                return se_set(err, SE_FAILED, "Thin pool %s/%s does not exist", p->vg, p->pool);
        if (!lv->attr || lv->attr[0] != 't')
                return se_set(err, SE_FAILED, "Volume %s/%s is not a thin pool", p->vg, p->pool);
        return 0;
}

/* lvm: 0, or 1 (lvs) when the cache is older than 29 s. */
static int thin_pool_usage(void *pool, PoolUsage *out, StorageError *err) {
        ThinPool *p = pool;
        *out = (PoolUsage) { .has_data = true, .has_metadata = true };
        int r = lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err);
        g_autoptr(LvmLv) lv = lvm_cache_get(p->vg, p->pool);
        if (lv) {
                out->size = lv->size;
                out->usage = (uint64_t) ((double) lv->size * lv->data_percent / 100.0);
                out->metadata_size = lv->metadata_size;
                out->metadata_usage = (uint64_t) ((double) lv->metadata_size * lv->metadata_percent / 100.0);
        }
        return r;
}

/* RefreshUsage: lvm 1 (lvs), whatever the cache's age. */
static int thin_pool_refresh(void *pool, StorageError *err) {
        return lvm_cache_ensure(0, err);
}

/* ---- volumes ---- */

static bool reserved_suffix(const char *lv) {
        static const char *const suffixes[] = { "-snap", "-import", "-back", NULL };
        for (size_t i = 0; suffixes[i]; i++)
                if (g_str_has_suffix(lv, suffixes[i]))
                        return true;
        return strstr(lv, "-export-") != NULL;
}

static int thin_volume_init(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        if (!v->vid || !*v->vid) {
                g_free(v->vid);
                v->vid = g_strdup_printf("%s/vm-%s-%s", p->vg, v->vm, v->name);
        }
        size_t n = strlen(p->vg);
        const char *lv = v->vid + n + 1;
        if (strncmp(v->vid, p->vg, n) != 0 || v->vid[n] != '/')
                return se_set(err, SE_INVALID_ARGUMENT, "Volume %s: lvm_thin vids are %s/<logical volume>", v->vid, p->vg);
        /* room for the longest suffix, "-<seconds>-back" */
        if (!lvm_valid_name(lv) || strchr(lv, '/') || strlen(lv) > 110)
                return se_set(err, SE_INVALID_ARGUMENT, "Volume %s: '%s' is not a valid logical volume name", v->vid, lv);
        if (reserved_suffix(lv))
                return se_set(err, SE_INVALID_ARGUMENT,
                              "Volume %s: logical volume names ending in -snap, -import or -back, or containing -export-, are "
                              "reserved",
                              v->vid);
        return 0;
}

static int missing(StorageError *err, const char *vid) {
        return se_set(err, SE_MISSING_IMAGE, "volume %s missing", vid);
}

/* Origin: lvm 1 (lvcreate, or a thin snapshot of the source's committed LV
 * when a source is set) + lvs. Other kinds: nothing (their LVs exist only
 * while started). */
static int thin_volume_create(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (volume_kind(v) != VOLUME_ORIGIN)
                return 0;
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        if (lvm_cache_has(n.vg, n.lv))
                return se_set(err, SE_ALREADY_EXISTS, "Volume %s: logical volume %s/%s already exists", v->vid, n.vg, n.lv);
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r;
        if (v->source) {
                g_autofree char *src = source_current(p, v);
                r = src ? lvm_snapshot(&tx, src, n.lv, err) : missing(err, v->source);
        } else
                r = lvm_create_thin(&tx, p->pool, n.lv, v->size, err);
        lvm_tx_end(&tx, true);
        if (r == 0) {
                g_autoptr(LvmLv) lv = lvm_cache_get(n.vg, n.lv);
                if (lv)
                        v->size = lv->size;
        }
        return r;
}

/* lvm: 1 lvremove for every LV the volume owns (L, -snap, -import,
 * revisions, exports) + lvs; nothing when it owns none. dmsetup: 1 + 2 per
 * handed-out device still there. */
/* Removes the LVs named in doomed (an array of strings) in one transaction. */
static int remove_lvs(const char *vg, GPtrArray *doomed, StorageError *err) {
        if (doomed->len == 0)
                return 0;
        g_ptr_array_add(doomed, NULL);
        LvmTx tx;
        lvm_tx_begin(&tx, vg);
        int r = lvm_remove(&tx, (const char *const *) doomed->pdata, err);
        lvm_tx_end(&tx, true);
        return r;
}

static int thin_volume_remove(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0 || fence_handouts(v, err) < 0)
                return -1;
        g_autofree char *prefix = g_strconcat(n.lv, "-", NULL);
        g_autofree char *exports = g_strconcat(n.lv, "-export-", NULL);
        g_autoptr(GPtrArray) mine = lvm_cache_list(n.vg, prefix);
        g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func(g_free);
        if (lvm_cache_has(n.vg, n.lv))
                g_ptr_array_add(doomed, g_strdup(n.lv));
        for (guint i = 0; i < mine->len; i++) {
                const char *name = ((LvmLv *) mine->pdata[i])->name;
                Rev *r = parse_rev(n.lv, name);
                if (r || strcmp(name, n.snap) == 0 || strcmp(name, n.import) == 0 || g_str_has_prefix(name, exports))
                        g_ptr_array_add(doomed, g_strdup(name));
                if (r)
                        rev_free(r);
        }
        return remove_lvs(n.vg, doomed, err);
}

static int import_busy(StorageError *err, const VolumeSpec *v) {
        return se_set(err, SE_VOLUME_BUSY, "Import operation in progress on %s", v->vid);
}

/* Makes sure the LV a started volume uses is active (an LV made inactive
 * outside, e.g. after a reboot without auto-activation). lvm: 0, or 1. */
static int ensure_active(LvmTx *tx, const char *vg, const char *name, StorageError *err) {
        g_autoptr(LvmLv) lv = lvm_cache_get(vg, name);
        if (lv && lv->attr && strlen(lv->attr) > 4 && lv->attr[4] != 'a')
                return lvm_activate(tx, name, err);
        return 0;
}

/* Origin (clean) or snapshot: lvm 1 (thin snapshot of the committed LV as
 * -snap) + lvs; +1 lvremove if a stale -snap of a snapshot volume is left,
 * +1 lvextend if the snapshot volume was resized beyond its source.
 * Origin left dirty by a crash: its -snap is reused, lvm 0 (+1 to activate).
 * Volatile: lvm 1 (lvcreate of a fresh L) + lvs; +1 lvremove if a stale L
 * is left. With the batch refresh, StartVolumes of one VM runs one lvs. */
static int thin_volume_start(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        if (lvm_cache_has(n.vg, n.import))
                return import_busy(err, v);
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r = 0;
        bool snap = lvm_cache_has(n.vg, n.snap);
        if (volume_kind(v) == VOLUME_VOLATILE) {
                const char *old[] = { n.lv, NULL };
                /* if it stays, the create below fails and says why */
                if (lvm_cache_has(n.vg, n.lv))
                        lvm_remove(&tx, old, NULL);
                r = lvm_create_thin(&tx, p->pool, n.lv, v->size, err);
        } else if (volume_kind(v) == VOLUME_ORIGIN && snap) {
                /* dirty: a crash while running; the running data is kept */
                r = ensure_active(&tx, n.vg, n.snap, err);
        } else {
                const char *old[] = { n.snap, NULL };
                /* if it stays, the snapshot below fails and says why */
                if (snap)
                        lvm_remove(&tx, old, NULL);
                g_autofree char *from = v->snap_on_start && v->source ? source_current(p, v) : current_lv(n.vg, n.lv);
                if (!from)
                        r = missing(err, v->snap_on_start && v->source ? v->source : v->vid);
                else
                        r = lvm_snapshot(&tx, from, n.snap, err);
                if (r == 0 && volume_kind(v) == VOLUME_SNAPSHOT) {
                        g_autoptr(LvmLv) lv = lvm_cache_get(n.vg, n.snap);
                        if (lv && v->size > lv->size)
                                r = lvm_extend(&tx, n.snap, v->size, err);
                }
        }
        lvm_tx_end(&tx, true);
        return r;
}

/* Origin: commit -snap (lvm 2 or 3, see commit()) + lvs; nothing when there
 * is no -snap. Snapshot: lvm 1 (lvremove -snap) + lvs. Volatile: lvm 1
 * (lvremove L) + lvs; the volume keeps L's size as its nominal size. */
static int thin_volume_stop(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        const char *doomed = volume_kind(v) == VOLUME_VOLATILE ? n.lv : n.snap;
        g_autoptr(LvmLv) lv = lvm_cache_get(n.vg, doomed);
        if (!lv)
                return 0;
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r;
        if (volume_kind(v) == VOLUME_ORIGIN)
                r = commit(&tx, v, &n, n.snap, false, err);
        else {
                const char *names[] = { doomed, NULL };
                r = lvm_remove(&tx, names, err);
                if (r == 0 && volume_kind(v) == VOLUME_VOLATILE)
                        v->size = lv->size;
        }
        lvm_tx_end(&tx, true);
        return r;
}

/* lvm: 0, or 1 (lvs) when the cache is older than 29 s. */
static int thin_volume_verify(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        if (volume_kind(v) == VOLUME_VOLATILE)
                return 0;
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        bool from_source = volume_kind(v) == VOLUME_SNAPSHOT || (v->snap_on_start && v->source);
        g_autofree char *cur = from_source ? source_current(p, v) : current_lv(n.vg, n.lv);
        if (!cur && volume_kind(v) == VOLUME_ORIGIN && lvm_cache_has(n.vg, n.snap))
                return 0; /* a crash between the two steps of a commit: start reuses -snap */
        if (!cur)
                return missing(err, from_source && v->source ? v->source : v->vid);
        return 0;
}

/* Stopped volatile or snapshot volume: no LV, lvm 0 (the next start uses the
 * new size). Otherwise lvm 1 (lvresize of -snap when started, else -import
 * while an import is staged, else L) + lvs. */
static int thin_volume_resize(void *pool, VolumeSpec *v, uint64_t size, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        const char *target = NULL;
        if (volume_kind(v) == VOLUME_VOLATILE)
                target = lvm_cache_has(n.vg, n.lv) ? n.lv : NULL;
        else if (lvm_cache_has(n.vg, n.snap))
                target = n.snap;
        else if (volume_kind(v) == VOLUME_ORIGIN && lvm_cache_has(n.vg, n.import))
                target = n.import;
        else if (volume_kind(v) == VOLUME_ORIGIN && lvm_cache_has(n.vg, n.lv))
                target = n.lv;
        if (!target) {
                v->size = size;
                return 0;
        }
        g_autoptr(LvmLv) cur = lvm_cache_get(n.vg, target);
        if (cur && size < cur->size)
                return se_set(err, SE_SHRINK_REFUSED,
                              "For your own safety, shrinking of %s is disabled (%" PRIu64 " < %" PRIu64
                              "). If you really know what you are doing, use `lvresize` on %s manually.",
                              v->vid, size, cur->size, v->vid);
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r = lvm_extend(&tx, target, size, err);
        lvm_tx_end(&tx, true);
        if (r == 0) {
                g_autoptr(LvmLv) lv = lvm_cache_get(n.vg, target);
                v->size = lv && lv->size > size ? lv->size : size;
        }
        return r;
}

/* lvm: 2 (lvremove L, thin snapshot of the revision as L) + lvs. The set of
 * revisions does not change. */
static int thin_volume_revert(void *pool, VolumeSpec *v, const char *rev, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        if (volume_kind(v) == VOLUME_ORIGIN && lvm_cache_has(n.vg, n.snap))
                return se_set(err, SE_VOLUME_BUSY, "Cannot revert dirty volume %s, stop the qube first", v->vid);
        if (lvm_cache_has(n.vg, n.import))
                return se_set(err, SE_IMPORT_IN_PROGRESS, "Import operation in progress on %s", v->vid);
        g_autoptr(GPtrArray) revs = list_revisions(n.vg, n.lv);
        const Rev *chosen = NULL;
        for (guint i = 0; i < revs->len; i++) {
                Rev *r = revs->pdata[i];
                if (rev ? strcmp(rev, r->id) == 0 : i == revs->len - 1)
                        chosen = r;
        }
        if (!chosen)
                return se_set(err, SE_NO_SUCH_REVISION, "Volume %s has no /dev/%s-%s", v->vid, v->vid, rev ? rev : "");
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r = 0;
        const char *old[] = { n.lv, NULL };
        if (lvm_cache_has(n.vg, n.lv))
                r = lvm_remove(&tx, old, err);
        if (r == 0)
                r = lvm_snapshot(&tx, chosen->name, n.lv, err);
        lvm_tx_end(&tx, true);
        return r;
}

/* lvm: 0, or 1 (lvs) when the cache is older than 1 s (LVM_VIEW_MAX_AGE_USEC). */
static int thin_volume_query(void *pool, const VolumeSpec *v, VolumeInfo *out, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        int r = lvm_cache_ensure(LVM_VIEW_MAX_AGE_USEC, err);
        g_autoptr(LvmLv) snap = volume_kind(v) == VOLUME_VOLATILE ? NULL : lvm_cache_get(n.vg, n.snap);
        g_autoptr(GPtrArray) revs = list_revisions(n.vg, n.lv);
        g_autofree char *cur = current_lv(n.vg, n.lv);
        g_autoptr(LvmLv) cur_lv = cur ? lvm_cache_get(n.vg, cur) : NULL;
        const LvmLv *data = snap ? snap : cur_lv;
        out->size = data ? data->size : v->size;
        out->usage = data ? (uint64_t) ((double) data->size * data->data_percent / 100.0) : 0;
        out->dirty = volume_kind(v) == VOLUME_ORIGIN && snap;
        if (volume_kind(v) == VOLUME_SNAPSHOT && snap) {
                g_autofree char *src = source_current(p, v);
                out->outdated = !src || g_strcmp0(snap->origin, src) != 0;
        }
        for (guint i = 0; i < revs->len; i++) {
                Rev *rv = revs->pdata[i];
                g_autofree char *stamp = fo_iso8601_utc((time_t) rv->secs);
                volume_info_add_revision(out, rv->id, stamp);
        }
        if (snap)
                out->path = dev_path(n.vg, n.snap);
        else if (volume_kind(v) == VOLUME_SNAPSHOT && v->source) {
                g_autofree char *src = source_current(p, v);
                g_autofree char *src_lv = lv_of_vid(v->source);
                out->path = dev_path(n.vg, src ? src : src_lv);
        } else
                out->path = dev_path(n.vg, cur ? cur : n.lv);
        out->bdev_path = dev_path(n.vg, volume_kind(v) == VOLUME_VOLATILE ? n.lv : n.snap);
        out->bdev_script = g_strdup("");
        out->bdev_devtype = g_strdup("disk");
        out->bdev_rw = v->rw;
        volume_info_fill_defaults(out);
        return r;
}

/* lvm: 1 (lvcreate of -import at size) + lvs; +1 lvremove of a leftover
 * -import. dmsetup: 1 (ls) + 1 (create of the handed-out device). */
static int thin_volume_import_begin(void *pool, VolumeSpec *v, uint64_t size, char **path, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0 || fence_handouts(v, err) < 0)
                return -1;
        if (lvm_cache_has(n.vg, n.snap))
                return se_set(err, SE_VOLUME_BUSY, "Cannot import data to dirty volume %s, stop the qube first", v->vid);
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r = 0;
        const char *old[] = { n.import, NULL };
        if (lvm_cache_has(n.vg, n.import))
                r = lvm_remove(&tx, old, err);
        if (r == 0)
                r = lvm_create_thin(&tx, p->pool, n.import, size, err);
        lvm_tx_end(&tx, true);
        if (r < 0)
                return r;
        g_autoptr(LvmLv) staged = lvm_cache_get(n.vg, n.import);
        g_autofree char *prefix = handout_prefix(v->vid);
        if (lvm_handout_create(n.vg, n.import, staged ? staged->size : size, prefix, path, err) < 0) {
                lvm_tx_begin(&tx, n.vg);
                const char *names[] = { n.import, NULL };
                /* the hand-out's error is the one to report; a staged LV
                 * that stays is replaced by the next ImportBegin */
                lvm_remove(&tx, names, NULL);
                lvm_tx_end(&tx, true);
                return -1;
        }
        return 0;
}

/* First the handed-out device is cut off (dmsetup: 1 + 2), whether or not
 * a client holds it (handed_out): -import is then held by nobody, and what
 * is committed can no longer be written through it.
 * Success: commit -import as L (lvm 2, or 3 when revisions must go) + lvs.
 * Failure: lvm 1 (lvremove -import) + lvs. */
static int thin_volume_import_end(void *pool, VolumeSpec *v, bool success, bool handed_out, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (fence_handouts(v, err) < 0)
                return -1; /* nothing committed while a client may still write to it */
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r = 0;
        g_autoptr(LvmLv) staged = lvm_cache_get(n.vg, n.import);
        if (!staged)
                r = se_set(err, SE_NO_IMPORT_IN_PROGRESS, "No import operation in progress on %s", v->vid);
        else if (success) {
                r = commit(&tx, v, &n, n.import, true, err);
                if (r < 0) {
                        const char *names[] = { n.import, NULL };
                        /* the commit's error is the one to report */
                        lvm_remove(&tx, names, NULL);
                }
        } else {
                const char *names[] = { n.import, NULL };
                r = lvm_remove(&tx, names, err);
        }
        lvm_tx_end(&tx, true);
        if (r == 0 && success) {
                g_autoptr(LvmLv) lv = lvm_cache_get(n.vg, n.lv);
                v->size = lv ? lv->size : staged->size;
        }
        return r;
}

/* Same pool: -import is a thin snapshot of the source's committed LV.
 * lvm: 1 (+1 lvremove of a leftover -import); no lvs: import_end follows at
 * once and refreshes for both. */
static int thin_volume_import_clone(void *pool, VolumeSpec *v, const VolumeSpec *src, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        g_autofree char *src_lv = lv_of_vid(src->vid);
        g_autofree char *from = current_lv(n.vg, src_lv);
        if (!from)
                return missing(err, src->vid);
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        int r = 0;
        const char *old[] = { n.import, NULL };
        if (lvm_cache_has(n.vg, n.import))
                r = lvm_remove(&tx, old, err);
        if (r == 0)
                r = lvm_snapshot(&tx, from, n.import, err);
        lvm_tx_end(&tx, r < 0);
        return r;
}

/* A thin snapshot of the committed LV, L-export-<n>, active: stable until
 * export_end. lvm: 1 + lvs. */
static int thin_volume_export(void *pool, VolumeSpec *v, char **path, bool *stable, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0)
                return -1;
        g_autofree char *cur = current_lv(n.vg, n.lv);
        if (!cur)
                return missing(err, v->vid);
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        g_autofree char *name = NULL;
        for (unsigned i = 1;; i++) {
                g_free(name);
                name = g_strdup_printf("%s-export-%u", n.lv, i);
                if (!lvm_cache_has(n.vg, name))
                        break;
        }
        int r = lvm_snapshot(&tx, cur, name, err);
        lvm_tx_end(&tx, true);
        if (r == 0) {
                *path = dev_path(n.vg, name);
                *stable = true;
        }
        return r;
}

/* lvm: 1 (lvremove of the export snapshot) + lvs. */
static int thin_volume_export_end(void *pool, VolumeSpec *v, const char *path, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        g_autofree char *prefix = g_strdup_printf("/dev/%s/%s-export-", n.vg, n.lv);
        if (!path || !g_str_has_prefix(path, prefix))
                return se_set(err, SE_INVALID_ARGUMENT, "Volume %s has no export %s", v->vid, path ? path : "");
        const char *name = path + strlen("/dev/") + strlen(n.vg) + 1;
        if (!lvm_cache_has(n.vg, name))
                return 0;
        LvmTx tx;
        lvm_tx_begin(&tx, n.vg);
        const char *names[] = { name, NULL };
        int r = lvm_remove(&tx, names, err);
        lvm_tx_end(&tx, true);
        return r;
}

/* Service start: what lived only as long as an earlier run: its handed-out
 * devices, its staged import (-import) and its export snapshots
 * (-export-<n>). lvm: 0, or 1 lvremove + lvs; dmsetup: 1 (+2 per handed-out
 * device left). An LV a client still holds open stays (and is warned about). */
static int thin_volume_cleanup(void *pool, VolumeSpec *v, StorageError *err) {
        ThinPool *p = pool;
        g_auto(Names) n = { 0 };
        names_get(p, v->vid, &n);
        if (lvm_cache_ensure(LVM_CACHE_MAX_AGE_USEC, err) < 0 || fence_handouts(v, err) < 0)
                return -1;
        g_autofree char *exports = g_strconcat(n.lv, "-export-", NULL);
        g_autoptr(GPtrArray) left = lvm_cache_list(n.vg, exports);
        g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func(g_free);
        if (volume_kind(v) == VOLUME_ORIGIN && lvm_cache_has(n.vg, n.import))
                g_ptr_array_add(doomed, g_strdup(n.import));
        for (guint i = 0; i < left->len; i++)
                g_ptr_array_add(doomed, g_strdup(((LvmLv *) left->pdata[i])->name));
        return remove_lvs(n.vg, doomed, err);
}

static const char *const thin_params[] = { "revisions_to_keep", "volume_group", "thin_pool", NULL };

const Driver driver_lvm_thin = {
        .name = "lvm_thin",
        .params = thin_params,
        .max_revisions_to_keep = -1,
        .creates_volumes = true,
        .can_shrink = false,
        .init = lvm_init,
        .pool_open = thin_pool_open,
        .pool_free = thin_pool_free,
        .pool_setup = thin_pool_setup,
        .pool_usage = thin_pool_usage,
        .pool_refresh = thin_pool_refresh,
        .volume_init = thin_volume_init,
        .volume_create = thin_volume_create,
        .volume_remove = thin_volume_remove,
        .volume_start = thin_volume_start,
        .volume_stop = thin_volume_stop,
        .volume_verify = thin_volume_verify,
        .volume_resize = thin_volume_resize,
        .volume_revert = thin_volume_revert,
        .volume_query = thin_volume_query,
        .volume_import_begin = thin_volume_import_begin,
        .volume_import_end = thin_volume_import_end,
        .volume_import_clone = thin_volume_import_clone,
        .volume_export = thin_volume_export,
        .volume_export_end = thin_volume_export_end,
        .volume_cleanup = thin_volume_cleanup,
};
