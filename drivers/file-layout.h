/* The names of a volume's files in a file-based pool (drivers file and
 * file-reflink): the one place that says which vids exist, which file names
 * belong to which volume, and that no two volumes can ever own one file.
 *
 * A vid is "appvms/<vm>/<name>" or "vm-templates/<vm>/<name>"; <vm> and
 * <name> follow the VM-name rule (a letter, then letters, digits, '_', '.',
 * '-'; at most 31 characters), and <name> may not end in a reserved ending
 * (-cow, -dirty, -import, .img, .old). A volume's files all live in its VM
 * directory and are named <name> + one of these endings:
 *
 *   .img                        FL_IMAGE     the image (file), committed image (file-reflink)
 *   -cow.img                    FL_COW       file: copy-on-write file
 *   -cow.img.old                FL_COW_OLD   file: the revision "old"
 *   -dirty.img                  FL_DIRTY     file-reflink: the running image
 *   -import.img                 FL_IMPORT    staged import data
 *   .img.<N>@YYYY-MM-DDTHH:MM:SSZ  FL_REVISION file-reflink: revision N (N > 0)
 *   .img@export-XXXXXX          FL_EXPORT    file-reflink: export view
 *
 * and any of them followed by "~XXXXXX" (X: a letter or digit) is a
 * temporary file of that file. fl_parse() reads a directory entry back;
 * because names cannot contain '@' or '~' and cannot end in a reserved ending,
 * every entry has at most one owner. Pure functions, no I/O.
 */
#pragma once

#include <stdbool.h>

#include "storage-error.h"

#define FL_TEMP_LEN 6 /* the XXXXXX of "~XXXXXX" */

typedef enum FlKind {
        FL_IMAGE,
        FL_COW,
        FL_COW_OLD,
        FL_DIRTY,
        FL_IMPORT,
        FL_REVISION,
        FL_EXPORT,
        _FL_KIND_MAX,
} FlKind;

typedef struct FlEntry {
        char *name;     /* the volume name (g_free) */
        FlKind kind;
        bool temp;      /* a "~XXXXXX" temporary file of that file */
        long revision;  /* FL_REVISION: N */
        char stamp[21]; /* FL_REVISION: "YYYY-MM-DDTHH:MM:SSZ" */
} FlEntry;

void fl_entry_clear(FlEntry *e);

/* 0 when vid is a vid the file drivers accept, else -1 with
 * SE_INVALID_ARGUMENT and a message that names the vid and the rule it breaks
 * (for a reserved ending: the volume whose file it would be). */
int fl_check_vid(const char *vid, StorageError *err);

/* The vid of VM vm's volume name: "appvms/<vm>/<name>", or
 * "vm-templates/<vm>/<name>" for a template (g_free). */
char *fl_default_vid(const char *vm, const char *name, bool template_vm);

/* Splits a valid vid: "appvms/work" and "private" (g_free). */
void fl_split_vid(const char *vid, char **vm_dir, char **name);

/* true and *out filled when entry is a file (or a temporary file) of some
 * volume; false otherwise. */
bool fl_parse(const char *entry, FlEntry *out);

/* true when entry is one of name's files (any kind, temporary or not). */
bool fl_owned_by(const char *entry, const char *name, FlEntry *out);

/* The file name (no directory) of name's file of kind; FL_REVISION and
 * FL_EXPORT are made by their drivers. */
char *fl_file_name(const char *name, FlKind kind);

/* A temporary file of the reflink probe (".reflink-probe~XXXXXX"). */
bool fl_is_probe_temp(const char *entry);
