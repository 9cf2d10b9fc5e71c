/* Checking a proposed photo plan and drawing its folder tree (see
 * organizer.h). The model's plan is data to verify, not to trust. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/photos/organizer.h"
#include "protocol/names.h"
#include "agents/photos/path.h"
#include "protocol/errors.h"
#include "protocol/utf8.h"

/* path came from the model: shown escaped (protocol/names.h), never as it is. */
static int fail(char *why, size_t n, const char *what, const char *path, const char *reason)
{
    char shown[200];
    tt_utf8_snprintf(why, n, "%s%s%s%s: %s", what, reason ? " (" : "", reason ? reason : "",
                     reason ? ")" : "", tt_name_display(path ? path : "", shown, sizeof shown));
    return TT_EINVAL;
}

/* The node for folder path in tree, made on the way (with counts 0). */
static json_t *node_for(json_t *tree, const char *folder)
{
    json_t *level = tree, *node = NULL;
    char part[TT_PHOTOS_NAME_MAX + 1];
    for (const char *p = folder; *p;) {
        size_t len = strcspn(p, "/");
        snprintf(part, sizeof part, "%.*s", (int)len, p);
        node = NULL;
        size_t i;
        json_t *c;
        json_array_foreach(level, i, c)
        {
            if (strcmp(json_string_value(json_object_get(c, "name")), part) == 0)
                node = c;
        }
        if (!node) {
            node = json_pack("{s:s, s:i, s:[]}", "name", part, "count", 0, "children");
            json_array_append_new(level, node);
        }
        level = json_object_get(node, "children");
        p += len + (p[len] == '/');
    }
    return node;
}

/* Count a file in its folder and every folder above it. */
static void count_in(json_t *tree, const char *folder)
{
    char prefix[TT_PHOTOS_REL_MAX + 1];
    for (const char *p = folder; *p;) {
        size_t len = strcspn(p, "/");
        snprintf(prefix, sizeof prefix, "%.*s", (int)(p - folder + (ptrdiff_t)len), folder);
        json_t *node = node_for(tree, prefix);
        json_object_set_new(node, "count",
                            json_integer(json_integer_value(json_object_get(node, "count")) + 1));
        p += len + (p[len] == '/');
    }
}

/* The preview of one move in its folder's node: {src, dest} in "files",
 * while the plan's preview stays within its caps; past them counted in
 * "files_more", so every folder still says how many files it gets. */
static void list_file(json_t *tree, const char *folder, const char *src, const char *dest,
                      size_t *bytes)
{
    json_t *node = node_for(tree, folder);
    size_t cost = strlen(src) + strlen(dest) + 24;
    if (*bytes + cost > TT_PHOTOS_PREVIEW_BYTES) {
        json_int_t more = json_integer_value(json_object_get(node, "files_more"));
        json_object_set_new(node, "files_more", json_integer(more + 1));
        return;
    }
    json_t *files = json_object_get(node, "files");
    if (!files) {
        files = json_array();
        json_object_set_new(node, "files", files);
    }
    if (json_array_append_new(files, json_pack("{s:s, s:s}", "src", src, "dest", dest)) == 0)
        *bytes += cost;
}

int tt_photos_plan_check(json_t *data, json_t *plan, char *why, size_t n, json_t **tree)
{
    size_t preview = 0;
    const char *reason;
    json_t *folders = json_object_get(plan, "folders"), *moves = json_object_get(plan, "moves");
    json_t *known = json_object(), *srcs = json_object(), *dests = json_object(),
           *dirs = json_object(), *out = json_array();
    int rc = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(data, "photos"), i, v)
        json_object_set(known, json_string_value(json_object_get(v, "path")), json_true());
    json_array_foreach(folders, i, v)
    {
        const char *f = json_string_value(v);
        if (tt_photos_rel_check(f, TT_PHOTOS_REL_STRICT, &reason) != 0) {
            rc = fail(why, n, "bad folder name", f, reason);
            goto done;
        }
        json_object_set(dirs, f, json_true());
        node_for(out, f);
    }
    json_array_foreach(moves, i, v)
    {
        const char *src = json_string_value(json_object_get(v, "src"));
        const char *dest = json_string_value(json_object_get(v, "dest"));
        if (!json_object_get(known, src)) {
            rc = fail(why, n, "a move names a photo that is not in the library", src, NULL);
            goto done;
        }
        if (json_object_get(srcs, src)) {
            rc = fail(why, n, "a photo is moved twice", src, NULL);
            goto done;
        }
        if (tt_photos_rel_check(dest, TT_PHOTOS_REL_STRICT, &reason) != 0) {
            rc = fail(why, n, "bad destination", dest, reason);
            goto done;
        }
        if (json_object_get(dests, dest)) {
            rc = fail(why, n, "two photos have the same destination", dest, NULL);
            goto done;
        }
        char dir[TT_PHOTOS_REL_MAX + 1];
        snprintf(dir, sizeof dir, "%s", dest);
        char *slash = strrchr(dir, '/');
        if (!slash || !json_object_get(dirs, (*slash = '\0', dir))) {
            rc = fail(why, n, "a destination is not inside a planned folder", dest, NULL);
            goto done;
        }
        json_object_set(srcs, src, json_true());
        json_object_set(dests, dest, json_true());
        count_in(out, dir);
        list_file(out, dir, src, dest, &preview);
    }
done:
    json_decref(known);
    json_decref(srcs);
    json_decref(dests);
    json_decref(dirs);
    if (rc) {
        json_decref(out);
        return rc;
    }
    *tree = out;
    return 0;
}
