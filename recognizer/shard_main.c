/*
 * privid-shard: serves one gallery partition over HTTP/1.1 (libh2o evloop)
 * with the binary bodies of shard_proto.h. One event-loop thread accepts,
 * routes and decodes (cheap, bounded); every gallery call (FAISS search,
 * LMDB commits) runs on the worker pool and comes back through the loop's
 * h2o multithread queue, so the loop never blocks. Errors are the JSON
 * object {"error":{"code":...,"message":...}}, code = pv_errname(), so the
 * client maps them back to PV_E* codes. SIGTERM/SIGINT: stop accepting,
 * finish in-flight jobs, close the gallery (snapshot first by default).
 *
 *   POST /v1/shard/search|enroll|add|remove   Content-Type: application/x-privid-shard
 *   GET  /v1/shard/stats   binary, or JSON with "Accept: application/json"
 *   GET  /healthz          {"status":"ok"}
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "common/config.h"
#include "common/crash.h"
#include "common/error.h"
#include "common/log.h"
#include "common/net.h"
#include "gateway/pool.h"
#include "recognizer/gallery.h"
#include "recognizer/shard_proto.h"

#define DRAIN_MS 2000

typedef struct {
    pv_strlist_t listen;
    char *data_dir;
    char *log_level;
    long k, workers, queue_max, exact_max, nprobe, map_size_mb, max_body;
    int durable, snapshot_on_exit;
} shard_config_t;

static const pv_opt_t options[] = {
    {"listen", "PRIVID_SHARD_LISTEN", PV_OPT_LIST, offsetof(shard_config_t, listen), "127.0.0.1:9100", 0, 0,
     "HOST:PORT to serve on (repeatable; port 0 picks a free port, logged)"},
    {"data-dir", "PRIVID_SHARD_DATA_DIR", PV_OPT_STRING, offsetof(shard_config_t, data_dir), "./var/shard", 0, 0,
     "gallery directory (LMDB environment and snapshot); created when missing"},
    {"k", "PRIVID_SHARD_K", PV_OPT_INT, offsetof(shard_config_t, k), "8", 1, PV_GALLERY_K_MAX,
     "exemplars kept per identity (fixed when the gallery is created)"},
    {"workers", "PRIVID_SHARD_WORKERS", PV_OPT_INT, offsetof(shard_config_t, workers), "2", 1, 64,
     "worker threads running gallery calls"},
    {"queue", "PRIVID_SHARD_QUEUE", PV_OPT_INT, offsetof(shard_config_t, queue_max), "256", 1, 65536,
     "requests waiting for a worker before 503"},
    {"durable", "PRIVID_SHARD_DURABLE", PV_OPT_BOOL, offsetof(shard_config_t, durable), "true", 0, 0,
     "true: a 2xx write has been fsynced; false: committed (survives a killed process, not a power loss)"},
    {"exact-max", "PRIVID_SHARD_EXACT_MAX", PV_OPT_INT, offsetof(shard_config_t, exact_max), "20000", 1,
     1000000000, "exemplars above which an index becomes IVF"},
    {"nprobe", "PRIVID_SHARD_NPROBE", PV_OPT_INT, offsetof(shard_config_t, nprobe), "48", 1, 65536,
     "IVF lists visited per query"},
    {"map-size-mb", "PRIVID_SHARD_MAP_SIZE_MB", PV_OPT_INT, offsetof(shard_config_t, map_size_mb), "4096", 16,
     1048576, "LMDB map size in MiB"},
    {"max-body", "PRIVID_SHARD_MAX_BODY", PV_OPT_INT, offsetof(shard_config_t, max_body), "1048576", 64,
     PV_SHARD_BODY_MAX, "largest request body in bytes (413 above)"},
    {"snapshot-on-exit", "PRIVID_SHARD_SNAPSHOT_ON_EXIT", PV_OPT_BOOL, offsetof(shard_config_t, snapshot_on_exit),
     "true", 0, 0, "write an index snapshot at shutdown so the next start skips the rebuild"},
    {"log-level", "PRIVID_LOG_LEVEL", PV_OPT_STRING, offsetof(shard_config_t, log_level), "info", 0, 0,
     "debug, info, warn, error or off"},
    {NULL, NULL, 0, 0, NULL, 0, 0, NULL},
};

typedef struct {
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_multithread_receiver_t receiver;
    pv_pool_t *pool;
    pv_gallery_t *gallery;
    uint32_t k;
    long max_body;
    int inflight; /* jobs submitted and not yet done (loop thread only) */
} server_t;

static server_t server;
static atomic_int stopping;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, 1);
}

/* ---- responses ---- */

static void send_body(h2o_req_t *req, int status, const char *reason, const char *type, const void *data, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = h2o_strdup(&req->pool, data, len);
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, 1);
}

static void send_json(h2o_req_t *req, int status, const char *reason, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text != NULL)
        send_body(req, status, reason, "application/json", text, strlen(text));
    else
        send_body(req, 500, "Internal Server Error", "application/json",
                  H2O_STRLIT("{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}"));
    free(text);
    json_decref(obj);
}

/* The one place PV_E* codes become statuses. `decoding`: the error is about
 * the request's bytes (PV_ELIMIT = too large: 413) rather than the gallery's
 * state (PV_ELIMIT = LMDB map full: 507). */
static void send_error(h2o_req_t *req, int err, int decoding, const char *message)
{
    int status;
    const char *reason;
    switch (err) {
    case PV_EFORMAT: status = 400, reason = "Bad Request"; break;
    case PV_EINVAL: status = 422, reason = "Unprocessable Entity"; break;
    case PV_ENOTFOUND: status = 404, reason = "Not Found"; break;
    case PV_EEXIST: status = 409, reason = "Conflict"; break;
    case PV_ELIMIT:
        status = decoding ? 413 : 507;
        reason = decoding ? "Payload Too Large" : "Insufficient Storage";
        break;
    case PV_EUNAVAIL:
        status = 503, reason = "Service Unavailable";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        break;
    default: status = 500, reason = "Internal Server Error"; break;
    }
    send_json(req, status, reason,
              json_pack("{s:{s:s,s:s}}", "error", "code", pv_errname(err), "message",
                        message && message[0] ? message : pv_strerror(err)));
}

/* ---- jobs: one gallery call on a worker thread ---- */

typedef struct job job_t;

typedef struct {
    job_t *job; /* cleared when the job is done first */
} guard_t;

struct job {
    pv_job_t super;
    h2o_req_t *req; /* NULL once the request is gone (loop thread only) */
    guard_t *guard;
    int type, json;
    /* inputs */
    uint64_t gid, owner;
    uint32_t k, nq;
    float quality;
    float *vecs;
    /* outputs */
    int ret;
    uint8_t *resp;
    size_t resp_len;
    pv_gallery_stat_t st;
};

static void job_free(job_t *j)
{
    free(j->vecs);
    free(j->resp);
    free(j);
}

static void on_guard_dispose(void *p)
{
    guard_t *g = p;
    if (g->job != NULL)
        g->job->req = NULL; /* the request went away while its job ran */
}

static void job_run(pv_job_t *pj)
{
    job_t *j = (job_t *)pj;
    pv_gallery_t *g = server.gallery;
    switch (j->type) {
    case PV_SHARD_SEARCH: {
        pv_gallery_hit_t *hits = malloc((size_t)j->nq * j->k * sizeof(*hits));
        j->resp_len = PV_SHARD_SEARCH_RESP_SIZE(j->nq, j->k);
        if (hits == NULL || (j->resp = malloc(j->resp_len)) == NULL)
            j->ret = PV_ENOMEM;
        else if ((j->ret = pv_gallery_search(g, hits, j->owner, j->nq, j->vecs, j->k)) == 0)
            pv_shard_encode_search_resp(j->resp, j->nq, j->k, hits);
        free(hits);
        break;
    }
    case PV_SHARD_ENROLL: {
        uint64_t gid;
        if ((j->ret = pv_gallery_enroll(g, &gid, j->gid, j->owner, j->vecs, j->quality)) == 0 &&
            (j->resp = malloc(PV_SHARD_GID_RESP_SIZE)) != NULL)
            j->resp_len = pv_shard_encode_gid_resp(j->resp, PV_SHARD_ENROLL, gid);
        break;
    }
    case PV_SHARD_ADD: {
        uint32_t slot;
        if ((j->ret = pv_gallery_add(g, &slot, j->gid, j->vecs, j->quality)) == 0 &&
            (j->resp = malloc(PV_SHARD_ADD_RESP_SIZE)) != NULL)
            j->resp_len = pv_shard_encode_add_resp(j->resp, j->gid, slot);
        break;
    }
    case PV_SHARD_REMOVE:
        if ((j->ret = pv_gallery_remove(g, j->gid)) == 0 && (j->resp = malloc(PV_SHARD_GID_RESP_SIZE)) != NULL)
            j->resp_len = pv_shard_encode_gid_resp(j->resp, PV_SHARD_REMOVE, j->gid);
        break;
    case PV_SHARD_STATS:
        if ((j->ret = pv_gallery_stat(g, &j->st)) == 0 && (j->resp = malloc(PV_SHARD_STATS_RESP_SIZE)) != NULL) {
            pv_shard_stats_t s = {.identities = j->st.identities,
                                  .exemplars = j->st.exemplars,
                                  .owners = j->st.owners,
                                  .seq = j->st.seq,
                                  .snapshot_seq = j->st.snapshot_seq,
                                  .lmdb_bytes = j->st.lmdb_bytes,
                                  .dim = PV_SHARD_DIM,
                                  .k = server.k,
                                  .shared_approx = (uint32_t)j->st.shared_approx};
            j->resp_len = pv_shard_encode_stats_resp(j->resp, &s);
        }
        break;
    }
    if (j->ret == 0 && j->resp == NULL)
        j->ret = PV_ENOMEM; /* committed, but the answer could not be built: the client sees a 500 */
}

static void job_done(pv_job_t *pj)
{
    job_t *j = (job_t *)pj;
    server.inflight--;
    if (j->req != NULL) {
        h2o_req_t *req = j->req;
        j->guard->job = NULL;
        if (j->ret != 0) {
            send_error(req, j->ret, 0, NULL);
        } else if (j->json) {
            const pv_gallery_stat_t *s = &j->st;
            send_json(req, 200, "OK",
                      json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:b,s:b}", "identities", (json_int_t)s->identities,
                                "exemplars", (json_int_t)s->exemplars, "owners", (json_int_t)s->owners, "seq",
                                (json_int_t)s->seq, "snapshot_seq", (json_int_t)s->snapshot_seq, "lmdb_bytes",
                                (json_int_t)s->lmdb_bytes, "dim", PV_SHARD_DIM, "k", (int)server.k, "approximate",
                                s->shared_approx, "opened_from_snapshot", s->opened_from_snapshot));
        } else {
            send_body(req, 200, "OK", PV_SHARD_CONTENT_TYPE, j->resp, j->resp_len);
        }
    }
    job_free(j);
}

/* Hands the job to a worker; answers 503 itself when the queue is full. */
static int submit(h2o_req_t *req, job_t *j)
{
    j->super.run = job_run;
    j->super.done = job_done;
    j->super.receiver = &server.receiver;
    j->req = req;
    j->guard = h2o_mem_alloc_shared(&req->pool, sizeof(guard_t), on_guard_dispose);
    j->guard->job = j;
    if (pv_pool_submit(server.pool, &j->super) != 0) {
        j->guard->job = NULL;
        job_free(j);
        send_error(req, PV_EUNAVAIL, 0, "the shard is busy: too many requests waiting");
        return 0;
    }
    server.inflight++;
    return 0;
}

/* ---- routes ---- */

static int is_path(h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

static int is_method(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int header_contains(h2o_req_t *req, const h2o_token_t *token, const char *needle)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    return h2o_strstr(v.base, v.len, needle, strlen(needle)) != SIZE_MAX;
}

/* Decodes a POST body of `type` into a job (vectors copied out of the
 * request pool, which a worker must not touch). */
static int handle_write_or_search(h2o_req_t *req, int type)
{
    char err[256] = "";
    const uint8_t *body = (const uint8_t *)req->entity.base;
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    if (!header_contains(req, H2O_TOKEN_CONTENT_TYPE, PV_SHARD_CONTENT_TYPE)) {
        send_json(req, 415, "Unsupported Media Type",
                  json_pack("{s:{s:s,s:s}}", "error", "code", "unsupported_media_type", "message",
                            "the body must be " PV_SHARD_CONTENT_TYPE));
        return 0;
    }
    if (len > (size_t)server.max_body) {
        snprintf(err, sizeof(err), "body of %zu bytes exceeds the limit of %ld", len, server.max_body);
        send_error(req, PV_ELIMIT, 1, err);
        return 0;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        send_error(req, PV_ENOMEM, 0, NULL);
        return 0;
    }
    j->type = type;
    const uint8_t *vecs = NULL;
    size_t nvec = 0;
    int ret = 0;
    switch (type) {
    case PV_SHARD_SEARCH: {
        pv_shard_search_req_t r;
        if ((ret = pv_shard_decode_search_req(&r, body, len, err, sizeof(err))) == 0) {
            j->owner = r.owner, j->k = r.k, j->nq = r.nq;
            vecs = r.vecs, nvec = r.nq;
        }
        break;
    }
    case PV_SHARD_ENROLL: {
        pv_shard_enroll_req_t r;
        if ((ret = pv_shard_decode_enroll_req(&r, body, len, err, sizeof(err))) == 0) {
            /* r.time_ms is not used: pv_gallery_enroll stamps its commit time */
            j->gid = r.gid, j->owner = r.owner, j->quality = r.quality;
            vecs = r.vec, nvec = 1;
        }
        break;
    }
    case PV_SHARD_ADD: {
        pv_shard_add_req_t r;
        if ((ret = pv_shard_decode_add_req(&r, body, len, err, sizeof(err))) == 0) {
            j->gid = r.gid, j->quality = r.quality;
            vecs = r.vec, nvec = 1;
        }
        break;
    }
    case PV_SHARD_REMOVE:
        ret = pv_shard_decode_remove_req(&j->gid, body, len, err, sizeof(err));
        break;
    }
    if (ret == 0 && nvec > 0) {
        if ((j->vecs = malloc(nvec * PV_SHARD_VEC_BYTES)) == NULL)
            ret = PV_ENOMEM;
        else
            pv_shard_read_floats(j->vecs, vecs, nvec * PV_SHARD_DIM);
    }
    if (ret != 0) {
        job_free(j);
        send_error(req, ret, 1, err);
        return 0;
    }
    return submit(req, j);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    static const struct {
        const char *path;
        int type;
    } posts[] = {{"/v1/shard/search", PV_SHARD_SEARCH},
                 {"/v1/shard/enroll", PV_SHARD_ENROLL},
                 {"/v1/shard/add", PV_SHARD_ADD},
                 {"/v1/shard/remove", PV_SHARD_REMOVE}};
    const char *allow = NULL;
    for (size_t i = 0; i < sizeof(posts) / sizeof(posts[0]); i++)
        if (is_path(req, posts[i].path)) {
            if (is_method(req, "POST"))
                return handle_write_or_search(req, posts[i].type);
            allow = "POST";
        }
    int get = is_method(req, "GET") || is_method(req, "HEAD");
    if (is_path(req, "/healthz")) {
        if (get) {
            send_json(req, 200, "OK", json_pack("{s:s}", "status", "ok"));
            return 0;
        }
        allow = "GET, HEAD";
    }
    if (is_path(req, "/v1/shard/stats")) {
        if (get) {
            job_t *j = calloc(1, sizeof(*j));
            if (j == NULL) {
                send_error(req, PV_ENOMEM, 0, NULL);
                return 0;
            }
            j->type = PV_SHARD_STATS;
            j->json = header_contains(req, H2O_TOKEN_ACCEPT, "application/json");
            return submit(req, j);
        }
        allow = "GET, HEAD";
    }
    if (allow != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
        send_json(req, 405, "Method Not Allowed",
                  json_pack("{s:{s:s,s:s+}}", "error", "code", "method_not_allowed", "message",
                            "this path only accepts ", allow));
        return 0;
    }
    send_json(req, 404, "Not Found", json_pack("{s:{s:s,s:s}}", "error", "code", "not_found", "message", "no such route"));
    return 0;
}

/* ---- listening ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    for (int i = 0; i < 64; i++) { /* bounded batch: one listener cannot starve the loop */
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&server.accept_ctx, sock);
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connections_open(h2o_context_t *ctx)
{
    return !h2o_linklist_is_empty(&ctx->http1._conns) || !h2o_linklist_is_empty(&ctx->http2._conns);
}

/* Serves until a signal; returns 0 after a clean stop. */
static int serve(const shard_config_t *conf)
{
    h2o_globalconf_t globalconf;
    h2o_socket_t *listeners[PV_CONFIG_LIST_MAX];
    int fds[PV_CONFIG_LIST_MAX], nfds = 0, ret = 0, ctx_ok = 0, clean = 1, lock_fd = -1;

    pv_gallery_config_t gcfg;
    pv_gallery_config_init(&gcfg);
    gcfg.dir = conf->data_dir;
    gcfg.dim = PV_SHARD_DIM;
    gcfg.k = (uint32_t)conf->k;
    gcfg.durable = conf->durable;
    gcfg.exact_max = (size_t)conf->exact_max;
    gcfg.ivf_nprobe = (uint32_t)conf->nprobe;
    gcfg.map_size = (size_t)conf->map_size_mb << 20;
    gcfg.snapshot_on_close = conf->snapshot_on_exit;
    server.k = gcfg.k;
    server.max_body = conf->max_body;

    h2o_config_init(&globalconf);
    /* up to twice the limit reaches the handler, which answers 413 in JSON;
     * beyond that h2o refuses by itself (plain-text 413) */
    globalconf.max_request_entity_size = (size_t)conf->max_body * 2;
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("privid-shard"));
    h2o_hostconf_t *host = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;

    if (mkdir(conf->data_dir, 0700) != 0 && errno != EEXIST) {
        ret = -errno;
        PV_LOG(PV_LOG_ERROR, "cannot create the data directory", "dir=\"%s\" err=\"%s\"", conf->data_dir,
               pv_strerror(ret));
        goto out;
    }
    /* one process per partition: a second one on the same directory would
     * keep its own index beside the first and answer from stale memory */
    char lockpath[4096];
    snprintf(lockpath, sizeof(lockpath), "%s/shard.lock", conf->data_dir);
    if ((lock_fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        ret = errno == EWOULDBLOCK ? PV_EUNAVAIL : -errno;
        PV_LOG(PV_LOG_ERROR, "cannot lock the data directory", "dir=\"%s\" err=\"%s\"", conf->data_dir,
               ret == PV_EUNAVAIL ? "another privid-shard serves it" : pv_strerror(ret));
        goto out;
    }
    int64_t t0 = now_ms();
    if ((ret = pv_gallery_open(&server.gallery, &gcfg)) != 0) {
        PV_LOG(PV_LOG_ERROR, "cannot open the gallery", "dir=\"%s\" err=\"%s\"", conf->data_dir, pv_strerror(ret));
        goto out;
    }
    pv_gallery_stat_t st;
    pv_gallery_stat(server.gallery, &st);
    PV_LOG(PV_LOG_INFO, "gallery open", "dir=\"%s\" identities=%llu exemplars=%llu from_snapshot=%d ms=%lld",
           conf->data_dir, (unsigned long long)st.identities, (unsigned long long)st.exemplars,
           st.opened_from_snapshot, (long long)(now_ms() - t0));
    if ((ret = pv_pool_create(&server.pool, (int)conf->workers, (int)conf->queue_max)) != 0)
        goto out;
    for (int i = 0; i < conf->listen.count; i++) {
        char bound[300];
        if ((ret = pv_net_listen(&fds[nfds], conf->listen.items[i], bound, sizeof(bound))) != 0) {
            PV_LOG(PV_LOG_ERROR, "cannot listen", "addr=\"%s\" err=\"%s\"", conf->listen.items[i],
                   ret == PV_EINVAL ? "expected HOST:PORT" : pv_strerror(ret));
            goto out;
        }
        nfds++;
        PV_LOG(PV_LOG_INFO, "listening", "addr=%s", bound);
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&server.ctx, loop, &globalconf);
    ctx_ok = 1;
    server.accept_ctx.ctx = &server.ctx;
    server.accept_ctx.hosts = globalconf.hosts;
    h2o_multithread_register_receiver(server.ctx.queue, &server.receiver, pv_pool_on_done);
    for (int i = 0; i < nfds; i++) {
        listeners[i] = h2o_evloop_socket_create(loop, fds[i], H2O_SOCKET_FLAG_DONT_READ);
        h2o_socket_read_start(listeners[i], on_accept);
    }
    PV_LOG(PV_LOG_INFO, "shard started", "workers=%ld k=%ld durable=%d", conf->workers, conf->k, conf->durable);
    while (!atomic_load(&stopping))
        h2o_evloop_run(loop, 200);

    /* stop accepting; let open requests and their jobs finish (bounded) */
    for (int i = 0; i < nfds; i++) {
        h2o_socket_read_stop(listeners[i]);
        h2o_socket_close(listeners[i]);
    }
    nfds = 0;
    h2o_context_request_shutdown(&server.ctx);
    int64_t start = now_ms();
    while ((server.inflight > 0 || connections_open(&server.ctx)) && now_ms() < start + DRAIN_MS)
        h2o_evloop_run(loop, 50);
    /* jobs still running are waited for: their results must reach the loop
     * before the receiver goes (a job cannot be cancelled mid-commit) */
    while (server.inflight > 0)
        h2o_evloop_run(loop, 50);
    /* the HTTP/2 graceful-shutdown timer must fire before the context goes (H2O.md) */
    while (now_ms() < start + 1100)
        h2o_evloop_run(loop, 50);
    clean = !connections_open(&server.ctx);
    PV_LOG(PV_LOG_INFO, "shard stopping", "clean=%d", clean);

out:
    pv_pool_destroy(server.pool);
    server.pool = NULL;
    if (ctx_ok) {
        h2o_multithread_unregister_receiver(server.ctx.queue, &server.receiver);
        /* a context with connections still open cannot be disposed safely; exiting releases them */
        if (clean) {
            h2o_evloop_t *loop = server.ctx.loop;
            h2o_context_dispose(&server.ctx);
            h2o_evloop_run(loop, 0); /* sockets closed by the disposal are freed on the next turn */
            h2o_evloop_destroy(loop);
        }
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    pv_gallery_close(server.gallery); /* writes the snapshot when configured */
    server.gallery = NULL;
    if (lock_fd >= 0)
        close(lock_fd); /* releases the lock, after the gallery is closed */
    h2o_config_dispose(&globalconf);
    if (ret == 0)
        PV_LOG(PV_LOG_INFO, "shard stopped", "%s", "");
    return ret;
}

int main(int argc, char **argv)
{
    shard_config_t conf;
    char err[512] = "";
    memset(&conf, 0, sizeof(conf));
    pv_crash_handler_install("privid-shard");
    int ret = pv_config_load(&conf, options, argc, argv, err, sizeof(err));
    if (ret == 1) {
        pv_config_usage(options, "privid-shard", "Serves one PrivID gallery partition over HTTP (binary protocol).");
        pv_config_dispose(&conf, options);
        return 0;
    }
    if (ret == 0 && pv_log_set_level(conf.log_level) != 0) {
        snprintf(err, sizeof(err), "--log-level must be debug, info, warn, error or off");
        ret = PV_EINVAL;
    }
    if (ret == 0 && conf.listen.count == 0) {
        snprintf(err, sizeof(err), "at least one --listen address is needed");
        ret = PV_EINVAL;
    }
    if (ret != 0) {
        fprintf(stderr, "privid-shard: %s\n", err[0] ? err : pv_strerror(ret));
        pv_config_dispose(&conf, options);
        return 2;
    }
    ret = serve(&conf);
    pv_config_dispose(&conf, options);
    return ret == 0 ? 0 : 1;
}
