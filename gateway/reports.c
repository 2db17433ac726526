/*
 * GET /v1/analytics/{summary,timeseries,retention,frequency,conversion}
 * (scope analytics): the k-anonymous reports of analytics/reports.h. The
 * loop validates the query string (400/422 naming the parameter) and submits
 * a job; the query runs on a worker with that worker's PostgreSQL
 * connection. No --pg: 503 "analytics not configured"; PostgreSQL down: 503
 * with Retry-After.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include "analytics/reports.h"
#include "common/error.h"
#include "common/log.h"
#include "gateway/internal.h"

#define PREFIX "/v1/analytics/"

typedef struct {
    pv_gw_job_t super;
    pv_report_query_t q;
    uint64_t tenant_id;
} rjob_t;

static void run(pv_gw_job_t *job)
{
    rjob_t *j = (rjob_t *)job;
    pv_report_error_t err = {0, "", ""};
    json_t *out = NULL;
    int rc = pv_report_run(job->gw->reports, &out, &j->q, j->tenant_id, &err);
    if (rc == 0) {
        pv_gw_job_answer(job, 200, out);
        return;
    }
    if (rc == PV_EINVAL) {
        pv_gw_job_error(job, err.status, err.status == 400 ? "bad_request" : "invalid_parameter", err.text);
        return;
    }
    if (rc != PV_EUNAVAIL)
        PV_LOG(PV_LOG_ERROR, "report failed", "err=%s", pv_errname(rc));
    pv_gw_job_error(job, 503, "unavailable",
                    err.text[0] ? err.text : "the report could not be computed; try again");
}

static void dispose(pv_gw_job_t *job)
{
    free(job);
}

int pv_route_report(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    h2o_iovec_t p = req->path_normalized;
    int kind = p.len > sizeof(PREFIX) - 1
                   ? pv_report_kind(p.base + sizeof(PREFIX) - 1, p.len - (sizeof(PREFIX) - 1))
                   : -1;
    if (kind < 0) {
        pv_http_send_error(req, 404, "not_found",
                           "no such report (summary, timeseries, retention, frequency, conversion)");
        return PV_ROUTE_DONE;
    }
    if (pv_gw_thread(req)->gw->reports == NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("60"));
        pv_http_send_error(req, 503, "unavailable",
                           "analytics not configured (the gateway runs without --pg)");
        return PV_ROUTE_DONE;
    }
    rjob_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        pv_http_send_code(req, PV_ENOMEM, "out of memory");
        return PV_ROUTE_DONE;
    }
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    pv_report_error_t err = {0, "", ""};
    if (pv_report_query_parse(&j->q, (pv_report_kind_t)kind, q, qlen, &err) != 0) {
        free(j);
        pv_http_send_error(req, err.status, err.status == 400 ? "bad_request" : "invalid_parameter", "%s",
                           err.text);
        return PV_ROUTE_DONE;
    }
    j->tenant_id = auth->tenant_id;
    j->super.route = route;
    j->super.run = run;
    j->super.dispose = dispose;
    return pv_gw_job_submit(req, &j->super);
}
