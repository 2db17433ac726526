/*
 * A route's blocking work as one job on the worker pool (see internal.h,
 * pv_gw_job_t): the event loop submits, a worker runs the route's `run` and
 * builds the JSON answer, the loop sends it from job_done. A request whose
 * client went away while its job ran is dropped when the job returns: the
 * job, not the request pool, owns everything the worker touches.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include "common/error.h"
#include "gateway/internal.h"
#include "gateway/metrics.h"

/* Lives in the request's pool: tells a running job that its request is gone. */
struct pv_gw_job_slot {
    pv_gw_job_t *job;
};

double pv_gw_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_req_dispose(void *p)
{
    struct pv_gw_job_slot *s = p;
    if (s->job != NULL) {
        s->job->req = NULL;
        atomic_store_explicit(&s->job->cancelled, 1, memory_order_relaxed);
    }
}

void pv_gw_job_answer(pv_gw_job_t *j, int status, json_t *obj)
{
    j->status = status;
    j->body =
        obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(obj);
}

void pv_gw_job_error(pv_gw_job_t *j, int status, const char *code, const char *message)
{
    if (status == 503 && j->retry_after == 0)
        j->retry_after = 1;
    pv_gw_job_answer(j, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

/* Below this much free space under the data directory, a failed write is
 * blamed on a full disk. The errno cannot tell: LMDB reports a short write
 * (the disk filled up during a commit) as EIO, and translates codes anyway. */
#define DISK_FULL_BYTES ((uint64_t)1 << 20)

void pv_gw_job_store_error(pv_gw_job_t *j, int rc, const char *message)
{
    struct statvfs st;
    const char *dir = j->gw->conf->data_dir;
    if (rc != 0 && dir != NULL && statvfs(dir, &st) == 0 &&
        (uint64_t)st.f_bavail * st.f_frsize < DISK_FULL_BYTES) {
        j->retry_after = 10;
        pv_gw_job_error(j, 503, "storage_full",
                        "the gateway's storage is full: nothing was recorded; try again later");
    } else {
        pv_gw_job_error(j, 503, "unavailable", message);
    }
}

static void job_run(pv_job_t *job)
{
    pv_gw_job_t *j = (pv_gw_job_t *)job;
    /* a request cancelled while queued (an HTTP/2 stream reset, a closed connection) costs no work */
    if (atomic_load_explicit(&j->cancelled, memory_order_relaxed))
        return;
    /* a job that waited past --queue-timeout-ms is shed: its answer would come too late to matter */
    long limit = j->gw->conf->queue_timeout_ms;
    if (limit > 0 && pv_gw_mono_ms() - j->submitted_ms > (double)limit) {
        pv_metrics_count(PV_COUNTER_SHED, 1);
        pv_gw_job_error(j, 503, "overloaded", "the request waited too long for a worker; try again shortly");
        return;
    }
    j->run(j);
    if (j->body == NULL && j->status == 0)
        j->status = 500;
}

static void job_done(pv_job_t *job)
{
    pv_gw_job_t *j = (pv_gw_job_t *)job;
    if (j->req != NULL) {
        j->slot->job = NULL;
        if (j->retry_after > 0) {
            char s[16];
            int n = snprintf(s, sizeof(s), "%d", j->retry_after);
            h2o_iovec_t v = h2o_strdup(&j->req->pool, s, (size_t)n);
            h2o_add_header(&j->req->pool, &j->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v.base, v.len);
        }
        if (j->body != NULL)
            pv_http_send_json(j->req, j->status, j->body, strlen(j->body));
        else
            pv_http_send_error(j->req, 500, "internal", "could not build the response");
        pv_metrics_request(j->route, j->req->res.status, pv_request_elapsed(j->req));
    }
    j->thread->inflight--;
    free(j->body);
    j->body = NULL;
    j->dispose(j);
}

int pv_gw_job_submit(h2o_req_t *req, pv_gw_job_t *j)
{
    pv_gw_thread_t *t = pv_gw_thread(req);
    j->gw = t->gw;
    j->thread = t;
    j->req = req;
    j->super.run = job_run;
    j->super.done = job_done;
    j->super.receiver = &t->receiver;
    j->submitted_ms = pv_gw_mono_ms();
    j->slot = h2o_mem_alloc_shared(&req->pool, sizeof(*j->slot), on_req_dispose);
    j->slot->job = j;
    if (pv_pool_submit(t->gw->pool, &j->super) != 0) {
        j->slot->job = NULL;
        j->dispose(j);
        pv_metrics_count(PV_COUNTER_SHED, 1);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        pv_http_send_error(req, 503, "overloaded", "too many requests in progress; try again shortly");
        return PV_ROUTE_DONE;
    }
    t->inflight++;
    return PV_ROUTE_ASYNC;
}
