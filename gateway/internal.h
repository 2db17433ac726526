/*
 * Gateway internals shared by server.c, http.c and routes.c. One
 * pv_gw_thread_t per event loop; its h2o context comes first (`super`) so a
 * handler finds its thread from req->conn->ctx.
 */
#ifndef PV_GATEWAY_INTERNAL_H
#define PV_GATEWAY_INTERNAL_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <jansson.h>
#include <pthread.h>
#include "analytics/analytics.h"
#include "analytics/reports.h"
#include "analytics/writer.h"
#include "gateway/gateway.h"
#include "gateway/pool.h"
#include "gateway/ratelimit.h"
#include "recognizer/face.h"
#include "recognizer/shards.h"
#include "recognizer/match.h"
#include "tenants/tenants.h"

typedef struct pv_gw pv_gw_t;
typedef struct pv_gw_upkeep pv_gw_upkeep_t;

/* /readyz reports not ready while the oldest undelivered analytics event is older than this */
#define PV_OUTBOX_READY_AGE_MS (5 * 60 * 1000)

typedef struct {
    h2o_context_t super;
    pv_gw_t *gw;
    int index;
    pv_tenants_reader_t *reader; /* this loop's LMDB read transaction */
    unsigned long long request_seq;
    h2o_multithread_queue_t *queue; /* finished worker jobs come back through it */
    h2o_multithread_receiver_t receiver;
    int inflight; /* jobs submitted from this loop and not yet done */
} pv_gw_thread_t;

struct pv_gw {
    const pv_gateway_config_t *conf;
    pv_tenants_t *tenants;
    pv_pgmon_t *pgmon;  /* NULL when no DSN is configured */
    pv_writer_t *writer; /* the outbox -> PostgreSQL writer; NULL when no DSN is configured */
    pv_reports_t *reports; /* report queries' connections (one per worker); NULL when no DSN is configured */
    char id_prefix[9];  /* random per process, starts every request id */
    /* recognition (NULL engine: the routes answer 503) */
    pv_face_engine_t *engine;
    pv_shards_t *shards; /* the identity gallery: in-process partitions or remote shards */
    pv_match_config_t match;
    pv_pool_t *pool;
    pv_ratelimit_t *ratelimit; /* per API key, the tenant's rate */
    pv_ratelimit_t *auth_failures; /* failed authentications per client address; NULL: unlimited */
    pthread_mutex_t ctx_mu; /* guards ctx/nctx: one face context per worker */
    pv_face_ctx_t **ctx;
    int nctx;
    pv_gw_upkeep_t *upkeep; /* NULL without a gallery */
};

/* upkeep.c: the forget queue and the retention sweep, on a thread of their own. */
/* Every forget_ms: queued identities leave the gallery; every sweep_ms (0: never): the retention sweep. */
int pv_gw_upkeep_start(pv_gw_upkeep_t **out, pv_gw_t *gw, int forget_ms, int sweep_ms);
void pv_gw_upkeep_stop(pv_gw_upkeep_t *u); /* NULL is a no-op */
/* Removes gid from the gallery and then from the forget queue (it stays queued on failure). */
int pv_gw_forget_now(pv_gw_t *gw, uint64_t gid);
/* One pass over the queue; returns how many identities left the gallery. */
size_t pv_gw_forget_run(pv_gw_t *gw);

static inline pv_gw_thread_t *pv_gw_thread(h2o_req_t *req)
{
    return (pv_gw_thread_t *)req->conn->ctx;
}

/* http.c: response helpers. All of them finish the request. */
void pv_http_begin(h2o_req_t *req);
int pv_http_send_json(h2o_req_t *req, int status, const char *json, size_t len);
int pv_http_send_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Maps a PV_E* code to an HTTP status and answers with it. */
int pv_http_send_code(h2o_req_t *req, int err, const char *message);

/* What a route function returns: answered already, or answered later by a job. */
enum { PV_ROUTE_DONE = 0, PV_ROUTE_ASYNC = 1 };

/*
 * job.c: a route's blocking work (inference, LMDB writes) as one job on the
 * worker pool. The route allocates a struct that starts with a pv_gw_job_t
 * (`super`), sets route, run and dispose, and calls pv_gw_job_submit(). `run`
 * executes on a worker and fills status/body (pv_gw_job_answer/_error);
 * the submitting loop then sends the answer, counts it in the metrics and
 * calls `dispose`, which frees the whole job. When the request is gone by
 * then, nothing is sent. The job must not read the request's memory.
 */
typedef struct pv_gw_job pv_gw_job_t;
struct pv_gw_job {
    pv_job_t super;
    pv_gw_t *gw;
    pv_gw_thread_t *thread;      /* the loop that submitted it */
    h2o_req_t *req;              /* NULL once the request was disposed */
    struct pv_gw_job_slot *slot; /* in the request's pool */
    int route;                   /* index for the metrics */
    double submitted_ms;         /* pv_gw_mono_ms() at submission */
    void (*run)(pv_gw_job_t *j);     /* on a worker */
    void (*dispose)(pv_gw_job_t *j); /* on the loop: frees the job */
    /* the answer, built on the worker */
    int status;
    char *body;
    int retry_after; /* seconds, sent with a 429 or 503 when > 0 */
    _Atomic int cancelled; /* set on the loop when the request goes away; the worker then skips run */
};
/* Queues j; returns PV_ROUTE_ASYNC, or answers 503 itself, disposes j and
 * returns PV_ROUTE_DONE when the queue is full. */
int pv_gw_job_submit(h2o_req_t *req, pv_gw_job_t *j);
/* The answer: status and obj (consumed; NULL gives a 500). On the worker. */
void pv_gw_job_answer(pv_gw_job_t *j, int status, json_t *obj);
/* The error object {"error":{code,message}}; a 503 gets Retry-After: 1. */
void pv_gw_job_error(pv_gw_job_t *j, int status, const char *code, const char *message);
/* A failed write (rc) to the tenants store: 503 `storage_full` (Retry-After:
 * 10) when the filesystem of the data directory has (almost) no space left,
 * else 503 `unavailable` with message. Nothing was written either way (the
 * transaction aborted). On the worker. */
void pv_gw_job_store_error(pv_gw_job_t *j, int rc, const char *message);
/* CLOCK_MONOTONIC in milliseconds. */
double pv_gw_mono_ms(void);

/* recognize.c: the recognition routes (route = index for the metrics). */
int pv_route_recognize(h2o_req_t *req, const pv_auth_t *auth, int route);
int pv_route_identify(h2o_req_t *req, const pv_auth_t *auth, int route);
int pv_route_detect(h2o_req_t *req, const pv_auth_t *auth, int route);
int pv_route_visitor(h2o_req_t *req, const pv_auth_t *auth, int route);

/* events.c: POST /v1/events, business events for the tenant's visitors. */
int pv_route_events(h2o_req_t *req, const pv_auth_t *auth, int route);

/* reports.c: GET /v1/analytics/<report>, the k-anonymous reports (prefix route). */
int pv_route_report(h2o_req_t *req, const pv_auth_t *auth, int route);

/* openapi.c: GET /openapi.json, the embedded API reference (public, cacheable). */
int pv_route_openapi(h2o_req_t *req, const pv_auth_t *auth, int route);

/* static.c: the web console's files for GET/HEAD outside /v1/; returns 1 when it answered, 0 when the
 * request is not its (the caller answers). pv_static_path_ok: whether a path (no leading slash) is servable. */
int pv_static_serve(h2o_req_t *req);
int pv_static_path_ok(const char *p, size_t len);

/* routes.c: the single handler on "/" that dispatches every request. */
int pv_routes_handle(h2o_handler_t *self, h2o_req_t *req);
/* Registers the route names with the metrics; once, before serving. */
void pv_routes_init(void);
/* Seconds since the request began. */
double pv_request_elapsed(h2o_req_t *req);

#endif
