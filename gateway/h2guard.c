/*
 * The HTTP/2 rapid-reset guard (see h2guard.h). libh2o 2.2.5 offers no
 * per-connection hook for RST_STREAM, so the guard watches the requests
 * instead: an object in each HTTP/2 request's pool reports, when the pool is
 * cleared, whether any byte of the answer went out (req->bytes_sent counts
 * DATA payload as it is framed, which happens only after the frames read in
 * the same batch were parsed: a HEADERS+RST_STREAM pair never gets there).
 * Counts live in a small per-loop table keyed by connection id. The GOAWAY
 * is sent from a zero-delay timer, never from inside the stream's disposal,
 * and does what libh2o's own enqueue_goaway does (http2_internal.h).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/log.h"
#include "gateway/h2guard.h"
#include <h2o/http2.h>
#include <h2o/http2_internal.h>

#define SLOTS 1024 /* power of two */
#define PROBES 8
#define PENDING_MAX 16

typedef struct {
    uint64_t conn_id; /* 0: free */
    uint64_t window_start;
    int cancelled;
    int closing; /* a GOAWAY is scheduled or sent */
} slot_t;

struct pv_h2guard {
    h2o_context_t *ctx;
    int limit;
    uint64_t window_ms;
    slot_t slots[SLOTS];
    uint64_t pending[PENDING_MAX]; /* connection ids to send GOAWAY to */
    int npending;
    h2o_timeout_entry_t timer;
};

/* Lives in a tracked request's pool. */
typedef struct {
    pv_h2guard_t *g;
    h2o_req_t *req;
    int is_head; /* a HEAD answer has no body, so no bytes are ever sent */
} track_t;

static atomic_uint_fast64_t cancelled_total, closed_total;

uint64_t pv_h2guard_cancelled(void)
{
    return atomic_load_explicit(&cancelled_total, memory_order_relaxed);
}

uint64_t pv_h2guard_closed(void)
{
    return atomic_load_explicit(&closed_total, memory_order_relaxed);
}

/* The connection's slot; else a free one, else the probed one whose window started first. */
static slot_t *slot_for(pv_h2guard_t *g, uint64_t id, uint64_t now)
{
    slot_t *victim = NULL;
    for (int i = 0; i < PROBES; i++) {
        slot_t *s = &g->slots[(id + (uint64_t)i) & (SLOTS - 1)];
        if (s->conn_id == id)
            return s;
        uint64_t rank = s->conn_id == 0 ? 0 : s->window_start + 1;
        if (victim == NULL || rank < (victim->conn_id == 0 ? 0 : victim->window_start + 1))
            victim = s;
    }
    memset(victim, 0, sizeof(*victim));
    victim->conn_id = id;
    victim->window_start = now;
    return victim;
}

/* What libh2o's enqueue_goaway does: GOAWAY, then no new streams; it closes once the open ones are answered.
 */
static void goaway(pv_h2guard_t *g, h2o_http2_conn_t *conn)
{
    h2o_http2_encode_goaway_frame(&conn->_write.buf, conn->pull_stream_ids.max_open,
                                  H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM,
                                  h2o_iovec_init(H2O_STRLIT("too many cancelled streams")));
    h2o_http2_conn_request_write(conn);
    conn->state = H2O_HTTP2_CONN_STATE_HALF_CLOSED;
    atomic_fetch_add_explicit(&closed_total, 1, memory_order_relaxed);
    PV_LOG(PV_LOG_WARN, "http2 connection closed: too many cancelled streams",
           "conn=%llu limit=%d window_ms=%llu", (unsigned long long)conn->super.id, g->limit,
           (unsigned long long)g->window_ms);
}

/* On the loop, from the zero timer: GOAWAY to every flagged connection still open. */
static void on_timer(h2o_timeout_entry_t *entry)
{
    pv_h2guard_t *g = H2O_STRUCT_FROM_MEMBER(pv_h2guard_t, timer, entry);
    for (h2o_linklist_t *n = g->ctx->http2._conns.next; n != &g->ctx->http2._conns; n = n->next) {
        h2o_http2_conn_t *conn = H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, n);
        for (int i = 0; i < g->npending; i++)
            if (conn->super.id == g->pending[i] && conn->state == H2O_HTTP2_CONN_STATE_OPEN)
                goaway(g, conn);
    }
    g->npending = 0;
}

static void on_req_dispose(void *p)
{
    track_t *t = p;
    h2o_req_t *req = t->req;
    pv_h2guard_t *g = t->g;
    if (req->bytes_sent != 0 || t->is_head)
        return;
    atomic_fetch_add_explicit(&cancelled_total, 1, memory_order_relaxed);
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    if (g->limit <= 0 || conn->state != H2O_HTTP2_CONN_STATE_OPEN)
        return;
    uint64_t now = h2o_now(g->ctx->loop);
    slot_t *s = slot_for(g, conn->super.id, now);
    if (now - s->window_start > g->window_ms) {
        s->window_start = now;
        s->cancelled = 0;
    }
    if (++s->cancelled <= g->limit || s->closing)
        return;
    s->closing = 1; /* the next request it opens triggers the GOAWAY; else the timer does */
    if (g->npending < PENDING_MAX)
        g->pending[g->npending++] = conn->super.id;
    if (!h2o_timeout_is_linked(&g->timer))
        h2o_timeout_link(g->ctx->loop, &g->ctx->zero_timeout, &g->timer);
}

void pv_h2guard_track(pv_h2guard_t *g, h2o_req_t *req)
{
    if (g == NULL || req->version < 0x200)
        return;
    /* a flagged connection whose frames are still being parsed: GOAWAY now (a request handler may
     * write to its connection), so the rest of what it sent in this read is ignored, not served */
    h2o_http2_conn_t *conn = (h2o_http2_conn_t *)req->conn;
    if (g->limit > 0 && conn->state == H2O_HTTP2_CONN_STATE_OPEN) {
        for (int i = 0; i < PROBES; i++) {
            slot_t *s = &g->slots[(conn->super.id + (uint64_t)i) & (SLOTS - 1)];
            if (s->conn_id == conn->super.id) {
                if (s->closing)
                    goaway(g, conn);
                break;
            }
        }
    }
    track_t *t = h2o_mem_alloc_shared(&req->pool, sizeof(*t), on_req_dispose);
    t->g = g;
    t->req = req;
    t->is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

int pv_h2guard_create(pv_h2guard_t **out, h2o_context_t *ctx, int limit, int window_ms)
{
    pv_h2guard_t *g = calloc(1, sizeof(*g));
    *out = NULL;
    if (g == NULL)
        return PV_ENOMEM;
    g->ctx = ctx;
    g->limit = limit;
    g->window_ms = (uint64_t)(window_ms > 0 ? window_ms : 1);
    g->timer.cb = on_timer;
    *out = g;
    return 0;
}

void pv_h2guard_destroy(pv_h2guard_t *g)
{
    if (g == NULL)
        return;
    if (h2o_timeout_is_linked(&g->timer))
        h2o_timeout_unlink(&g->timer);
    free(g);
}
