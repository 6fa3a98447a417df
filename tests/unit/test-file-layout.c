/* Unit tests for drivers/file-layout.c: the vid rules of the file drivers and
 * the grammar of a volume's file names. */
#include "file-layout.h"
#include "test-util.h"

#include <string.h>

static void assert_vid_ok(const char *vid) {
        StorageError err = STORAGE_ERROR_INIT;
        if (fl_check_vid(vid, &err) < 0)
                g_error("vid %s refused: %s", vid, err.message);
}

static void assert_vid_refused(const char *vid, const char *word) {
        StorageError err = STORAGE_ERROR_INIT;
        g_assert_cmpint(fl_check_vid(vid, &err), ==, -1);
        tu_assert_error(&err, SE_INVALID_ARGUMENT, vid && *vid ? vid : "vid", word, NULL);
}

static void test_vids(void) {
        assert_vid_ok("appvms/work/private");
        assert_vid_ok("vm-templates/fedora-38/root");
        assert_vid_ok("appvms/W_2.x/data-1");
        assert_vid_ok("appvms/work/private-cowx");
        assert_vid_ok("appvms/work/root.img");
        assert_vid_ok("vm-templates/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
        const char *layout[] = { "custom/vol", "vm-kernels/6.1/modules", "appvms/work", "appvms/work/a/b", "private",
                                 "/appvms/work/private", "Appvms/work/x" };
        for (size_t i = 0; i < G_N_ELEMENTS(layout); i++)
                assert_vid_refused(layout[i], "appvms/<vm>/<name>");
        assert_vid_refused("appvms/1work/private", "VM name");
        assert_vid_refused("appvms/../private", "VM name");
        assert_vid_refused("appvms//private", "VM name");
        assert_vid_refused("appvms/work/", "volume name");
        assert_vid_refused("appvms/work/..", "volume name");
        assert_vid_refused("appvms/work/.x", "volume name");
        assert_vid_refused("appvms/work/a~b", "volume name");
        assert_vid_refused("appvms/work/a@b", "volume name");
        assert_vid_refused("appvms/work/yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", "volume name");
        assert_vid_refused("", "vid");
        assert_vid_refused(NULL, "vid");
}

static void test_reserved_endings(void) {
        const char *endings[] = { "-cow", "-dirty", "-import" };
        for (size_t i = 0; i < G_N_ELEMENTS(endings); i++) {
                g_autofree char *vid = g_strconcat("appvms/work/private", endings[i], NULL);
                StorageError err = STORAGE_ERROR_INIT;
                g_assert_cmpint(fl_check_vid(vid, &err), ==, -1);
                tu_assert_error(&err, SE_INVALID_ARGUMENT, vid, endings[i], "appvms/work/private", NULL);
        }
}

static void assert_parse(const char *entry, const char *name, FlKind kind, bool temp) {
        FlEntry e;
        if (!fl_parse(entry, &e))
                g_error("%s not parsed", entry);
        g_assert_cmpstr(e.name, ==, name);
        g_assert_cmpint(e.kind, ==, kind);
        g_assert_cmpint(e.temp, ==, temp);
        fl_entry_clear(&e);
}

static void test_parse(void) {
        assert_parse("private.img", "private", FL_IMAGE, false);
        assert_parse("private-cow.img", "private", FL_COW, false);
        assert_parse("private-cow.img.old", "private", FL_COW_OLD, false);
        assert_parse("private-dirty.img", "private", FL_DIRTY, false);
        assert_parse("private-import.img", "private", FL_IMPORT, false);
        assert_parse("private.img@export-aB3dE9", "private", FL_EXPORT, false);
        assert_parse("private-cow.img~Xy12zQ", "private", FL_COW, true);
        assert_parse("private.img@export-aB3dE9~Xy12zQ", "private", FL_EXPORT, true);
        assert_parse("root-x.img", "root-x", FL_IMAGE, false);
        assert_parse("root.img.img", "root.img", FL_IMAGE, false);
        FlEntry e;
        g_assert_true(fl_parse("root.img.12@2026-01-02T03:04:05Z", &e));
        g_assert_cmpstr(e.name, ==, "root");
        g_assert_cmpint(e.kind, ==, FL_REVISION);
        g_assert_cmpint(e.revision, ==, 12);
        g_assert_cmpstr(e.stamp, ==, "2026-01-02T03:04:05Z");
        fl_entry_clear(&e);
        g_assert_true(fl_parse("root.img.3@2026-01-02T03:04:05Z~abcdef", &e));
        g_assert_true(e.temp);
        fl_entry_clear(&e);
        const char *foreign[] = { "private", "private.raw", ".reflink-probe~abcdef", "private.img~abc",
                                  "private.img~abcdefg", "private.img~ab-def", "root.img.0@2026-01-02T03:04:05Z",
                                  "root.img.x@2026-01-02T03:04:05Z", "root.img.1@2026-01-02", "root.img@export-abc",
                                  "1root.img", "-cow.img", ".img", "a~b.img", "root.img@x@y" };
        for (size_t i = 0; i < G_N_ELEMENTS(foreign); i++)
                if (fl_parse(foreign[i], &e))
                        g_error("%s parsed as a file of %s", foreign[i], e.name);
        g_assert_true(fl_is_probe_temp(".reflink-probe~abc123"));
        g_assert_false(fl_is_probe_temp(".reflink-probe~abc"));
}

static void test_owned_by(void) {
        g_assert_true(fl_owned_by("root-import.img", "root", NULL));
        g_assert_false(fl_owned_by("root-x.img", "root", NULL));
        g_assert_false(fl_owned_by("rootx-dirty.img", "root", NULL));
        g_assert_false(fl_owned_by("root.x.img", "root", NULL));
        g_assert_true(fl_owned_by("root.img~abcdef", "root", NULL));
        g_assert_false(fl_owned_by("root-x.img~abcdef", "root", NULL));
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/file-layout/vids", test_vids);
        g_test_add_func("/file-layout/reserved-endings", test_reserved_endings);
        g_test_add_func("/file-layout/parse", test_parse);
        g_test_add_func("/file-layout/owned-by", test_owned_by);
        return g_test_run();
}
