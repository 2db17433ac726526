/*
 * The gateway's routes: one handler on "/" dispatches by exact path, so every
 * answer (including 404 and 405) is the JSON error object. A route names the
 * scope it needs; authentication happens once, here, before the route runs.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/time.h>
#include "common/error.h"
#include "gateway/internal.h"
#include "gateway/metrics.h"
#include "gateway/request.h"

/* Returns PV_ROUTE_DONE, or PV_ROUTE_ASYNC when a job will answer (and count) it. */
typedef int (*route_fn)(h2o_req_t *req, const pv_auth_t *auth, int route);

typedef struct {
    const char *name; /* metrics label */
    const char *method;
    const char *path;
    int prefix;        /* 1: path is a prefix followed by one more segment */
    int authenticated; /* 0: public */
    uint32_t scope;    /* scope the key needs (0: any valid key) */
    route_fn fn;
} route_t;

static int send_json_obj(h2o_req_t *req, int status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    int ret = text ? pv_http_send_json(req, status, text, strlen(text))
                   : pv_http_send_code(req, PV_ENOMEM, "could not build the response");
    free(text);
    json_decref(obj);
    return ret;
}

static int healthz(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    (void)auth;
    (void)route;
    return pv_http_send_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
}

static int readyz(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    (void)auth;
    (void)route;
    pv_gw_thread_t *t = pv_gw_thread(req);
    int lmdb_ok = pv_tenants_ping(t->reader) == 0;
    const char *pg = "disabled";
    int pg_ok = 1;
    if (t->gw->pgmon != NULL) {
        pv_pg_state_t st = pv_pgmon_state(t->gw->pgmon);
        pg_ok = st == PV_PG_UP;
        pg = st == PV_PG_UP ? "ok" : st == PV_PG_DOWN ? "unreachable" : "checking";
    }
    /* analytics lagging: the oldest undelivered event is older than the bound */
    const char *outbox = "disabled";
    int outbox_ok = 1;
    if (t->gw->writer != NULL) {
        outbox_ok = pv_writer_oldest_age_ms(t->gw->writer) <= PV_OUTBOX_READY_AGE_MS;
        outbox = outbox_ok ? "ok" : "lagging";
    }
    int ready = lmdb_ok && pg_ok && outbox_ok;
    if (!ready)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    return send_json_obj(req, ready ? 200 : 503,
                         json_pack("{s:s,s:{s:s,s:s,s:s}}", "status", ready ? "ready" : "not_ready", "checks",
                                   "lmdb", lmdb_ok ? "ok" : "unavailable", "postgres", pg, "outbox", outbox));
}

static int whoami(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    (void)route;
    json_t *scopes = json_array();
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{PV_SCOPE_RECOGNIZE, "recognize"},
                 {PV_SCOPE_EVENTS, "events"},
                 {PV_SCOPE_ANALYTICS, "analytics"},
                 {PV_SCOPE_ERASE, "erase"}};
    for (size_t i = 0; scopes != NULL && i < sizeof(names) / sizeof(names[0]); i++)
        if (auth->scopes & names[i].bit)
            json_array_append_new(scopes, json_string(names[i].name));
    return send_json_obj(req, 200,
                         json_pack("{s:{s:I,s:s,s:s},s:{s:s,s:o}}", "tenant", "id",
                                   (json_int_t)auth->tenant_id, "name", auth->tenant_name, "mode",
                                   auth->mode == PV_TENANT_ISOLATED ? "isolated" : "network", "key", "id",
                                   auth->key_id, "scopes", scopes));
}

static int metrics(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    (void)auth;
    (void)route;
    static h2o_generator_t generator = {NULL, NULL};
    char *text;
    size_t len;
    if (pv_metrics_render(&text, &len) != 0)
        return pv_http_send_code(req, PV_ENOMEM, "could not render metrics");
    h2o_iovec_t body = h2o_strdup(&req->pool, text, len);
    free(text);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, 1);
    return 0;
}

static const route_t routes[] = {
    {"healthz", "GET", "/healthz", 0, 0, 0, healthz},
    {"readyz", "GET", "/readyz", 0, 0, 0, readyz},
    {"metrics", "GET", "/metrics", 0, 0, 0, metrics},
    {"whoami", "GET", "/v1/whoami", 0, 1, 0, whoami},
    {"recognize", "POST", "/v1/recognize", 0, 1, PV_SCOPE_RECOGNIZE, pv_route_recognize},
    {"identify", "POST", "/v1/identify", 0, 1, PV_SCOPE_RECOGNIZE, pv_route_identify},
    {"detect", "POST", "/v1/detect", 0, 1, PV_SCOPE_RECOGNIZE, pv_route_detect},
    {"visitor_get", "GET", "/v1/visitors/", 1, 1, PV_SCOPE_ANALYTICS, pv_route_visitor},
    {"visitor_delete", "DELETE", "/v1/visitors/", 1, 1, PV_SCOPE_ERASE, pv_route_visitor},
    {"events", "POST", "/v1/events", 0, 1, PV_SCOPE_EVENTS, pv_route_events},
    {"analytics", "GET", "/v1/analytics/", 1, 1, PV_SCOPE_ANALYTICS, pv_route_report},
    {"openapi", "GET", "/openapi.json", 0, 0, 0, pv_route_openapi},
    {NULL, NULL, NULL, 0, 0, 0, NULL},
};

/* The route table as JSON (see pv_gateway_print_routes in gateway.h). */
int pv_gateway_print_routes(FILE *f)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } scopes[] = {{PV_SCOPE_RECOGNIZE, "recognize"},
                  {PV_SCOPE_EVENTS, "events"},
                  {PV_SCOPE_ANALYTICS, "analytics"},
                  {PV_SCOPE_ERASE, "erase"}};
    json_t *arr = json_array();
    for (const route_t *r = routes; arr != NULL && r->path != NULL; r++) {
        const char *scope = NULL;
        for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++)
            if (r->scope == scopes[i].bit)
                scope = scopes[i].name;
        /* a prefix route serves one more segment: the reports by name, anything else as {id} */
        for (int k = 0; k == 0 || (r->prefix && r->fn == pv_route_report && pv_report_kind_name(k) != NULL); k++) {
            char path[128];
            snprintf(path, sizeof(path), "%s%s", r->path,
                     !r->prefix ? "" : r->fn == pv_route_report ? pv_report_kind_name(k) : "{id}");
            json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:s?}", "method", r->method, "path", path, "auth",
                                                 r->authenticated, "scope", scope));
        }
    }
    int rc = arr == NULL ? PV_ENOMEM : json_dumpf(arr, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0 ? PV_EIO : 0;
    json_decref(arr);
    if (rc == 0 && (fputc('\n', f) == EOF || fflush(f) != 0))
        rc = PV_EIO;
    return rc;
}

void pv_routes_init(void)
{
    const char *names[PV_METRICS_ROUTES_MAX];
    int n = 0;
    for (const route_t *r = routes; r->path != NULL && n < PV_METRICS_ROUTES_MAX; r++)
        names[n++] = r->name;
    pv_metrics_init(names, n);
}

/* Seconds since h2o received the request's first byte. */
double pv_request_elapsed(h2o_req_t *req)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) +
           (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
}

/* Whether the request's path is the route's (or, for a prefix route, the
 * prefix and one non-empty segment). */
static int path_is(const route_t *r, h2o_iovec_t p)
{
    size_t n = strlen(r->path);
    if (!r->prefix)
        return h2o_memis(p.base, p.len, r->path, n);
    return p.len > n && memcmp(p.base, r->path, n) == 0;
}

static int finish(h2o_req_t *req, int route)
{
    pv_metrics_request(route, req->res.status, pv_request_elapsed(req));
    return 0;
}

static int method_is(h2o_req_t *req, const char *m)
{
    size_t n = strlen(m);
    if (h2o_memis(req->method.base, req->method.len, m, n))
        return 1;
    /* HEAD is served wherever GET is; h2o drops the body */
    return strcmp(m, "GET") == 0 && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static int64_t now_us(void)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (int64_t)now.tv_sec * 1000000 + now.tv_usec;
}

/* The failed-authentication bucket of the client's address: the IPv4 address
 * (also when IPv4-mapped), or the /64 of an IPv6 one (what one host controls). */
static uint64_t peer_key(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (req->conn->callbacks->get_peername == NULL ||
        req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (uint64_t)1 << 32 | ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr);
    uint64_t k = 0;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return (uint64_t)1 << 32 | (uint32_t)a->s6_addr[12] << 24 | (uint32_t)a->s6_addr[13] << 16 |
                   (uint32_t)a->s6_addr[14] << 8 | a->s6_addr[15];
        for (int i = 0; i < 8; i++)
            k = k << 8 | a->s6_addr[i];
    }
    return k;
}

/*
 * Failed authentications are limited per client address (a token bucket of
 * --auth-fail-max failures refilled at --auth-fail-rate per minute): once it
 * is empty, every request of that address that needs a key gets 429 with
 * Retry-After, without its key being looked at, so guessing cannot go on
 * behind a valid key. Other addresses are not affected.
 */
static int auth_blocked(h2o_req_t *req, uint64_t peer)
{
    pv_gw_t *gw = pv_gw_thread(req)->gw;
    if (gw->auth_failures == NULL)
        return 0;
    int wait = pv_ratelimit_peek(gw->auth_failures, peer, (double)gw->conf->auth_fail_per_min / 60.0,
                                 (double)gw->conf->auth_fail_max, 1.0, now_us());
    if (wait == 0)
        return 0;
    char s[16];
    int n = snprintf(s, sizeof(s), "%d", wait);
    h2o_iovec_t v = h2o_strdup(&req->pool, s, (size_t)n);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v.base, v.len);
    pv_metrics_count(PV_COUNTER_RATE_LIMITED, 1);
    pv_http_send_error(req, 429, "rate_limited",
                       "too many failed authentications from this address; retry later");
    return 1;
}

static void auth_failed(h2o_req_t *req, uint64_t peer)
{
    pv_gw_t *gw = pv_gw_thread(req)->gw;
    if (gw->auth_failures != NULL)
        pv_ratelimit_take(gw->auth_failures, peer, (double)gw->conf->auth_fail_per_min / 60.0,
                          (double)gw->conf->auth_fail_max, 1.0, now_us());
}

/*
 * Parses "Bearer <key>" (scheme case-insensitive, as RFC 7235 says) and
 * authenticates the key. Answers 401 (or 429, see auth_blocked) itself and
 * returns nonzero on failure; every failure but a missing header counts
 * against the client's address.
 */
static int authenticate(h2o_req_t *req, pv_auth_t *auth)
{
    uint64_t peer = peer_key(req);
    if (auth_blocked(req, peer))
        return -1;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    const char *why;
    int err = PV_EAUTH;
    if (i < 0) {
        why = "missing Authorization header (expected: Bearer <api key>)";
        goto fail;
    }
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i) >= 0) {
        why = "more than one Authorization header";
        goto fail;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    const char *key;
    size_t len;
    if (pv_bearer_key(&key, &len, v.base, v.len) != 0) {
        why = "malformed Authorization header (expected: Bearer <api key>)";
        goto fail;
    }
    err = pv_tenants_authenticate(pv_gw_thread(req)->reader, auth, key, len);
    switch (err) {
    case 0:
        return 0;
    case PV_EINVAL:
        why = "malformed API key";
        break;
    case PV_EREVOKED:
        why = "API key revoked";
        break;
    case PV_EEXPIRED:
        why = "API key expired (after a rotation: use the new key)";
        break;
    case PV_EAUTH:
        why = "unknown API key or wrong secret";
        break;
    default:
        pv_http_send_code(req, err, "could not check the API key");
        return -1;
    }
fail:
    if (i >= 0)
        auth_failed(req, peer);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
    pv_http_send_error(req, 401,
                       err == PV_EREVOKED   ? "revoked_key"
                       : err == PV_EEXPIRED ? "expired_key"
                                            : "unauthorized",
                       "%s", why);
    return -1;
}

/* The tenant's per-key token bucket; answers 429 itself when it is empty. */
static int rate_limited(h2o_req_t *req, const pv_auth_t *auth)
{
    pv_ratelimit_t *rl = pv_gw_thread(req)->gw->ratelimit;
    if (rl == NULL || auth->rate_per_min == 0)
        return 0;
    uint64_t key = 0;
    for (int i = 0; i < PV_KEY_ID_LEN; i++) {
        char c = auth->key_id[i];
        key = key << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    double rate = auth->rate_per_min / 60.0;
    double burst =
        auth->burst > 0 ? auth->burst : (auth->rate_per_min / 10 > 5 ? auth->rate_per_min / 10 : 5);
    struct timeval now;
    gettimeofday(&now, NULL);
    int wait = pv_ratelimit_take(rl, key, rate, burst, 1.0, (int64_t)now.tv_sec * 1000000 + now.tv_usec);
    if (wait == 0)
        return 0;
    char s[16];
    int n = snprintf(s, sizeof(s), "%d", wait);
    h2o_iovec_t v = h2o_strdup(&req->pool, s, (size_t)n);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v.base, v.len);
    pv_metrics_count(PV_COUNTER_RATE_LIMITED, 1);
    pv_http_send_error(req, 429, "rate_limited", "this API key sends more than %u requests per minute",
                       auth->rate_per_min);
    return 1;
}

int pv_routes_handle(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    pv_http_begin(req);
    const route_t *path_match = NULL;
    for (const route_t *r = routes; r->path != NULL; r++) {
        if (!path_is(r, req->path_normalized))
            continue;
        path_match = r;
        if (!method_is(req, r->method))
            continue;
        int idx = (int)(r - routes);
        pv_auth_t auth;
        memset(&auth, 0, sizeof(auth));
        if (r->authenticated && authenticate(req, &auth) != 0)
            return finish(req, idx);
        if (r->scope != 0 && (auth.scopes & r->scope) == 0) {
            pv_http_send_error(req, 403, "forbidden", "this API key lacks the scope this route needs");
            return finish(req, idx);
        }
        if (r->authenticated && rate_limited(req, &auth))
            return finish(req, idx);
        if (r->fn(req, &auth, idx) == PV_ROUTE_ASYNC)
            return 0; /* the job counts it when it answers */
        return finish(req, idx);
    }
    if (path_match != NULL) {
        char allow[64] = "";
        for (const route_t *r = routes; r->path != NULL; r++) {
            if (strcmp(r->path, path_match->path) == 0 &&
                strlen(allow) + strlen(r->method) + 8 < sizeof(allow)) {
                if (allow[0] != '\0')
                    strcat(allow, ", ");
                strcat(allow, r->method);
                if (strcmp(r->method, "GET") == 0)
                    strcat(allow, ", HEAD");
            }
        }
        h2o_iovec_t a = h2o_strdup(&req->pool, allow, strlen(allow));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, a.base, a.len);
        pv_http_send_error(req, 405, "method_not_allowed", "%.*s is not allowed on this path",
                           (int)(req->method.len > 16 ? 16 : req->method.len), req->method.base);
        return finish(req, (int)(path_match - routes));
    }
    if (pv_static_serve(req)) /* the web console (GET/HEAD outside /v1/) */
        return finish(req, -1);
    pv_http_send_error(req, 404, "not_found", "no such route");
    return finish(req, -1);
}
