/*
 * tfjs weights manifest + .bin reader (see weights.h). Bounded: the manifest
 * is at most 4 MiB with at most 4096 weights, all shards together at most 64 MiB, a tensor at most 4
 * dims of 2^24 and 2^26 elements. Tensors lie back to back in manifest order
 * across the concatenated shards, and the shards must be consumed exactly.
 * Dequantization is (float)((double)q * scale + min), as tfjs-core does it.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "models/weights.h"

#define MANIFEST_MAX (4u << 20)
#define SHARDS_MAX (64u << 20)
#define DIM_MAX (1 << 24)
#define NUMEL_MAX ((size_t)1 << 26)
#define NAME_MAX_LEN 256
#define WEIGHTS_MAX 4096

int wmap_fail(wmap_t *m, int err, const char *fmt, ...)
{
    if (m->msg != NULL && m->msglen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->msg, m->msglen, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* Reads a whole file of at most `max` bytes into *buf (caller frees), appending
 * at *len when *buf already holds data. */
static int read_file(wmap_t *m, char **buf, size_t *len, const char *path, size_t max)
{
    int ret = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        return wmap_fail(m, e == ENOENT ? PV_ENOTFOUND : PV_EIO, "%s: %s", path, strerror(e));
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        ret = wmap_fail(m, PV_EIO, "%s: cannot seek", path);
        goto out;
    }
    long sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        ret = wmap_fail(m, PV_EIO, "%s: cannot size", path);
        goto out;
    }
    if ((size_t)sz > max - *len) {
        ret = wmap_fail(m, PV_ELIMIT, "%s: %ld bytes exceeds the %zu byte limit", path, sz, max);
        goto out;
    }
    char *nb = realloc(*buf, *len + (size_t)sz + 1);
    if (nb == NULL) {
        ret = wmap_fail(m, PV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    *buf = nb;
    if (sz > 0 && fread(nb + *len, 1, (size_t)sz, f) != (size_t)sz) {
        ret = wmap_fail(m, PV_EIO, "%s: read failed", path);
        goto out;
    }
    *len += (size_t)sz;
    nb[*len] = '\0';
out:
    fclose(f);
    return ret;
}

static int join(wmap_t *m, char *dst, size_t cap, const char *dir, const char *file)
{
    int n = snprintf(dst, cap, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= cap)
        return wmap_fail(m, PV_EINVAL, "path too long: %s/%s", dir, file);
    return 0;
}

/* Parses one manifest entry's shape; fills t->rank, t->shape, t->numel. */
static int parse_shape(wmap_t *m, wtensor_t *t, json_t *shape)
{
    if (!json_is_array(shape) || json_array_size(shape) > WMAP_MAX_RANK)
        return wmap_fail(m, PV_EFORMAT, "%s: shape is not an array of at most %d dims", t->name,
                         WMAP_MAX_RANK);
    t->rank = (int)json_array_size(shape);
    t->numel = 1;
    for (int i = 0; i < t->rank; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > DIM_MAX)
            return wmap_fail(m, PV_EFORMAT, "%s: bad dimension %d", t->name, i);
        t->shape[i] = (int)json_integer_value(d);
        t->numel *= (size_t)t->shape[i];
        if (t->numel > NUMEL_MAX)
            return wmap_fail(m, PV_ELIMIT, "%s: too many elements", t->name);
    }
    return 0;
}

/* Decodes one tensor at bin[*off]; advances *off. */
static int decode(wmap_t *m, wtensor_t *t, json_t *w, const unsigned char *bin, size_t len, size_t *off)
{
    const char *dtype = json_string_value(json_object_get(w, "dtype"));
    json_t *q = json_object_get(w, "quantization");
    size_t elem = 4;
    double scale = 1.0, min = 0.0;
    int qbytes = 0;
    if (dtype == NULL || (strcmp(dtype, "float32") != 0 && strcmp(dtype, "int32") != 0))
        return wmap_fail(m, PV_EFORMAT, "%s: unsupported dtype %s", t->name, dtype ? dtype : "(none)");
    if (q != NULL) {
        const char *qd = json_string_value(json_object_get(q, "dtype"));
        json_t *js = json_object_get(q, "scale"), *jm = json_object_get(q, "min");
        if (qd != NULL && strcmp(qd, "uint8") == 0)
            qbytes = 1;
        else if (qd != NULL && strcmp(qd, "uint16") == 0)
            qbytes = 2;
        else
            return wmap_fail(m, PV_EFORMAT, "%s: unsupported quantization %s", t->name, qd ? qd : "(none)");
        if (!json_is_number(js) || !json_is_number(jm))
            return wmap_fail(m, PV_EFORMAT, "%s: quantization without numeric scale/min", t->name);
        scale = json_number_value(js);
        min = json_number_value(jm);
        elem = (size_t)qbytes;
    }
    size_t bytes = t->numel * elem;
    if (bytes > len - *off)
        return wmap_fail(m, PV_EFORMAT, "%s: weight data is short (needs %zu bytes at offset %zu of %zu)",
                         t->name, bytes, *off, len);
    const unsigned char *p = bin + *off;
    *off += bytes;
    if (strcmp(dtype, "int32") == 0)
        return 0; /* graph leftovers (SSD): face-api disposes of them */
    if (qbytes == 1) {
        /* kept as bytes: wmap_take dequantizes, wmap_take_u8 keeps them */
        if ((t->q = malloc(t->numel ? t->numel : 1)) == NULL)
            return wmap_fail(m, PV_ENOMEM, "%s: out of memory", t->name);
        memcpy(t->q, p, t->numel);
        t->qscale = scale;
        t->qmin = min;
        return 0;
    }
    t->data = malloc((t->numel ? t->numel : 1) * sizeof(float));
    if (t->data == NULL)
        return wmap_fail(m, PV_ENOMEM, "%s: out of memory", t->name);
    for (size_t i = 0; i < t->numel; i++) {
        if (qbytes == 2) {
            unsigned v = (unsigned)p[2 * i] | (unsigned)p[2 * i + 1] << 8;
            t->data[i] = (float)((double)v * scale + min);
        } else {
            uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            memcpy(&t->data[i], &u, sizeof(u));
        }
    }
    return 0;
}

/* Checks the manifest's top level: a non-empty array of groups, each with
 * `paths` (plain file names) and `weights` arrays, at most WEIGHTS_MAX in all. */
static int check_groups(wmap_t *m, json_t *root, const char *what, size_t *total)
{
    *total = 0;
    if (!json_is_array(root) || json_array_size(root) == 0)
        return wmap_fail(m, PV_EFORMAT, "%s: not a non-empty array of weight groups", what);
    for (size_t g = 0; g < json_array_size(root); g++) {
        json_t *grp = json_array_get(root, g);
        json_t *paths = json_object_get(grp, "paths"), *ws = json_object_get(grp, "weights");
        if (!json_is_array(paths) || !json_is_array(ws))
            return wmap_fail(m, PV_EFORMAT, "%s: group %zu lacks paths/weights arrays", what, g);
        *total += json_array_size(ws);
        if (*total > WEIGHTS_MAX)
            return wmap_fail(m, PV_ELIMIT, "%s: more than %d weights", what, WEIGHTS_MAX);
        for (size_t i = 0; i < json_array_size(paths); i++) {
            const char *shard = json_string_value(json_array_get(paths, i));
            if (shard == NULL || shard[0] == '\0' || strchr(shard, '/') != NULL || strcmp(shard, "..") == 0 ||
                strcmp(shard, ".") == 0)
                return wmap_fail(m, PV_EFORMAT, "%s: bad shard path in group %zu", what, g);
        }
    }
    return 0;
}

/* Decodes every weight of a checked manifest from the concatenated shards. */
static int decode_all(wmap_t *m, json_t *root, const char *what, const unsigned char *bin, size_t bin_len,
                      size_t total)
{
    int ret;
    size_t off = 0;
    m->t = calloc(total ? total : 1, sizeof(*m->t));
    if (m->t == NULL)
        return wmap_fail(m, PV_ENOMEM, "out of memory");
    for (size_t g = 0; g < json_array_size(root); g++) {
        json_t *ws = json_object_get(json_array_get(root, g), "weights");
        for (size_t i = 0; i < json_array_size(ws); i++) {
            json_t *w = json_array_get(ws, i);
            const char *wn = json_string_value(json_object_get(w, "name"));
            wtensor_t *t = &m->t[m->n];
            if (wn == NULL || strlen(wn) > NAME_MAX_LEN)
                return wmap_fail(m, PV_EFORMAT, "%s: weight %zu has no valid name", what, m->n);
            for (size_t j = 0; j < m->n; j++)
                if (strcmp(m->t[j].name, wn) == 0)
                    return wmap_fail(m, PV_EFORMAT, "%s: duplicate weight %s", what, wn);
            if ((t->name = strdup(wn)) == NULL)
                return wmap_fail(m, PV_ENOMEM, "out of memory");
            m->n++;
            if ((ret = parse_shape(m, t, json_object_get(w, "shape"))) != 0)
                return ret;
            if ((ret = decode(m, t, w, bin, bin_len, &off)) != 0)
                return ret;
        }
    }
    if (off != bin_len)
        return wmap_fail(m, PV_EFORMAT, "%s: weight data has %zu bytes, the manifest describes %zu", what,
                         bin_len, off);
    return 0;
}

static json_t *parse_json(wmap_t *m, const char *text, size_t len, const char *what)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        wmap_fail(m, PV_EFORMAT, "%s:%d: %s", what, jerr.line, jerr.text);
    return root;
}

static void begin(wmap_t *m, char *msg, size_t msglen)
{
    memset(m, 0, sizeof(*m));
    m->msg = msg;
    m->msglen = msglen;
    if (msg != NULL && msglen > 0)
        msg[0] = '\0';
}

int wmap_load_mem(wmap_t *m, const char *text, size_t text_len, const unsigned char *bin, size_t bin_len,
                  char *msg, size_t msglen)
{
    int ret;
    size_t total;
    json_t *root;

    begin(m, msg, msglen);
    if (text_len > MANIFEST_MAX || bin_len > SHARDS_MAX)
        return wmap_fail(m, PV_ELIMIT, "manifest or weight data over the size limit");
    if ((root = parse_json(m, text, text_len, "manifest")) == NULL)
        return PV_EFORMAT;
    if ((ret = check_groups(m, root, "manifest", &total)) == 0)
        ret = decode_all(m, root, "manifest", bin, bin_len, total);
    json_decref(root);
    if (ret != 0)
        wmap_dispose(m);
    return ret;
}

int wmap_load(wmap_t *m, const char *dir, const char *model, char *msg, size_t msglen)
{
    int ret;
    char path[4096], name[NAME_MAX_LEN + 64];
    char *text = NULL, *bin = NULL;
    size_t text_len = 0, bin_len = 0, total;
    json_t *root = NULL;

    begin(m, msg, msglen);
    snprintf(name, sizeof(name), "%s-weights_manifest.json", model);
    if ((ret = join(m, path, sizeof(path), dir, name)) != 0)
        goto out;
    if ((ret = read_file(m, &text, &text_len, path, MANIFEST_MAX)) != 0)
        goto out;
    if ((root = parse_json(m, text, text_len, path)) == NULL) {
        ret = PV_EFORMAT;
        goto out;
    }
    if ((ret = check_groups(m, root, path, &total)) != 0)
        goto out;
    /* Read every shard, in group order, into one buffer. */
    for (size_t g = 0; g < json_array_size(root); g++) {
        json_t *paths = json_object_get(json_array_get(root, g), "paths");
        for (size_t i = 0; i < json_array_size(paths); i++) {
            char spath[4096];
            if ((ret = join(m, spath, sizeof(spath), dir, json_string_value(json_array_get(paths, i)))) != 0)
                goto out;
            if ((ret = read_file(m, &bin, &bin_len, spath, SHARDS_MAX)) != 0)
                goto out;
        }
    }
    ret = decode_all(m, root, model, (const unsigned char *)bin, bin_len, total);
out:
    json_decref(root);
    free(text);
    free(bin);
    if (ret != 0)
        wmap_dispose(m);
    return ret;
}

void wmap_dispose(wmap_t *m)
{
    if (m == NULL || m->t == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->t[i].name);
        free(m->t[i].data);
        free(m->t[i].q);
    }
    free(m->t);
    m->t = NULL;
    m->n = 0;
}

/* The tensor `name` if it has exactly the shape want[0..rank); else NULL with the error in *ret. */
static wtensor_t *find_shaped(wmap_t *m, const char *name, int rank, const int *want, int *ret)
{
    for (size_t i = 0; i < m->n; i++) {
        wtensor_t *t = &m->t[i];
        if (strcmp(t->name, name) != 0)
            continue;
        if (t->data == NULL && t->q == NULL) {
            *ret = wmap_fail(m, PV_EFORMAT, "weight %s is not float32 (or taken twice)", name);
            return NULL;
        }
        int ok = t->rank == rank;
        for (int d = 0; ok && d < rank; d++)
            ok = t->shape[d] == want[d];
        if (!ok) {
            char got[64] = "", exp[64] = "";
            for (int d = 0; d < t->rank; d++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%d", d ? "," : "", t->shape[d]);
            for (int d = 0; d < rank && d < WMAP_MAX_RANK; d++)
                snprintf(exp + strlen(exp), sizeof(exp) - strlen(exp), "%s%d", d ? "," : "", want[d]);
            *ret = wmap_fail(m, PV_EFORMAT, "weight %s has shape [%s], expected [%s]", name, got, exp);
            return NULL;
        }
        return t;
    }
    *ret = wmap_fail(m, PV_EFORMAT, "weight %s is missing from the manifest", name);
    return NULL;
}

int wmap_take(float **out, wmap_t *m, const char *name, int rank, ...)
{
    int want[WMAP_MAX_RANK] = {0}, ret = 0;
    va_list ap;
    *out = NULL;
    va_start(ap, rank);
    for (int i = 0; i < rank && i < WMAP_MAX_RANK; i++)
        want[i] = va_arg(ap, int);
    va_end(ap);
    wtensor_t *t = find_shaped(m, name, rank, want, &ret);
    if (t == NULL)
        return ret;
    if (t->q != NULL) {
        float lut[256];
        if ((t->data = malloc((t->numel ? t->numel : 1) * sizeof(float))) == NULL)
            return wmap_fail(m, PV_ENOMEM, "%s: out of memory", name);
        for (int v = 0; v < 256; v++)
            lut[v] = (float)((double)v * t->qscale + t->qmin);
        for (size_t i = 0; i < t->numel; i++)
            t->data[i] = lut[t->q[i]];
        free(t->q);
        t->q = NULL;
    }
    *out = t->data;
    t->data = NULL;
    return 0;
}

int wmap_take_u8(unsigned char **q, float lut[256], wmap_t *m, const char *name, int rank, ...)
{
    int want[WMAP_MAX_RANK] = {0}, ret = 0;
    va_list ap;
    *q = NULL;
    va_start(ap, rank);
    for (int i = 0; i < rank && i < WMAP_MAX_RANK; i++)
        want[i] = va_arg(ap, int);
    va_end(ap);
    wtensor_t *t = find_shaped(m, name, rank, want, &ret);
    if (t == NULL)
        return ret;
    if (t->q == NULL)
        return wmap_fail(m, PV_EFORMAT, "weight %s is not uint8-quantized", name);
    for (int v = 0; v < 256; v++)
        lut[v] = (float)((double)v * t->qscale + t->qmin);
    *q = t->q;
    t->q = NULL;
    return 0;
}
