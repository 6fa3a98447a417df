/* What the service and a driver (drivers/driver.h) hand each other about a
 * volume or a pool: the volume's spec (what the service keeps), what the
 * storage says about it, and a pool's usage. Plain data and their helpers.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VolumeSpec {
        char *vid;
        char *name;               /* name inside the VM: root, private, ... */
        char *vm;                 /* owning VM */
        bool template_vm;         /* only for the default vid */
        bool rw;
        bool snap_on_start;
        bool save_on_stop;
        bool ephemeral;
        char *source;             /* vid of the source volume, NULL when none */
        int revisions_to_keep;
        uint64_t size;            /* nominal size: what the storage says wins */
        struct VolumeSpec *source_spec; /* copy of the source's spec, or NULL */
} VolumeSpec;

typedef struct Revision {
        char *id;
        char *timestamp; /* ISO-8601 UTC */
} Revision;

typedef struct VolumeInfo {
        uint64_t size;            /* from the storage; the nominal size if none */
        uint64_t usage;           /* bytes allocated */
        bool dirty;
        bool outdated;
        bool running;             /* the storage shows it started (Driver.shows_started) */
        char *path;
        char *bdev_path;          /* "" when the volume has no block device */
        char *bdev_script;
        char *bdev_devtype;
        bool bdev_rw;
        char *kernels_dir;        /* "" except linux-kernel */
        Revision *revisions;      /* oldest first */
        size_t n_revisions;
} VolumeInfo;

typedef struct PoolUsage {
        uint64_t size, usage;
        bool has_data;            /* false: no notion of size (linux-kernel) */
        bool has_metadata;        /* lvm_thin: metadata_size/_usage are valid */
        uint64_t metadata_size, metadata_usage;
} PoolUsage;

/* What a volume is, from its two attributes (the reference's three kinds):
 * an origin keeps its data across starts (save_on_stop; with snap_on_start it
 * also starts from its source), a snapshot starts from its source's committed
 * data and forgets at stop, a volatile starts empty every time. */
typedef enum VolumeKind {
        VOLUME_VOLATILE,
        VOLUME_SNAPSHOT,
        VOLUME_ORIGIN,
} VolumeKind;

/* Helpers for the structures above (lib/spec.c). */
VolumeKind volume_kind(const VolumeSpec *v);
VolumeSpec *volume_spec_copy(const VolumeSpec *v);
void volume_spec_free(VolumeSpec *v);
void volume_info_clear(VolumeInfo *i);
/* Fills the string fields that are still NULL with "". */
void volume_info_fill_defaults(VolumeInfo *i);
void volume_info_add_revision(VolumeInfo *i, const char *id, const char *timestamp);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(VolumeSpec, volume_spec_free)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VolumeInfo, volume_info_clear)
