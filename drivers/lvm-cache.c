/* The LV cache and the lvm commands of the lvm_thin driver (see lvm-cache.h).
 *
 * Cache consistency: an lvs never runs while a transaction does. A refresh
 * waits until the transactions in flight have ended and holds back new ones
 * meanwhile (the way a writer-preferring lock would), so the table it reads
 * reflects every change made so far and nothing half-done; between two reads
 * each command applies its own effect to the table at once. Only one lvs
 * runs at a time; a caller waits until a refresh that started after its
 * request has been applied ("covered"), and one lvs covers every request
 * made before it started: transactions that end together share it.
 */
#include "lvm-cache.h"
#include "clock.h"

#include <blockdev/blockdev.h>
#include <blockdev/lvm.h>
#include <blockdev/utils.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define LVS_FIELDS "vg_name,pool_lv,lv_name,lv_size,data_percent,lv_attr,origin,lv_metadata_size,metadata_percent"

void lvm_lv_free(LvmLv *lv) {
        if (!lv)
                return;
        g_free(lv->vg);
        g_free(lv->pool_lv);
        g_free(lv->name);
        g_free(lv->attr);
        g_free(lv->origin);
        g_free(lv);
}

static LvmLv *lv_copy(const LvmLv *lv) {
        LvmLv *c = g_new0(LvmLv, 1);
        *c = *lv;
        c->vg = g_strdup(lv->vg);
        c->pool_lv = g_strdup(lv->pool_lv);
        c->name = g_strdup(lv->name);
        c->attr = g_strdup(lv->attr);
        c->origin = g_strdup(lv->origin);
        return c;
}

static char *lv_key(const char *vg, const char *name) {
        return g_strconcat(vg, "/", name, NULL);
}

/* ---- libblockdev ---- */

static int init_result = 1; /* 1: not tried */
static GMutex init_lock;

int lvm_init(StorageError *err) {
        g_mutex_lock(&init_lock);
        if (init_result == 1) {
                g_autoptr(GError) e = NULL;
                /* the checks look for tools we do not use (and set an
                 * environment variable: this runs before threads start);
                 * if they stay on, bd_ensure_init below says what failed */
                bd_switch_init_checks(FALSE, NULL);
                BDPluginSpec lvm = { BD_PLUGIN_LVM, "libbd_lvm.so.2" };
                BDPluginSpec *plugins[] = { &lvm, NULL };
                init_result = bd_ensure_init(plugins, NULL, &e) ? 0 : -1;
                if (init_result < 0)
                        g_warning("Cannot initialise libblockdev's lvm plugin: %s", e ? e->message : "unknown error");
        }
        int r = init_result;
        g_mutex_unlock(&init_lock);
        if (r < 0)
                return se_set(err, SE_FAILED, "Cannot initialise libblockdev's lvm plugin");
        return 0;
}

/* LVM's stderr without the noise: "Process reported exit code N: " and the
 * over-provisioning warnings (thin pools are over-provisioned on purpose). */
static char *lvm_reason(const GError *e) {
        if (!e)
                return g_strdup("unknown error");
        const char *msg = e->message;
        const char *colon = g_str_has_prefix(msg, "Process reported exit code ") ? strchr(msg, ':') : NULL;
        if (colon)
                msg = colon + 1;
        g_auto(GStrv) lines = g_strsplit(msg, "\n", -1);
        GString *out = g_string_new(NULL);
        for (size_t i = 0; lines[i]; i++) {
                char *l = g_strstrip(lines[i]);
                if (!*l || strstr(l, "exceeds the size of thin pool") || strstr(l, "Sum of all thin volume sizes") ||
                    strstr(l, "leaked on lvm invocation"))
                        continue;
                if (out->len)
                        g_string_append(out, "; ");
                g_string_append(out, l);
        }
        if (!out->len)
                g_string_append(out, e->message);
        return g_string_free(out, FALSE);
}

/* what: "Cannot ... vg/lv"; takes it */
static int lvm_error(StorageError *err, GError *e, char *what) {
        g_autofree char *reason = lvm_reason(e);
        g_autofree char *w = what;
        StorageErrorCode code = strstr(reason, "already exists") ? SE_ALREADY_EXISTS : SE_FAILED;
        return se_set(err, code, "%s: %s", w, reason);
}

/* ---- the cache ---- */

typedef enum NoteKind { NOTE_CREATE, NOTE_REMOVE, NOTE_RENAME, NOTE_RESIZE } NoteKind;

static struct {
        GMutex lock;
        GCond cond;
        GHashTable *table;       /* "vg/name" -> LvmLv* */
        int64_t read_usec;       /* monotonic time of the last applied lvs; 0 never */
        uint64_t requests;       /* refresh requests so far */
        uint64_t covered;        /* requests answered by an applied lvs */
        bool refreshing;         /* an lvs is running */
        unsigned waiting;        /* callers waiting for a refresh: no new transaction */
        unsigned pending;        /* transactions begun and not ended */
        GHashTable *vg_locks;    /* vg -> GMutex* (never freed) */
} C;

static void ensure_tables(void) {
        if (!C.table) {
                C.table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) lvm_lv_free);
                C.vg_locks = g_hash_table_new(g_str_hash, g_str_equal);
        }
}

static bool parse_u64(const char *s, uint64_t *out) {
        if (!s || !*s)
                return false;
        char *end = NULL;
        guint64 v = g_ascii_strtoull(s, &end, 10);
        if (end == s || (*end && strcmp(end, "B") != 0))
                return false;
        *out = v;
        return true;
}

static double parse_percent(const char *s) {
        if (!s || !*s)
                return 0;
        double d = g_ascii_strtod(s, NULL);
        return d > 0 ? d : 0;
}

static GHashTable *parse_lvs(const char *out) {
        GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) lvm_lv_free);
        g_auto(GStrv) lines = g_strsplit(out ? out : "", "\n", -1);
        for (size_t i = 0; lines[i]; i++) {
                char *line = g_strstrip(lines[i]);
                if (!*line)
                        continue;
                g_auto(GStrv) f = g_strsplit(line, ";", -1);
                if (g_strv_length(f) < 9)
                        continue;
                for (size_t k = 0; f[k]; k++)
                        g_strstrip(f[k]);
                uint64_t size = 0;
                /* rows without vg, name or size are not LVs we can use */
                if (!*f[0] || !*f[2] || !parse_u64(f[3], &size))
                        continue;
                LvmLv *lv = g_new0(LvmLv, 1);
                lv->vg = g_strdup(f[0]);
                lv->pool_lv = g_strdup(f[1]);
                lv->name = g_strdup(f[2]);
                lv->size = size;
                lv->data_percent = parse_percent(f[4]);
                lv->attr = g_strdup(f[5]);
                lv->origin = g_strdup(f[6]);
                parse_u64(f[7], &lv->metadata_size);
                lv->metadata_percent = parse_percent(f[8]);
                g_hash_table_replace(t, lv_key(lv->vg, lv->name), lv);
        }
        return t;
}

/* Called with C.lock held, inside a transaction: applies the effect of a
 * command that succeeded to the table. */
static void note(NoteKind kind, const char *vg, const char *name, const char *new_name, uint64_t size,
                 const LvmLv *created) {
        ensure_tables();
        g_autofree char *key = lv_key(vg, created ? created->name : name);
        LvmLv *cur = g_hash_table_lookup(C.table, key);
        switch (kind) {
        case NOTE_CREATE:
                g_hash_table_replace(C.table, g_steal_pointer(&key), lv_copy(created));
                break;
        case NOTE_REMOVE:
                g_hash_table_remove(C.table, key);
                break;
        case NOTE_RENAME:
                if (cur) {
                        gpointer k = NULL, v = NULL;
                        g_hash_table_steal_extended(C.table, key, &k, &v);
                        g_free(k);
                        cur = v;
                        g_free(cur->name);
                        cur->name = g_strdup(new_name);
                        g_hash_table_replace(C.table, lv_key(vg, new_name), cur);
                }
                break;
        case NOTE_RESIZE:
                if (cur && cur->size < size)
                        cur->size = size;
                break;
        }
}

/* One lvs. Called and returns with C.lock held, no transaction running;
 * drops the lock while lvs runs (new transactions wait for it). */
static int refresh_locked(StorageError *err) {
        ensure_tables();
        C.refreshing = true;
        uint64_t covers = C.requests;
        int64_t started = (int64_t) clock_usec(CLOCK_MONOTONIC);
        g_mutex_unlock(&C.lock);

        const char *argv[] = { "lvm", "lvs", "--noheadings", "--units", "b", "--separator", ";", "-o", LVS_FIELDS, NULL };
        g_autofree char *out = NULL;
        g_autoptr(GError) e = NULL;
        /* libblockdev runs it with LC_ALL=C; no output at all (no LV anywhere)
         * is reported as a failure without an error, or as NOOUT */
        gboolean ok = bd_utils_exec_and_capture_output(argv, NULL, &out, &e);
        bool empty = !ok && (!e || g_error_matches(e, BD_UTILS_EXEC_ERROR, BD_UTILS_EXEC_ERROR_NOOUT));
        GHashTable *t = ok || empty ? parse_lvs(out) : NULL;

        g_mutex_lock(&C.lock);
        C.refreshing = false;
        int r = 0;
        if (t) {
                g_hash_table_unref(C.table);
                C.table = t;
                C.read_usec = started; /* the data is at least this fresh */
        } else {
                g_autofree char *reason = lvm_reason(e);
                r = se_set(err, SE_FAILED, "Cannot list logical volumes (lvs): %s", reason);
                C.read_usec = 0; /* the next reader tries again */
        }
        /* a failed lvs answers its requests too: they get the error, and the
         * cache keeps its age so the next reader tries again */
        if (covers > C.covered)
                C.covered = covers;
        g_cond_broadcast(&C.cond);
        return r;
}

/* Waits (C.lock held) until request req is covered by an applied lvs: lets
 * the transactions in flight end first, and holds back new ones. */
static int wait_covered(uint64_t req, StorageError *err) {
        int r = 0;
        C.waiting++;
        while (C.covered < req) {
                if (C.refreshing || C.pending > 0) {
                        g_cond_wait(&C.cond, &C.lock);
                        continue;
                }
                if (refresh_locked(err) < 0)
                        r = -1;
        }
        C.waiting--;
        g_cond_broadcast(&C.cond);
        return r;
}

int lvm_cache_ensure(int64_t max_age_usec, StorageError *err) {
        g_mutex_lock(&C.lock);
        ensure_tables();
        int r = 0;
        if (max_age_usec <= 0 || C.read_usec == 0 ||
            (int64_t) clock_usec(CLOCK_MONOTONIC) - C.read_usec > max_age_usec)
                r = wait_covered(++C.requests, err);
        g_mutex_unlock(&C.lock);
        return r;
}

LvmLv *lvm_cache_get(const char *vg, const char *name) {
        g_autofree char *key = lv_key(vg, name);
        g_mutex_lock(&C.lock);
        ensure_tables();
        LvmLv *lv = g_hash_table_lookup(C.table, key);
        LvmLv *c = lv ? lv_copy(lv) : NULL;
        g_mutex_unlock(&C.lock);
        return c;
}

bool lvm_cache_has(const char *vg, const char *name) {
        g_autofree char *key = lv_key(vg, name);
        g_mutex_lock(&C.lock);
        ensure_tables();
        bool has = g_hash_table_contains(C.table, key);
        g_mutex_unlock(&C.lock);
        return has;
}

GPtrArray *lvm_cache_list(const char *vg, const char *prefix) {
        GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify) lvm_lv_free);
        g_mutex_lock(&C.lock);
        ensure_tables();
        GHashTableIter it;
        gpointer v;
        g_hash_table_iter_init(&it, C.table);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                LvmLv *lv = v;
                if (strcmp(lv->vg, vg) == 0 && g_str_has_prefix(lv->name, prefix))
                        g_ptr_array_add(a, lv_copy(lv));
        }
        g_mutex_unlock(&C.lock);
        return a;
}

/* ---- transactions ---- */

void lvm_tx_begin(LvmTx *tx, const char *vg) {
        *tx = (LvmTx) { 0 };
        tx->vg = g_strdup(vg);
        g_mutex_lock(&C.lock);
        ensure_tables();
        GMutex *m = g_hash_table_lookup(C.vg_locks, vg);
        if (!m) {
                m = g_new0(GMutex, 1);
                g_mutex_init(m);
                g_hash_table_insert(C.vg_locks, g_strdup(vg), m);
        }
        while (C.refreshing || C.waiting > 0)
                g_cond_wait(&C.cond, &C.lock);
        C.pending++;
        g_mutex_unlock(&C.lock);
        tx->lock = m;
        g_mutex_lock(m);
}

void lvm_tx_end(LvmTx *tx, bool refresh) {
        if (tx->ended)
                return;
        tx->ended = true;
        g_mutex_unlock(tx->lock);
        g_mutex_lock(&C.lock);
        C.pending--;
        g_cond_broadcast(&C.cond);
        if (tx->changed && refresh) {
                /* the change is made: a failed lvs does not undo it, so it is
                 * only logged (the table has the change applied meanwhile) */
                StorageError e = STORAGE_ERROR_INIT;
                if (wait_covered(++C.requests, &e) < 0)
                        g_warning("%s", e.message);
                se_clear(&e);
        }
        g_mutex_unlock(&C.lock);
        g_free(tx->vg);
        tx->vg = NULL;
}

/* ---- commands ---- */

/* --setactivationskip n --activate y: what Qubes passes to every lvcreate;
 * thin snapshots would otherwise get the activation-skip flag. */
static const BDExtraArg skip_n = { (gchar *) "--setactivationskip", (gchar *) "n" };
static const BDExtraArg activate_y = { (gchar *) "--activate", (gchar *) "y" };
static const BDExtraArg *create_extra[] = { &skip_n, &activate_y, NULL };

static uint64_t round_kib(uint64_t size) {
        return (size + 1023) / 1024 * 1024;
}

static void noted(NoteKind kind, LvmTx *tx, const char *name, const char *new_name, uint64_t size, const LvmLv *lv) {
        g_mutex_lock(&C.lock);
        note(kind, tx->vg, name, new_name, size, lv);
        g_mutex_unlock(&C.lock);
        tx->changed = true;
}

int lvm_create_thin(LvmTx *tx, const char *pool, const char *name, uint64_t size, StorageError *err) {
        g_autoptr(GError) e = NULL;
        size = round_kib(size);
        if (!bd_lvm_thlvcreate(tx->vg, pool, name, size, create_extra, &e)) {
                tx->changed = true; /* a failure may still have changed something */
                return lvm_error(err, e, g_strdup_printf("Cannot create %s/%s", tx->vg, name));
        }
        LvmLv lv = { .vg = tx->vg, .pool_lv = (char *) pool, .name = (char *) name, .size = size, .attr = (char *) "Vwi-a-tz--",
                     .origin = (char *) "" };
        noted(NOTE_CREATE, tx, NULL, NULL, 0, &lv);
        return 0;
}

int lvm_snapshot(LvmTx *tx, const char *origin, const char *name, StorageError *err) {
        g_autoptr(GError) e = NULL;
        g_autoptr(LvmLv) src = lvm_cache_get(tx->vg, origin);
        if (!bd_lvm_thsnapshotcreate(tx->vg, origin, name, NULL, create_extra, &e)) {
                tx->changed = true;
                return lvm_error(err, e, g_strdup_printf("Cannot snapshot %s/%s as %s", tx->vg, origin, name));
        }
        LvmLv lv = { .vg = tx->vg, .pool_lv = src ? src->pool_lv : (char *) "", .name = (char *) name,
                     .size = src ? src->size : 0, .attr = (char *) "Vwi-a-tz--", .origin = (char *) origin };
        noted(NOTE_CREATE, tx, NULL, NULL, 0, &lv);
        return 0;
}

int lvm_remove(LvmTx *tx, const char *const *names, StorageError *err) {
        if (!names || !names[0])
                return 0;
        /* lvremove takes several LVs: the others ride along as extra
         * arguments, so one process removes them all */
        guint n = g_strv_length((char **) names);
        g_autofree BDExtraArg *args = g_new0(BDExtraArg, n);
        g_autofree const BDExtraArg **extra = g_new0(const BDExtraArg *, n);
        g_autoptr(GPtrArray) specs = g_ptr_array_new_with_free_func(g_free);
        for (guint i = 1; i < n; i++) {
                char *spec = lv_key(tx->vg, names[i]);
                g_ptr_array_add(specs, spec);
                args[i - 1].opt = spec;
                args[i - 1].val = NULL;
                extra[i - 1] = &args[i - 1];
        }
        g_autoptr(GError) e = NULL;
        gboolean ok = bd_lvm_lvremove(tx->vg, names[0], TRUE, extra, &e);
        tx->changed = true;
        if (!ok) {
                /* some may be gone: the refresh at the end tells */
                g_autofree char *list = g_strjoinv(", ", (char **) names);
                return lvm_error(err, e, g_strdup_printf("Cannot remove %s/%s", tx->vg, list));
        }
        g_mutex_lock(&C.lock);
        for (guint i = 0; i < n; i++)
                note(NOTE_REMOVE, tx->vg, names[i], NULL, 0, NULL);
        g_mutex_unlock(&C.lock);
        return 0;
}

int lvm_rename(LvmTx *tx, const char *from, const char *to, StorageError *err) {
        g_autoptr(GError) e = NULL;
        if (!bd_lvm_lvrename(tx->vg, from, to, NULL, &e)) {
                tx->changed = true;
                return lvm_error(err, e, g_strdup_printf("Cannot rename %s/%s to %s", tx->vg, from, to));
        }
        noted(NOTE_RENAME, tx, from, to, 0, NULL);
        return 0;
}

int lvm_extend(LvmTx *tx, const char *name, uint64_t size, StorageError *err) {
        g_autoptr(LvmLv) cur = lvm_cache_get(tx->vg, name);
        if (cur && size < cur->size)
                return se_set(err, SE_SHRINK_REFUSED, "Refusing to shrink %s/%s from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT " bytes",
                              tx->vg, name, cur->size, size);
        size = round_kib(size);
        if (cur && size <= cur->size)
                return 0;
        g_autoptr(GError) e = NULL;
        if (!bd_lvm_lvresize(tx->vg, name, size, NULL, &e)) {
                tx->changed = true;
                return lvm_error(err, e, g_strdup_printf("Cannot resize %s/%s", tx->vg, name));
        }
        noted(NOTE_RESIZE, tx, name, NULL, size, NULL);
        return 0;
}

int lvm_activate(LvmTx *tx, const char *name, StorageError *err) {
        g_autoptr(GError) e = NULL;
        if (!bd_lvm_lvactivate(tx->vg, name, TRUE, NULL, &e)) {
                tx->changed = true;
                return lvm_error(err, e, g_strdup_printf("Cannot activate %s/%s", tx->vg, name));
        }
        tx->changed = true;
        return 0;
}

/* ---- handed-out devices ---- */

/* libdevmapper makes and removes the /dev/mapper nodes itself (no udev
 * needed, as with LVM's udev_rules = 0). */
static int dmsetup(const char **argv, char **out, char *what, StorageError *err) {
        g_autoptr(GError) e = NULL;
        gboolean ok = out ? bd_utils_exec_and_capture_output(argv, NULL, out, &e)
                          : bd_utils_exec_and_report_error(argv, NULL, &e);
        if (ok || (out && (!e || g_error_matches(e, BD_UTILS_EXEC_ERROR, BD_UTILS_EXEC_ERROR_NOOUT)))) {
                g_free(what);
                return 0;
        }
        return lvm_error(err, e, what);
}

int lvm_handout_create(const char *vg, const char *lv, uint64_t size, const char *prefix, char **path,
                       StorageError *err) {
        g_autofree char *name = g_strdup_printf("%s_%" PRIu64, prefix, clock_usec(CLOCK_REALTIME));
        g_autofree char *table = g_strdup_printf("0 %" G_GUINT64_FORMAT " linear /dev/%s/%s 0", size / 512, vg, lv);
        const char *argv[] = { "dmsetup", "create", "--noudevrules", "--noudevsync", name, "--table", table, NULL };
        if (dmsetup(argv, NULL, g_strdup_printf("Cannot make the handed-out device %s for %s/%s", name, vg, lv),
                    err) < 0)
                return -1;
        /* the node, where neither udev nor the library made it */
        g_autofree char *node = g_strdup_printf("/dev/mapper/%s", name);
        const char *mknodes[] = { "dmsetup", "mknodes", name, NULL };
        /* a failure shows as the missing node below */
        if (access(node, F_OK) < 0)
                dmsetup(mknodes, NULL, g_strdup("dmsetup mknodes"), NULL);
        if (access(node, F_OK) < 0) {
                /* the kernel's own node (devtmpfs) */
                const char *info[] = { "dmsetup", "info", "-c", "--noheadings", "-o", "minor", name, NULL };
                g_autofree char *minor = NULL;
                if (dmsetup(info, &minor, g_strdup("dmsetup info"), NULL) == 0 && minor) {
                        g_free(node);
                        node = g_strdup_printf("/dev/dm-%s", g_strstrip(minor));
                }
        }
        if (access(node, F_OK) < 0) {
                /* the missing node is the error to report; every later use
                 * of the volume fences its hand-outs again first */
                lvm_handout_fence(prefix, NULL);
                return se_set(err, SE_FAILED, "The handed-out device %s for %s/%s has no device node", name, vg, lv);
        }
        *path = g_steal_pointer(&node);
        return 0;
}

int lvm_handout_fence(const char *prefix, StorageError *err) {
        const char *ls[] = { "dmsetup", "ls", NULL };
        g_autofree char *out = NULL;
        if (dmsetup(ls, &out, g_strdup("Cannot list device-mapper devices"), err) < 0)
                return -1;
        g_autofree char *mine = g_strconcat(prefix, "_", NULL);
        g_auto(GStrv) lines = g_strsplit(out ? out : "", "\n", -1);
        for (size_t i = 0; lines[i]; i++) {
                g_auto(GStrv) words = g_strsplit_set(g_strstrip(lines[i]), " \t", 2);
                const char *name = words[0];
                if (!name || !g_str_has_prefix(name, mine))
                        continue;
                const char *wipe[] = { "dmsetup", "wipe_table", "--noudevsync", name, NULL };
                if (dmsetup(wipe, NULL, g_strdup_printf("Cannot cut off the handed-out device %s", name), err) < 0)
                        return -1;
                /* gone now, or when the client closes it; a failure leaves an
                 * error device that holds nothing */
                const char *rm[] = { "dmsetup", "remove", "--deferred", "--noudevrules", "--noudevsync", name, NULL };
                StorageError ignored = STORAGE_ERROR_INIT;
                if (dmsetup(rm, NULL, g_strdup_printf("Cannot remove the handed-out device %s", name), &ignored) < 0)
                        g_warning("%s", ignored.message);
                se_clear(&ignored);
        }
        return 0;
}

bool lvm_valid_name(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > 127 || name[0] == '-' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_isalnum(name[i]) && !strchr("+_.-", name[i]))
                        return false;
        return true;
}
