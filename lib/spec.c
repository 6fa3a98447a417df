#include "spec.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

VolumeSpec *volume_spec_copy(const VolumeSpec *v) {
        if (!v)
                return NULL;
        VolumeSpec *c = g_new0(VolumeSpec, 1);
        *c = *v;
        c->vid = g_strdup(v->vid);
        c->name = g_strdup(v->name);
        c->vm = g_strdup(v->vm);
        c->source = g_strdup(v->source);
        c->source_spec = volume_spec_copy(v->source_spec);
        return c;
}

void volume_spec_free(VolumeSpec *v) {
        if (!v)
                return;
        g_free(v->vid);
        g_free(v->name);
        g_free(v->vm);
        g_free(v->source);
        volume_spec_free(v->source_spec);
        g_free(v);
}

void volume_info_clear(VolumeInfo *i) {
        g_free(i->path);
        g_free(i->bdev_path);
        g_free(i->bdev_script);
        g_free(i->bdev_devtype);
        g_free(i->kernels_dir);
        for (size_t k = 0; k < i->n_revisions; k++) {
                g_free(i->revisions[k].id);
                g_free(i->revisions[k].timestamp);
        }
        g_free(i->revisions);
        memset(i, 0, sizeof(*i));
}

void volume_info_fill_defaults(VolumeInfo *i) {
        char **fields[] = { &i->path, &i->bdev_path, &i->bdev_script, &i->bdev_devtype, &i->kernels_dir };
        for (size_t k = 0; k < G_N_ELEMENTS(fields); k++)
                if (!*fields[k])
                        *fields[k] = g_strdup("");
}

void volume_info_add_revision(VolumeInfo *i, const char *id, const char *timestamp) {
        i->revisions = g_renew(Revision, i->revisions, i->n_revisions + 1);
        i->revisions[i->n_revisions].id = g_strdup(id);
        i->revisions[i->n_revisions].timestamp = g_strdup(timestamp);
        i->n_revisions++;
}

VolumeKind volume_kind(const VolumeSpec *v) {
        if (v->save_on_stop)
                return VOLUME_ORIGIN;
        return v->snap_on_start ? VOLUME_SNAPSHOT : VOLUME_VOLATILE;
}
