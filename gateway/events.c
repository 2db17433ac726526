/*
 * POST /v1/events (scope events): a batch of business events for the
 * tenant's visitors (tenants/events.h has the rules). The loop checks the
 * media type and the size and copies the body; parsing, validation and the
 * one LMDB write transaction run as a job on the worker pool. 200 when every
 * event was accepted or already stored (duplicate), 207 with per-event
 * results when any was rejected; batch-level errors are 400/413/415/422.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/error.h"
#include "common/log.h"
#include "gateway/internal.h"
#include "tenants/events.h"

typedef struct {
    pv_gw_job_t super;
    pv_auth_t auth;
    char *body; /* a copy: the worker must not read the request's memory */
    size_t len;
} ejob_t;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run(pv_gw_job_t *job)
{
    ejob_t *j = (ejob_t *)job;
    pv_events_error_t perr;
    json_t *events = NULL, *res = NULL;
    pv_event_result_t *results = NULL;
    pv_tenant_t tn;
    size_t accepted = 0, duplicates = 0, rejected = 0;
    int rc;

    memset(&tn, 0, sizeof(tn));
    if (pv_events_parse(&events, j->body, j->len, &perr) != 0) {
        pv_gw_job_error(job, perr.status,
                        perr.status == 400   ? "bad_json"
                        : perr.status == 413 ? "too_large"
                                             : "bad_request",
                        perr.text);
        goto out;
    }
    if ((rc = pv_tenants_get(job->gw->tenants, &tn, j->auth.tenant_id)) != 0) {
        if (rc == PV_ENOTFOUND)
            pv_gw_job_error(job, 401, "unauthorized", "the tenant no longer exists");
        else
            pv_gw_job_error(job, 503, "unavailable", "the tenants store is unavailable; try again");
        goto out;
    }
    const size_t n = json_array_size(events);
    if ((results = calloc(n, sizeof(*results))) == NULL || (res = json_array()) == NULL) {
        pv_gw_job_error(job, 503, "unavailable", "out of memory; try again");
        goto out;
    }
    if ((rc = pv_events_append(job->gw->tenants, &tn, events, wall_ms(), results, &accepted)) != 0) {
        PV_LOG(PV_LOG_ERROR, "cannot record business events", "err=%s", pv_errname(rc));
        pv_gw_job_store_error(job, rc, "the events could not be recorded; try again");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *id = json_object_get(json_array_get(events, i), "event_id");
        json_t *r = json_pack("{s:I, s:O, s:s}", "index", (json_int_t)i, "event_id",
                              json_is_string(id) ? (json_t *)id : json_null(), "status",
                              pv_event_status_name(results[i].status));
        if (r != NULL && results[i].status == PV_EVENT_REJECTED)
            json_object_set_new(r, "reason", json_string(results[i].reason));
        json_array_append_new(res, r);
        duplicates += results[i].status == PV_EVENT_DUPLICATE;
        rejected += results[i].status == PV_EVENT_REJECTED;
    }
    pv_gw_job_answer(job, rejected > 0 ? 207 : 200,
                     json_pack("{s:I, s:I, s:I, s:o}", "accepted", (json_int_t)accepted, "duplicate",
                               (json_int_t)duplicates, "rejected", (json_int_t)rejected, "results", res));
    res = NULL;
out:
    explicit_bzero(&tn, sizeof(tn));
    json_decref(res);
    json_decref(events);
    free(results);
}

static void dispose(pv_gw_job_t *job)
{
    ejob_t *j = (ejob_t *)job;
    free(j->body);
    free(j);
}

/* Content-Type is application/json, with parameters (charset) allowed. */
static int is_json(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char mt[] = "application/json";
    const size_t n = sizeof(mt) - 1;
    if (v.len < n || !h2o_lcstris(v.base, n, mt, n))
        return 0;
    return v.len == n || v.base[n] == ';' || v.base[n] == ' ';
}

int pv_route_events(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    const size_t len = req->entity.base != NULL ? req->entity.len : 0;
    if (!is_json(req)) {
        pv_http_send_error(req, 415, "unsupported_media_type", "the body must be application/json");
        return PV_ROUTE_DONE;
    }
    if (len > PV_EVENTS_BODY_MAX) {
        pv_http_send_error(req, 413, "too_large", "a batch of events is at most %d bytes", PV_EVENTS_BODY_MAX);
        return PV_ROUTE_DONE;
    }
    ejob_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->body = malloc(len ? len : 1)) == NULL) {
        free(j);
        pv_http_send_code(req, PV_ENOMEM, "out of memory");
        return PV_ROUTE_DONE;
    }
    if (len > 0)
        memcpy(j->body, req->entity.base, len);
    j->len = len;
    j->auth = *auth;
    j->super.route = route;
    j->super.run = run;
    j->super.dispose = dispose;
    return pv_gw_job_submit(req, &j->super);
}
