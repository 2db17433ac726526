/*
 * privid-admin faces: the offline tool that shows what the service sees.
 * Each IMAGE goes through the same decoder and face pipeline as the gateway
 * (recognizer/face.h) and gives one JSON object on one line of stdout: the
 * image's size and format, timing per stage, and every face with its box,
 * score, landmarks, quality record and descriptor. An image that cannot be
 * read or decoded gives a line with an error instead; the others still run.
 */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "recognizer/face.h"
#include "tenants/admin_faces.h"

#define FILE_MAX_BYTES (64u << 20) /* the gateway's own body bound is lower */

/* --models, $PRIVID_MODELS/model, then <exe>/../models/face-api-1.7.15/model (build/bin). */
static const char *models_dir(const pv_admin_args_t *a, char *buf, size_t size)
{
    const char *env = getenv("PRIVID_MODELS");
    char exe[PATH_MAX];
    if (a->models != NULL)
        return a->models;
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, size, "%s/model", env);
        return buf;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return "model";
    exe[n] = '\0';
    snprintf(buf, size, "%s/../models/face-api-1.7.15/model", dirname(exe));
    return buf;
}

/* Reads a whole regular file of at most FILE_MAX_BYTES. */
static int read_file(uint8_t **out, size_t *len, const char *path, char *msg, size_t msglen)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    int rc = 0;
    *out = NULL;
    if (f == NULL) {
        snprintf(msg, msglen, "cannot open: %s", strerror(errno));
        return PV_EIO;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(msg, msglen, "not a regular file");
        rc = PV_EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > FILE_MAX_BYTES) {
        snprintf(msg, msglen, "file is larger than %u MiB", FILE_MAX_BYTES >> 20);
        rc = PV_ELIMIT;
        goto out;
    }
    *out = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (*out == NULL) {
        rc = PV_ENOMEM;
        goto out;
    }
    *len = fread(*out, 1, (size_t)st.st_size, f);
    if (*len != (size_t)st.st_size || ferror(f)) {
        snprintf(msg, msglen, "short read");
        rc = PV_EIO;
    }
out:
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
    fclose(f);
    return rc;
}

static json_t *box_json(const pv_box_t *b)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "x", b->x, "y", b->y, "width", b->w, "height", b->h);
}

static json_t *face_json(const pv_face_t *f, int with_descriptor)
{
    json_t *lm = json_array(), *desc = json_array();
    for (int i = 0; i < PV_FACE_LANDMARKS; i++)
        json_array_append_new(lm, json_pack("[f, f]", f->landmarks[i][0], f->landmarks[i][1]));
    for (int i = 0; with_descriptor && i < PV_FACE_DESC_DIM; i++)
        json_array_append_new(desc, json_real(f->descriptor[i]));
    return json_pack("{s:o, s:f, s:o, s:{s:f, s:f, s:f}, s:o}", "box", box_json(&f->box), "score", f->score,
                     "landmarks", lm, "quality", "face_px", f->quality.face_px, "sharpness",
                     f->quality.sharpness, "yaw_deg", f->quality.yaw_deg, "descriptor", desc);
}

static int print_line(json_t *j)
{
    int rc =
        j == NULL ? -1 : json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(j);
    fputc('\n', stdout);
    return rc;
}

int pv_admin_faces(const pv_admin_args_t *a)
{
    char dirbuf[PATH_MAX + 64], msg[512];
    pv_face_engine_t *eng = NULL;
    pv_face_ctx_t *ctx = NULL;
    pv_face_result_t *res = malloc(sizeof(*res));
    int code = 1, failed = 0;
    const char *dir = models_dir(a, dirbuf, sizeof(dirbuf));

    if (res == NULL) {
        fprintf(stderr, "privid-admin: out of memory\n");
        return 1;
    }
    msg[0] = '\0';
    int rc = pv_face_engine_load(&eng, dir, msg, sizeof(msg));
    if (rc != 0) {
        fprintf(stderr,
                "privid-admin: cannot load the face networks from %s: %s (run deploy/setup.sh, or give "
                "--models)\n",
                dir, msg[0] ? msg : pv_strerror(rc));
        goto out;
    }
    if ((rc = pv_face_ctx_create(&ctx, eng)) != 0) {
        fprintf(stderr, "privid-admin: %s\n", pv_strerror(rc));
        goto out;
    }
    pv_face_opts_t o;
    pv_face_opts_default(&o);
    o.detector = a->detector_ssd ? PV_DETECTOR_SSD : PV_DETECTOR_TINY;
    if (a->min_score > 0)
        o.min_score = a->min_score;
    for (int i = 0; i < a->nfiles; i++) {
        uint8_t *data = NULL;
        size_t len = 0;
        msg[0] = '\0';
        memset(&res->timing, 0, sizeof(res->timing));
        rc = read_file(&data, &len, a->files[i], msg, sizeof(msg));
        if (rc == 0)
            rc = pv_face_analyze(res, ctx, data, len, NULL, &o, msg, sizeof(msg));
        free(data);
        json_t *j;
        if (rc != 0) {
            failed++;
            j = json_pack("{s:s, s:{s:s, s:s}}", "file", a->files[i], "error", "code", pv_errname(rc),
                          "message", msg[0] ? msg : pv_strerror(rc));
        } else {
            json_t *faces = json_array();
            for (int k = 0; k < res->nfaces; k++)
                json_array_append_new(faces, face_json(&res->faces[k], 1));
            j = json_pack("{s:s, s:s, s:i, s:i, s:s, s:b, s:{s:f, s:f, s:f, s:f, s:f}, s:o}", "file",
                          a->files[i], "format", pv_image_format_name(res->format), "width", res->width,
                          "height", res->height, "detector", a->detector_ssd ? "ssd" : "tiny", "retried",
                          res->retried, "timing_ms", "decode", res->timing.decode_ms, "detect",
                          res->timing.detect_ms, "landmarks", res->timing.landmarks_ms, "embed",
                          res->timing.embed_ms, "total", res->timing.total_ms, "faces", faces);
        }
        if (print_line(j) != 0) {
            fprintf(stderr, "privid-admin: cannot write JSON output\n");
            goto out;
        }
    }
    code = failed ? 1 : 0;
out:
    pv_face_ctx_free(ctx);
    pv_face_engine_free(eng);
    free(res);
    return code;
}
