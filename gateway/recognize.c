/*
 * The recognition routes: POST /v1/recognize, /v1/identify and /v1/detect,
 * GET and DELETE /v1/visitors/{id}. The event loop only parses and
 * validates; everything blocking (decoding, the networks, the gallery, LMDB
 * writes) runs as one job on the worker pool (pv_gw_job_t, job.c), which
 * also builds the JSON answer, and the loop sends it.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/error.h"
#include "common/log.h"
#include "gateway/internal.h"
#include "gateway/metrics.h"
#include "gateway/request.h"
#include "recognizer/match.h"
#include "tenants/tenants.h"
#include "tenants/visitors.h"

#define SEARCH_K 5
#define FRAME_LONG_SIDE 1600 /* JPEGs larger than twice this decode at 1/2, 1/4 or 1/8 */

typedef enum { OP_RECOGNIZE, OP_IDENTIFY, OP_DETECT, OP_VISITOR_GET, OP_VISITOR_DELETE } op_t;

typedef struct {
    pv_gw_job_t super;
    op_t op;
    pv_auth_t auth;
    pv_recog_params_t params;
    uint8_t *image; /* a copy: the worker must not read the request's memory */
    size_t image_len;
    char vid[PV_VISITOR_ID_LEN + 8];
    size_t vid_len;
} rjob_t;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int seconds_to_next_month(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (++tm.tm_mon == 12)
        tm.tm_mon = 0, tm.tm_year++;
    time_t next = timegm(&tm);
    return next > now ? (int)(next - now) : 1;
}

/* ---- answers built on the worker ----------------------------------------- */

static void answer(rjob_t *j, int status, json_t *obj)
{
    pv_gw_job_answer(&j->super, status, obj);
}

static void answer_error(rjob_t *j, int status, const char *code, const char *message)
{
    pv_gw_job_error(&j->super, status, code, message);
}

/* RFC 3339 UTC with milliseconds. */
static json_t *time_json(int64_t ms)
{
    char buf[40];
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL)
        return json_null();
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static json_t *face_base_json(const pv_face_t *f)
{
    return json_pack("{s:{s:f,s:f,s:f,s:f}, s:f, s:{s:f,s:f,s:f}}", "box", "x", f->box.x, "y", f->box.y,
                     "width", f->box.w, "height", f->box.h, "score", f->score, "quality", "face_px",
                     f->quality.face_px, "sharpness", f->quality.sharpness, "yaw_deg", f->quality.yaw_deg);
}

/* Worker-thread resources: a face context per worker, from a small stack. */
static pv_face_ctx_t *ctx_get(pv_gw_t *gw)
{
    pthread_mutex_lock(&gw->ctx_mu);
    pv_face_ctx_t *c = gw->nctx > 0 ? gw->ctx[--gw->nctx] : NULL;
    pthread_mutex_unlock(&gw->ctx_mu);
    return c;
}

static void ctx_put(pv_gw_t *gw, pv_face_ctx_t *c)
{
    pthread_mutex_lock(&gw->ctx_mu);
    gw->ctx[gw->nctx++] = c;
    pthread_mutex_unlock(&gw->ctx_mu);
}

static void image_error(rjob_t *j, int rc, const char *msg)
{
    char text[300];
    snprintf(text, sizeof(text), "cannot use the image: %s", msg[0] ? msg : pv_strerror(rc));
    if (rc == PV_ELIMIT)
        answer_error(j, 422, "image_too_large", text);
    else if (rc == PV_EFORMAT || rc == PV_EINVAL)
        answer_error(j, 422, "bad_image", text);
    else
        answer_error(j, 503, "unavailable", "the face pipeline could not run; try again");
}

/* Identities on the forget queue (erased or expired, maybe by privid-admin, and not yet out of
 * the gallery) match nobody: each face's hits without them, still in distance order. */
static void drop_forgotten(pv_tenants_t *t, pv_gallery_hit_t *hits, size_t n, size_t k)
{
    if (n == 0 || !pv_forget_any(t))
        return;
    for (size_t i = 0; i < n; i++) {
        pv_gallery_hit_t *h = hits + i * k;
        size_t kept = 0;
        for (size_t j = 0; j < k; j++)
            if (h[j].gid != 0 && !pv_forget_pending(t, h[j].gid))
                h[kept++] = h[j];
        for (; kept < k; kept++)
            h[kept] = (pv_gallery_hit_t){0};
    }
}

static void run_faces(rjob_t *j)
{
    pv_gw_t *gw = j->super.gw;
    double t_start = pv_gw_mono_ms(), t_match = 0, t_store = 0;
    int degraded = 0;
    pv_face_ctx_t *ctx = ctx_get(gw);
    pv_face_result_t *res = malloc(sizeof(*res));
    pv_match_decision_t *dec = NULL;
    pv_gallery_hit_t *hits = NULL;
    float *queries = NULL;
    char msg[256] = "";
    pv_tenant_t tn;
    int rc;

    memset(&tn, 0, sizeof(tn));
    pv_metrics_stage(PV_STAGE_QUEUE, (t_start - j->super.submitted_ms) / 1e3);
    if (ctx == NULL || res == NULL) {
        answer_error(j, 503, "unavailable", "no capacity; try again");
        goto out;
    }
    /* the tenant's monthly image quota, metered before any work */
    uint64_t used = 0;
    rc = pv_usage_take(gw->tenants, j->auth.tenant_id, wall_ms(), j->auth.monthly_quota, 1, &used);
    if (rc == PV_ELIMIT) {
        char m[160];
        snprintf(m, sizeof(m), "this tenant's monthly quota of %" PRIu64 " images is used up",
                 j->auth.monthly_quota);
        j->super.retry_after = seconds_to_next_month();
        answer_error(j, 429, "quota_exceeded", m);
        goto out;
    } else if (rc != 0) {
        pv_gw_job_store_error(&j->super, rc, "the tenants store is unavailable; try again");
        goto out;
    }
    pv_image_opts_t io = {.max_pixels = (uint64_t)gw->conf->max_pixels, .min_long_side = FRAME_LONG_SIDE};
    pv_face_opts_t fo;
    pv_face_opts_default(&fo);
    fo.detector = j->params.detector;
    fo.no_descriptor = j->op == OP_DETECT;
    memset(&res->timing, 0, sizeof(res->timing));
    if ((rc = pv_face_analyze(res, ctx, j->image, j->image_len, &io, &fo, msg, sizeof(msg))) != 0) {
        image_error(j, rc, msg);
        goto out;
    }
    pv_metrics_stage(PV_STAGE_DECODE, res->timing.decode_ms / 1e3);
    pv_metrics_stage(PV_STAGE_DETECT, res->timing.detect_ms / 1e3);
    pv_metrics_stage(PV_STAGE_LANDMARKS, res->timing.landmarks_ms / 1e3);
    if (j->op != OP_DETECT)
        pv_metrics_stage(PV_STAGE_EMBED, res->timing.embed_ms / 1e3);
    pv_metrics_count(PV_COUNTER_FACES, (uint64_t)res->nfaces);
    /* usage_daily.faces; a metering failure never fails the request */
    (void)pv_usage_faces(gw->tenants, j->auth.tenant_id, wall_ms(), (uint64_t)res->nfaces);

    const size_t n = (size_t)res->nfaces;
    json_t *faces = json_array();
    if (j->op == OP_DETECT) {
        for (size_t i = 0; i < n; i++) {
            json_t *f = face_base_json(&res->faces[i]), *lm = json_array();
            for (int p = 0; p < PV_FACE_LANDMARKS; p++)
                json_array_append_new(
                    lm, json_pack("[f,f]", res->faces[i].landmarks[p][0], res->faces[i].landmarks[p][1]));
            json_object_set_new(f, "landmarks", lm);
            json_array_append_new(faces, f);
        }
        goto respond;
    }

    /* match: one search for all faces, one decision for the image */
    double t0 = pv_gw_mono_ms();
    const uint64_t owner = j->auth.mode == PV_TENANT_ISOLATED ? j->auth.tenant_id : 0;
    dec = calloc(n ? n : 1, sizeof(*dec));
    hits = calloc(n ? n * SEARCH_K : 1, sizeof(*hits));
    queries = malloc((n ? n : 1) * PV_FACE_DESC_DIM * sizeof(float));
    if (dec == NULL || hits == NULL || queries == NULL) {
        json_decref(faces);
        answer_error(j, 503, "unavailable", "out of memory; try again");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(queries + i * PV_FACE_DESC_DIM, res->faces[i].descriptor, sizeof(res->faces[i].descriptor));
    pv_shards_info_t info = {0};
    if (n > 0 && (rc = pv_shards_search(gw->shards, hits, &info, owner, n, queries, SEARCH_K)) != 0) {
        json_decref(faces);
        answer_error(j, 503, "unavailable", "the identity gallery is unavailable; try again");
        goto out;
    }
    degraded = info.degraded;
    if (degraded)
        pv_metrics_count(PV_COUNTER_DEGRADED, 1);
    drop_forgotten(gw->tenants, hits, n, SEARCH_K);
    if ((rc = pv_match_decide(dec, &gw->match, res->faces, n, hits, SEARCH_K)) != 0) {
        json_decref(faces);
        answer_error(j, 500, "internal", "matching failed");
        goto out;
    }
    t_match = pv_gw_mono_ms() - t0;
    pv_metrics_stage(PV_STAGE_SEARCH, t_match / 1e3);

    /* store: enrol new identities, grow returning ones, record the visits */
    t0 = pv_gw_mono_ms();
    const int writes = j->op == OP_RECOGNIZE;
    const int enroll = writes && j->params.enroll;
    pv_visit_t visits[PV_FACE_MAX_FACES];
    pv_visitor_t visitors[PV_FACE_MAX_FACES];
    int visit_of[PV_FACE_MAX_FACES];
    size_t nv = 0;
    if ((rc = pv_tenants_get(gw->tenants, &tn, j->auth.tenant_id)) != 0) {
        json_decref(faces);
        answer_error(j, rc == PV_ENOTFOUND ? 401 : 503, rc == PV_ENOTFOUND ? "unauthorized" : "unavailable",
                     rc == PV_ENOTFOUND ? "the tenant no longer exists" : "the tenants store is unavailable");
        goto out;
    }
    const int64_t ts = j->params.ts_ms >= 0 ? j->params.ts_ms : wall_ms();
    for (size_t i = 0; i < n; i++) {
        pv_match_decision_t *d = &dec[i];
        visit_of[i] = -1;
        /* identify, enroll=never, or some shard unseen (the face may live there): nothing is created */
        if (d->status == PV_MATCH_NEW && (!enroll || degraded))
            d->status = PV_MATCH_UNENROLLED;
        if (d->status == PV_MATCH_NEW) {
            uint64_t gid = 0;
            if ((rc = pv_shards_enroll(gw->shards, &gid, 0, owner, res->faces[i].descriptor, d->quality,
                                       ts)) != 0) {
                degraded |= rc == PV_EUNAVAIL;
                PV_LOG(PV_LOG_WARN, "enrolment failed", "err=%s", pv_errname(rc));
                d->status = PV_MATCH_UNENROLLED;
                continue;
            }
            d->gid = gid;
        } else if (d->status == PV_MATCH_RETURNING && writes && d->add_exemplar && !degraded) {
            /* (degraded: the best match may sit on the missing shard and this one be a runner-up,
             * so no identity grows on an incomplete search, just as nothing is enrolled) */
            uint32_t slot;
            rc = pv_shards_add(gw->shards, &slot, d->gid, res->faces[i].descriptor, d->quality, ts);
            if (rc != 0 && rc != PV_ENOTFOUND)
                PV_LOG(PV_LOG_WARN, "exemplar not added", "err=%s", pv_errname(rc));
        }
        if (d->status != PV_MATCH_NEW && d->status != PV_MATCH_RETURNING)
            continue;
        if (writes) {
            visit_of[i] = (int)nv;
            visits[nv++] = (pv_visit_t){.gid = d->gid,
                                        .ts_ms = ts,
                                        .location = j->params.location,
                                        .camera = j->params.camera,
                                        .is_new = d->status == PV_MATCH_NEW,
                                        .distance = d->status == PV_MATCH_NEW ? -1 : d->distance};
        } else if ((rc = pv_visitor_of_gid(gw->tenants, &tn, d->gid, &visitors[i])) != 0 &&
                   rc != PV_ENOTFOUND) {
            d->status = PV_MATCH_UNENROLLED;
        }
    }
    if (nv > 0 && (rc = pv_visits_record(gw->tenants, &tn, visits, nv, visitors)) != 0) {
        json_decref(faces);
        PV_LOG(PV_LOG_ERROR, "cannot record visits", "err=%s", pv_errname(rc));
        pv_gw_job_store_error(&j->super, rc, "the visits could not be recorded; try again");
        goto out;
    }
    t_store = pv_gw_mono_ms() - t0;
    pv_metrics_stage(PV_STAGE_STORE, t_store / 1e3);

    for (size_t i = 0; i < n; i++) {
        const pv_match_decision_t *d = &dec[i];
        json_t *f = face_base_json(&res->faces[i]);
        const pv_visitor_t *v = writes ? (visit_of[i] >= 0 ? &visitors[visit_of[i]] : NULL)
                                       : (d->status == PV_MATCH_RETURNING ? &visitors[i] : NULL);
        json_object_set_new(f, "status", json_string(pv_match_status_name(d->status)));
        json_object_set_new(f, "visitor", v != NULL ? json_string(v->id) : json_null());
        json_object_set_new(f, "distance",
                            d->status == PV_MATCH_NEW || !isfinite(d->distance) ? json_null()
                                                                                : json_real(d->distance));
        json_object_set_new(f, "confidence",
                            json_real(d->status == PV_MATCH_RETURNING ? d->confidence : 0.0));
        if (writes && v != NULL)
            json_object_set_new(f, "visits", json_integer((json_int_t)v->visits));
        json_array_append_new(faces, f);
        if (d->status == PV_MATCH_NEW)
            pv_metrics_count(PV_COUNTER_NEW_VISITORS, 1);
        else if (d->status == PV_MATCH_RETURNING)
            pv_metrics_count(PV_COUNTER_RETURNING, 1);
    }

respond:
    answer(j, 200,
           json_pack("{s:{s:i,s:i,s:s}, s:o, s:b, s:{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}}", "image", "width",
                     res->width, "height", res->height, "format", pv_image_format_name(res->format), "faces",
                     faces, "degraded", degraded, "timings_ms", "queue", t_start - j->super.submitted_ms, "decode",
                     res->timing.decode_ms, "detect", res->timing.detect_ms, "landmarks",
                     res->timing.landmarks_ms, "embed", res->timing.embed_ms, "match", t_match, "store",
                     t_store, "total", pv_gw_mono_ms() - j->super.submitted_ms));
out:
    if (ctx != NULL)
        ctx_put(gw, ctx);
    explicit_bzero(&tn, sizeof(tn));
    if (queries != NULL)
        explicit_bzero(queries, (res != NULL ? (size_t)res->nfaces : 0) * PV_FACE_DESC_DIM * sizeof(float));
    if (res != NULL)
        explicit_bzero(res,
                       sizeof(*res)); /* descriptors are biometric data: do not leave them in freed memory */
    free(res);
    free(dec);
    free(hits);
    free(queries);
}

static void run_visitor(rjob_t *j)
{
    pv_gw_t *gw = j->super.gw;
    pv_tenant_t tn;
    pv_visitor_t v;
    int rc = pv_tenants_get(gw->tenants, &tn, j->auth.tenant_id);
    if (rc != 0) {
        answer_error(j, 503, "unavailable", "the tenants store is unavailable");
        return;
    }
    if (j->op == OP_VISITOR_GET) {
        rc = pv_visitor_get(gw->tenants, &tn, j->vid, j->vid_len, &v);
        if (rc == 0) {
            /* purchases from PostgreSQL; null without one or while it is unreachable */
            json_t *purchases = NULL;
            if (gw->reports != NULL && pv_report_visitor_purchases(gw->reports, &purchases, j->auth.tenant_id, v.id) != 0)
                purchases = NULL;
            answer(j, 200,
                   json_pack("{s:s, s:o, s:o, s:I, s:o}", "visitor", v.id, "first_seen",
                             time_json(v.first_seen_ms), "last_seen", time_json(v.last_seen_ms), "visits",
                             (json_int_t)v.visits, "purchases", purchases != NULL ? purchases : json_null()));
        }
    } else {
        uint64_t gid = 0;
        size_t others = 0;
        rc = pv_visitor_erase(gw->tenants, &tn, j->vid, j->vid_len, &gid, &others);
        if (rc == 0 && others == 0) {
            /* no tenant maps the identity any more: its exemplars go too, now; the erasure
             * queued it in the same transaction, so a failure here is retried by the upkeep */
            int r2 = pv_gw_forget_now(gw, gid);
            if (r2 != 0)
                PV_LOG(PV_LOG_WARN, "erasure: identity not yet removed from the gallery; queued", "err=%s",
                       pv_errname(r2));
        }
        if (rc == 0)
            answer(j, 200, json_pack("{s:s%, s:b}", "visitor", j->vid, j->vid_len, "erased", 1));
    }
    explicit_bzero(&tn, sizeof(tn));
    if (rc == PV_ENOTFOUND)
        answer_error(j, 404, "not_found", "no such visitor for this tenant");
    else if (rc != 0)
        pv_gw_job_store_error(&j->super, rc, "the tenants store is unavailable; try again");
}

static void job_run(pv_gw_job_t *job)
{
    rjob_t *j = (rjob_t *)job;
    if (j->op == OP_VISITOR_GET || j->op == OP_VISITOR_DELETE)
        run_visitor(j);
    else
        run_faces(j);
}

/* ---- on the event loop --------------------------------------------------- */

static void job_dispose(pv_gw_job_t *job)
{
    rjob_t *j = (rjob_t *)job;
    free(j->image);
    free(j);
}

/* Queues j for the workers; answers 503 itself when the queue is full. */
static int submit(h2o_req_t *req, rjob_t *j, int route)
{
    j->super.route = route;
    j->super.run = job_run;
    j->super.dispose = job_dispose;
    return pv_gw_job_submit(req, &j->super);
}

static int image_route(h2o_req_t *req, const pv_auth_t *auth, int route, op_t op)
{
    if (pv_gw_thread(req)->gw->engine == NULL) {
        pv_http_send_error(req, 503, "unavailable", "face recognition is not configured on this gateway");
        return PV_ROUTE_DONE;
    }
    pv_req_error_t err = {"", 400};
    rjob_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        pv_http_send_code(req, PV_ENOMEM, "out of memory");
        return PV_ROUTE_DONE;
    }
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    if (pv_params_parse(&j->params, q, qlen, &err) != 0)
        goto bad;
    ssize_t ct = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    const uint8_t *img;
    size_t len;
    if (pv_body_image(&img, &len, ct >= 0 ? req->headers.entries[ct].value.base : NULL,
                      ct >= 0 ? req->headers.entries[ct].value.len : 0, (const uint8_t *)req->entity.base,
                      req->entity.base != NULL ? req->entity.len : 0, &err) != 0)
        goto bad;
    if ((j->image = malloc(len ? len : 1)) == NULL) {
        free(j);
        pv_http_send_code(req, PV_ENOMEM, "out of memory");
        return PV_ROUTE_DONE;
    }
    memcpy(j->image, img, len);
    j->image_len = len;
    j->op = op;
    j->auth = *auth;
    return submit(req, j, route);
bad:
    free(j);
    pv_http_send_error(req, err.status, err.status == 415 ? "unsupported_media_type" : "bad_request", "%s",
                       err.text);
    return PV_ROUTE_DONE;
}

int pv_route_recognize(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    return image_route(req, auth, route, OP_RECOGNIZE);
}

int pv_route_identify(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    return image_route(req, auth, route, OP_IDENTIFY);
}

int pv_route_detect(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    return image_route(req, auth, route, OP_DETECT);
}

/* GET/DELETE /v1/visitors/{id}: the id is the rest of the path. */
int pv_route_visitor(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    static const char prefix[] = "/v1/visitors/";
    const size_t plen = sizeof(prefix) - 1;
    h2o_iovec_t p = req->path_normalized;
    const char *id = p.base + plen;
    size_t len = p.len - plen;
    if (len == 0 || len >= sizeof(((rjob_t *)0)->vid) || memchr(id, '/', len) != NULL) {
        pv_http_send_error(req, 404, "not_found", "no such visitor for this tenant");
        return PV_ROUTE_DONE;
    }
    rjob_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        pv_http_send_code(req, PV_ENOMEM, "out of memory");
        return PV_ROUTE_DONE;
    }
    memcpy(j->vid, id, len);
    j->vid_len = len;
    j->op = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE")) ? OP_VISITOR_DELETE
                                                                               : OP_VISITOR_GET;
    j->auth = *auth;
    return submit(req, j, route);
}
