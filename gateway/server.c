/*
 * Gateway process: binds every --listen address once, then runs N threads,
 * each with its own h2o evloop and context accepting on dup()s of the shared
 * listening sockets (plain HTTP, or HTTPS with one TLS context shared by all
 * TLS listeners). SIGINT/SIGTERM stop accepting, let in-flight requests
 * finish (bounded), then tear down in the order libh2o needs. SIGHUP re-reads
 * the certificate and key: new handshakes use the new context, connections
 * already open keep theirs. Open connections are capped (--max-connections).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/codec.h"
#include "common/net.h"
#include "models/models.h"
#include "common/error.h"
#include "common/log.h"
#include "gateway/h2guard.h"
#include "gateway/internal.h"
#include "gateway/metrics.h"
#include "gateway/tls.h"

#define DRAIN_MS 2000
#define H2_RESET_WINDOW_MS 10000

static atomic_int stopping, reload_requested;

typedef struct worker worker_t;

typedef struct {
    worker_t *w;
    h2o_socket_t *sock;
    int fd;
    int tls;
} listener_t;

struct worker {
    pv_gw_thread_t t; /* first: a request's ctx is its worker */
    pthread_t tid;
    h2o_accept_ctx_t accept_plain, accept_tls;
    unsigned tls_gen; /* the generation of accept_tls.ssl_ctx (one reference held) */
    listener_t listeners[PV_CONFIG_LIST_MAX];
    int nlisteners;
    pv_h2guard_t *h2guard;
    h2o_linklist_t conns; /* client connections open on this loop (conn_t) */
    h2o_globalconf_t *config;
    int ret;
};

/* A client connection, so shutdown can hang up on the ones that outstay the drain. */
typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
} conn_t;

/* The TLS context new handshakes use; replaced by a SIGHUP reload. */
static struct {
    pthread_mutex_t mu;
    SSL_CTX *ctx;    /* one reference held here; NULL without TLS */
    atomic_uint gen; /* bumped on each successful reload */
    const char *cert, *key;
} tls = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Open client connections across all loops, against --max-connections. */
static atomic_long open_conns, refused_conns;
static long max_conns;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        atomic_store(&reload_requested, 1);
    else
        atomic_store(&stopping, 1);
}

static void on_conn_close(void *data)
{
    conn_t *c = data;
    h2o_linklist_unlink(&c->link);
    free(c);
    atomic_fetch_sub(&open_conns, 1);
}

/*
 * Accepts a bounded batch so one busy listener cannot starve the loop. Past
 * --max-connections a new connection is closed at once (the client sees the
 * close instead of waiting in the kernel's backlog) and counted.
 */
static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    listener_t *l = listener->data;
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        if (atomic_fetch_add(&open_conns, 1) >= max_conns) {
            atomic_fetch_sub(&open_conns, 1);
            if (atomic_fetch_add(&refused_conns, 1) % 1000 == 0)
                PV_LOG(PV_LOG_WARN, "connection limit reached: closing new connections",
                       "max_connections=%ld", max_conns);
            h2o_socket_close(sock);
            continue;
        }
        conn_t *c = malloc(sizeof(*c));
        if (c == NULL) {
            atomic_fetch_sub(&open_conns, 1);
            h2o_socket_close(sock);
            continue;
        }
        c->sock = sock;
        h2o_linklist_insert(&l->w->conns, &c->link);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(l->tls ? &l->w->accept_tls : &l->w->accept_plain, sock);
    }
}

/* Worker 0, after a SIGHUP: a new context from the files, or the old one kept (and an error logged). */
static void tls_reload(void)
{
    SSL_CTX *ctx;
    char err[512], fp[65] = "";
    if (tls.ctx == NULL) {
        PV_LOG(PV_LOG_INFO, "SIGHUP: no TLS configured, nothing to reload", "%s", "");
        return;
    }
    int ret = pv_tls_ctx_create(&ctx, tls.cert, tls.key, err, sizeof(err));
    if (ret != 0) {
        PV_LOG(PV_LOG_ERROR, "TLS reload failed; the current certificate stays in use", "err=\"%s\"", err);
        return;
    }
    pv_tls_fingerprint(fp, ctx);
    pthread_mutex_lock(&tls.mu);
    SSL_CTX *old = tls.ctx;
    tls.ctx = ctx;
    atomic_fetch_add(&tls.gen, 1);
    pthread_mutex_unlock(&tls.mu);
    SSL_CTX_free(old); /* connections and loops still using it hold their own references */
    PV_LOG(PV_LOG_INFO, "TLS certificate reloaded", "cert=\"%s\" sha256=%s", tls.cert, fp);
}

/* Each loop: take the current context for the next handshakes. */
static void tls_adopt(worker_t *w)
{
    pthread_mutex_lock(&tls.mu);
    SSL_CTX *ctx = tls.ctx;
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    w->tls_gen = atomic_load(&tls.gen);
    pthread_mutex_unlock(&tls.mu);
    SSL_CTX_free(w->accept_tls.ssl_ctx);
    w->accept_tls.ssl_ctx = ctx;
}

/* A handler that declines every request after the HTTP/2 guard has started tracking it. */
static int track_request(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    pv_h2guard_track(((worker_t *)req->conn->ctx)->h2guard, req);
    return -1;
}

static int connections_open(h2o_context_t *ctx)
{
    return !h2o_linklist_is_empty(&ctx->http1._conns) || !h2o_linklist_is_empty(&ctx->http2._conns);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A loop's libh2o state is made and disposed of on the loop's own thread, as
 * libh2o's own server does: a socket's input buffer recycles through a
 * thread-local allocator chosen when the socket is created (the prototype
 * h2o_socket_buffer_prototype is __thread). The pipe socket behind a
 * context's message queues, created on another thread, would push and pop
 * that thread's allocator from this one, unlocked: the heap corruption that
 * killed the gateway under load (free(): invalid pointer in libh2o).
 */
static void loop_init(worker_t *w)
{
    h2o_context_init(&w->t.super, h2o_evloop_create(), w->config);
    w->t.queue = h2o_multithread_create_queue(w->t.super.loop);
    h2o_multithread_register_receiver(w->t.queue, &w->t.receiver, pv_pool_on_done);
}

static void loop_dispose(worker_t *w)
{
    h2o_evloop_t *loop = w->t.super.loop;
    h2o_multithread_unregister_receiver(w->t.queue, &w->t.receiver);
    h2o_multithread_destroy_queue(w->t.queue);
    w->t.queue = NULL;
    /* a context with connections still open cannot be disposed safely; exiting releases them */
    if (w->ret != 0)
        return;
    pv_h2guard_destroy(w->h2guard); /* no connection is left to dispose a tracked request */
    w->h2guard = NULL;
    h2o_context_dispose(&w->t.super);
    /* sockets closed by the disposal are freed on the loop's next turn */
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    loop_init(w);
    h2o_evloop_t *loop = w->t.super.loop;
    for (int i = 0; i < w->nlisteners; i++) {
        listener_t *l = &w->listeners[i];
        l->sock = h2o_evloop_socket_create(loop, l->fd, H2O_SOCKET_FLAG_DONT_READ);
        l->sock->data = l;
        h2o_socket_read_start(l->sock, on_accept);
    }
    while (!atomic_load(&stopping)) {
        h2o_evloop_run(loop, 200);
        if (w->t.index == 0 && atomic_exchange(&reload_requested, 0))
            tls_reload();
        if (w->accept_tls.ssl_ctx != NULL && atomic_load(&tls.gen) != w->tls_gen)
            tls_adopt(w);
    }

    /* stop accepting, then give open connections a bounded time to finish */
    for (int i = 0; i < w->nlisteners; i++) {
        h2o_socket_read_stop(w->listeners[i].sock);
        h2o_socket_close(w->listeners[i].sock);
        w->listeners[i].sock = NULL;
    }
    h2o_context_request_shutdown(&w->t.super);
    int64_t deadline = now_ms() + DRAIN_MS;
    while ((connections_open(&w->t.super) || w->t.inflight > 0) && now_ms() < deadline)
        h2o_evloop_run(loop, 50);
    /* jobs still running answer nobody, but their memory must come home */
    while (w->t.inflight > 0 && now_ms() < deadline + 30000)
        h2o_evloop_run(loop, 50);
    /* connections still open (idle keep-alive, HTTP/2 that ignores GOAWAY): hang up on them;
     * libh2o then reads EOF and closes each itself, so nothing is freed under its feet */
    for (h2o_linklist_t *n = w->conns.next; n != &w->conns; n = n->next) {
        int fd = h2o_socket_get_fd(H2O_STRUCT_FROM_MEMBER(conn_t, link, n)->sock);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
    /* the HTTP/2 graceful-shutdown timer must fire before the context goes (H2O.md) */
    int64_t settle = now_ms() + 1100;
    while (now_ms() < settle)
        h2o_evloop_run(loop, 50);
    w->ret = connections_open(&w->t.super) ? 1 : 0;
    loop_dispose(w);
    return NULL;
}

const pv_opt_t pv_gateway_options[] = {
    {"listen", "PRIVID_LISTEN", PV_OPT_LIST, offsetof(pv_gateway_config_t, listen), "127.0.0.1:8080", 0, 0,
     "HOST:PORT to serve on (repeatable; port 0 picks a free port)"},
    {"threads", "PRIVID_THREADS", PV_OPT_INT, offsetof(pv_gateway_config_t, threads), "0", 0, 256,
     "event-loop threads (0 = one per core)"},
    {"data-dir", "PRIVID_DATA_DIR", PV_OPT_STRING, offsetof(pv_gateway_config_t, data_dir), "./var/data", 0,
     0, "LMDB data directory"},
    {"pg", "PRIVID_PG", PV_OPT_STRING, offsetof(pv_gateway_config_t, pg), NULL, 0, 0,
     "PostgreSQL connection string (libpq); empty = no analytics database"},
    {"log-level", "PRIVID_LOG_LEVEL", PV_OPT_STRING, offsetof(pv_gateway_config_t, log_level), "info", 0, 0,
     "debug, info, warn, error or off"},
    {"max-body", "PRIVID_MAX_BODY", PV_OPT_INT, offsetof(pv_gateway_config_t, max_body), "16777216", 1024,
     1073741824, "largest request body in bytes (413 above)"},
    {"pg-check-ms", "PRIVID_PG_CHECK_MS", PV_OPT_INT, offsetof(pv_gateway_config_t, pg_check_ms), "1000", 50,
     60000, "how often readiness checks PostgreSQL"},
    {"models", "PRIVID_MODELS", PV_OPT_STRING, offsetof(pv_gateway_config_t, models), NULL, 0, 0,
     "face-api package folder (holding model/); default: the one deploy/setup.sh fetched; 'off' disables "
     "recognition"},
    {"workers", "PRIVID_WORKERS", PV_OPT_INT, offsetof(pv_gateway_config_t, workers), "0", 0, 256,
     "inference worker threads (0 = one per core)"},
    {"queue-max", "PRIVID_QUEUE_MAX", PV_OPT_INT, offsetof(pv_gateway_config_t, queue_max), "64", 1, 100000,
     "images waiting for a worker before new ones get 503"},
    {"max-pixels", "PRIVID_MAX_PIXELS", PV_OPT_INT, offsetof(pv_gateway_config_t, max_pixels), "40000000", 64,
     400000000, "largest image (declared width x height) accepted"},
    {"gallery-dir", "PRIVID_GALLERY_DIR", PV_OPT_STRING, offsetof(pv_gateway_config_t, gallery_dir), NULL, 0,
     0, "identity gallery directory for in-process shards (default: <data-dir>/gallery)"},
    {"shard", "PRIVID_SHARDS", PV_OPT_LIST, offsetof(pv_gateway_config_t, shards), NULL, 0, 0,
     "URL of a remote privid-shard (repeatable, in shard order; none = in-process shards)"},
    {"local-shards", "PRIVID_LOCAL_SHARDS", PV_OPT_INT, offsetof(pv_gateway_config_t, local_shards), "1", 1,
     64, "in-process gallery partitions (fixed once identities are enrolled)"},
    {"shard-timeout-ms", "PRIVID_SHARD_TIMEOUT_MS", PV_OPT_INT,
     offsetof(pv_gateway_config_t, shard_timeout_ms), "1000", 10, 60000,
     "per-call timeout to a remote shard (then the answer is degraded)"},
    {"auth-fail-max", "PRIVID_AUTH_FAIL_MAX", PV_OPT_INT, offsetof(pv_gateway_config_t, auth_fail_max), "20",
     0, 1000000, "failed authentications a client address may make before it gets 429 (0 = no limit)"},
    {"auth-fail-rate", "PRIVID_AUTH_FAIL_RATE", PV_OPT_INT, offsetof(pv_gateway_config_t, auth_fail_per_min),
     "10", 1, 1000000, "failed authentications per minute a client address gets back after that"},
    {"tls-cert", "PRIVID_TLS_CERT", PV_OPT_STRING, offsetof(pv_gateway_config_t, tls_cert), NULL, 0, 0,
     "PEM certificate chain; with --tls-key every HOST:PORT listener serves HTTPS (SIGHUP re-reads both)"},
    {"tls-key", "PRIVID_TLS_KEY", PV_OPT_STRING, offsetof(pv_gateway_config_t, tls_key), NULL, 0, 0,
     "PEM private key for --tls-cert"},
    {"max-connections", "PRIVID_MAX_CONNECTIONS", PV_OPT_INT, offsetof(pv_gateway_config_t, max_connections),
     "4096", 1, 1000000, "open client connections (all listeners); further ones are closed at once"},
    {"request-timeout-ms", "PRIVID_REQUEST_TIMEOUT_MS", PV_OPT_INT,
     offsetof(pv_gateway_config_t, request_timeout_ms), "10000", 100, 3600000,
     "HTTP/1: time to receive a whole request (headers and body) or to wait for the next one; also the TLS "
     "handshake"},
    {"idle-timeout-ms", "PRIVID_IDLE_TIMEOUT_MS", PV_OPT_INT, offsetof(pv_gateway_config_t, idle_timeout_ms),
     "10000", 100, 3600000,
     "HTTP/2: a connection with no request in progress that sends nothing is closed after this"},
    {"h2-max-concurrent", "PRIVID_H2_MAX_CONCURRENT", PV_OPT_INT,
     offsetof(pv_gateway_config_t, h2_max_concurrent), "16", 1, 100,
     "HTTP/2 requests one connection runs at once (further streams wait)"},
    {"h2-reset-limit", "PRIVID_H2_RESET_LIMIT", PV_OPT_INT, offsetof(pv_gateway_config_t, h2_reset_limit),
     "200", 0, 1000000,
     "HTTP/2 requests a connection may cancel within 10 s before it gets GOAWAY (0 = no limit)"},
    {"queue-timeout-ms", "PRIVID_QUEUE_TIMEOUT_MS", PV_OPT_INT,
     offsetof(pv_gateway_config_t, queue_timeout_ms), "5000", 0, 600000,
     "a job that waited longer for a worker is answered 503 instead of run (0 = never)"},
    {"forget-ms", "PRIVID_FORGET_MS", PV_OPT_INT, offsetof(pv_gateway_config_t, forget_ms), "1000", 50,
     3600000, "how often identities erased or expired elsewhere (privid-admin) leave the gallery"},
    {"retention-sweep-ms", "PRIVID_RETENTION_SWEEP_MS", PV_OPT_INT,
     offsetof(pv_gateway_config_t, retention_sweep_ms), "3600000", 0, 86400000,
     "how often visitors unseen for their tenant's retention period are forgotten (0 = never)"},
    {"console-dir", "PRIVID_CONSOLE_DIR", PV_OPT_STRING, offsetof(pv_gateway_config_t, console_dir), NULL, 0,
     0,
     "the built web console served at / (default: <bin>/../console, which deploy/setup.sh builds; 'off' = "
     "none)"},
    {NULL, NULL, 0, 0, NULL, 0, 0, NULL},
};

static double conns_open(void *arg)
{
    (void)arg;
    return (double)atomic_load(&open_conns);
}

static double conns_refused(void *arg)
{
    (void)arg;
    return (double)atomic_load(&refused_conns);
}

static double h2_cancelled(void *arg)
{
    (void)arg;
    return (double)pv_h2guard_cancelled();
}

static double h2_closed(void *arg)
{
    (void)arg;
    return (double)pv_h2guard_closed();
}

/*
 * One listen address: "https://HOST:PORT" (TLS; needs --tls-cert), "http://HOST:PORT"
 * (plain) or "HOST:PORT" (TLS when a certificate is configured, else plain).
 */
static int listen_one(int *fd, int *is_tls, const char *spec, int have_tls)
{
    char bound[300];
    const char *addr = spec;
    *is_tls = have_tls;
    if (strncmp(spec, "https://", 8) == 0) {
        addr = spec + 8;
        *is_tls = 1;
    } else if (strncmp(spec, "http://", 7) == 0) {
        addr = spec + 7;
        *is_tls = 0;
    }
    if (*is_tls && !have_tls) {
        PV_LOG(PV_LOG_ERROR, "cannot listen", "addr=\"%s\" err=\"https needs --tls-cert and --tls-key\"",
               spec);
        return PV_EINVAL;
    }
    int ret = pv_net_listen(fd, addr, bound, sizeof(bound));
    if (ret != 0) {
        PV_LOG(PV_LOG_ERROR, "cannot listen", "addr=\"%s\" err=\"%s\"", spec,
               ret == PV_EINVAL ? "expected HOST:PORT, http://HOST:PORT or https://HOST:PORT"
                                : pv_strerror(ret));
        return ret;
    }
    PV_LOG(PV_LOG_INFO, "listening", "addr=%s url=%s://%s/", bound, *is_tls ? "https" : "http", bound);
    return 0;
}

static double queue_depth(void *arg)
{
    return (double)pv_pool_depth(arg);
}

/* The face engine, one context per worker, the pool and the gallery. */
static int start_recognition(pv_gw_t *gw, const pv_gateway_config_t *conf, int nworkers)
{
    char dir[4200], exe[4096], msg[256] = "";
    int ret;
    const char *root = conf->models;
    if (root != NULL && strcmp(root, "off") == 0) {
        PV_LOG(PV_LOG_WARN, "recognition disabled", "%s", "models=off");
        return 0;
    }
    if (root == NULL || root[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(dir, sizeof(dir), "%s/../models/face-api-1.7.15/model", exe);
    } else {
        snprintf(dir, sizeof(dir), "%s/model", root);
    }
    if ((ret = pv_face_engine_load(&gw->engine, dir, msg, sizeof(msg))) != 0) {
        PV_LOG(PV_LOG_ERROR, "cannot load the face networks",
               "dir=\"%s\" err=\"%s\" hint=\"run deploy/setup.sh or set "
               "--models (or --models off)\"",
               dir, msg[0] ? msg : pv_strerror(ret));
        return ret;
    }
    if ((gw->ctx = calloc((size_t)nworkers, sizeof(*gw->ctx))) == NULL)
        return PV_ENOMEM;
    pthread_mutex_init(&gw->ctx_mu, NULL);
    for (int i = 0; i < nworkers; i++) {
        if ((ret = pv_face_ctx_create(&gw->ctx[i], gw->engine)) != 0)
            return ret;
        gw->nctx++;
    }
    pv_match_config_init(&gw->match);
    char gdir[4096];
    if (conf->gallery_dir != NULL && conf->gallery_dir[0] != '\0')
        snprintf(gdir, sizeof(gdir), "%s", conf->gallery_dir);
    else
        snprintf(gdir, sizeof(gdir), "%s/gallery", conf->data_dir);
    if (mkdir(gdir, 0700) != 0 && errno != EEXIST) {
        ret = -errno;
        PV_LOG(PV_LOG_ERROR, "cannot create the gallery directory", "dir=\"%s\" err=%s", gdir,
               pv_strerror(ret));
        return ret;
    }
    if (conf->shards.count > 0) {
        pv_shards_remote_config_t rc = {.urls = (const char *const *)conf->shards.items,
                                        .count = (uint32_t)conf->shards.count,
                                        .timeout_ms = (int)conf->shard_timeout_ms,
                                        .down_ms =
                                            500 /* a timed-out shard is skipped, not waited for, 0.5 s */};
        if ((ret = pv_shards_open_remote(&gw->shards, &rc)) != 0) {
            PV_LOG(PV_LOG_ERROR, "bad remote shard list",
                   "err=%s expected=\"http://HOST:PORT for each --shard\"", pv_strerror(ret));
            return ret;
        }
        snprintf(gdir, sizeof(gdir), "%d remote shards", conf->shards.count);
    } else {
        pv_gallery_config_t gc;
        pv_gallery_config_init(&gc);
        gc.snapshot_on_close = 1;
        if ((ret = pv_shards_open_local(&gw->shards, gdir, (uint32_t)conf->local_shards, &gc)) != 0) {
            PV_LOG(PV_LOG_ERROR, "cannot open the identity gallery", "dir=\"%s\" err=%s", gdir,
                   pv_strerror(ret));
            return ret;
        }
    }
    if ((ret = pv_pool_create(&gw->pool, nworkers, (int)conf->queue_max)) != 0)
        return ret;
    pv_metrics_gauge("privid_queue_depth", "Images waiting for an inference worker.", queue_depth, gw->pool);
    if ((ret = pv_gw_upkeep_start(&gw->upkeep, gw, (int)conf->forget_ms, (int)conf->retention_sweep_ms)) != 0)
        return ret;
    PV_LOG(PV_LOG_INFO, "recognition ready", "models=\"%s\" workers=%d gallery=\"%s\" blas=%s", dir, nworkers,
           gdir, pv_models_blas_core());
    return 0;
}

static void stop_recognition(pv_gw_t *gw)
{
    pv_gw_upkeep_stop(gw->upkeep); /* before the gallery it works on */
    gw->upkeep = NULL;
    pv_pool_destroy(gw->pool);
    gw->pool = NULL;
    pv_shards_close(gw->shards);
    gw->shards = NULL;
    for (int i = 0; i < gw->nctx; i++)
        pv_face_ctx_free(gw->ctx[i]);
    free(gw->ctx);
    gw->ctx = NULL;
    gw->nctx = 0;
    pv_face_engine_free(gw->engine);
    gw->engine = NULL;
}

static double outbox_depth(void *w)
{
    return (double)pv_writer_depth(w);
}

static double outbox_age(void *w)
{
    return (double)pv_writer_oldest_age_ms(w) / 1000.0;
}

static double outbox_delivered(void *w)
{
    return (double)pv_writer_delivered(w);
}

static double rollup_applied(void *w)
{
    return (double)pv_writer_rolled_up(w);
}

static double outbox_last_delivery(void *w)
{
    return (double)pv_writer_last_delivery_ms(w) / 1000.0;
}

/* The analytics writer drains the outbox to PostgreSQL; its gauges go to /metrics. */
static int start_writer(pv_gw_t *gw, const char *dsn)
{
    pv_writer_conf_t wc = {.dsn = dsn};
    int ret = pv_writer_start(&gw->writer, gw->tenants, &wc);
    if (ret != 0) {
        PV_LOG(PV_LOG_ERROR, "cannot start the analytics writer", "err=%s", pv_strerror(ret));
        return ret;
    }
    pv_metrics_gauge("privid_outbox_depth", "Analytics events waiting in the LMDB outbox.", outbox_depth,
                     gw->writer);
    pv_metrics_gauge("privid_outbox_oldest_age_seconds", "Age of the oldest event waiting in the outbox.",
                     outbox_age, gw->writer);
    pv_metrics_gauge("privid_outbox_delivered", "Events committed to PostgreSQL since start.",
                     outbox_delivered, gw->writer);
    pv_metrics_gauge("privid_outbox_last_delivery_seconds", "Unix time of the last commit to PostgreSQL.",
                     outbox_last_delivery, gw->writer);
    pv_metrics_gauge("privid_rollup_applied", "Delivered visits applied to the reports' roll-up since start.",
                     rollup_applied, gw->writer);
    return 0;
}

int pv_gateway_run(const pv_gateway_config_t *conf)
{
    int ret = 0, nthreads = (int)conf->threads, fds[PV_CONFIG_LIST_MAX], fd_tls[PV_CONFIG_LIST_MAX], nfds = 0,
        started = 0;
    pv_gw_t gw = {.conf = conf};
    h2o_globalconf_t globalconf;
    worker_t *workers = NULL;
    uint8_t rnd[4];

    if (nthreads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = n > 0 ? (int)n : 1;
    }
    if (pv_random_bytes(rnd, sizeof(rnd)) != 0)
        return PV_EUNAVAIL;
    pv_hex_encode(gw.id_prefix, rnd, sizeof(rnd));

    pv_routes_init();
    h2o_config_init(&globalconf);
    globalconf.max_request_entity_size = (size_t)conf->max_body;
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("privid"));
    globalconf.http1.req_timeout = (uint64_t)conf->request_timeout_ms;
    globalconf.handshake_timeout = (uint64_t)conf->request_timeout_ms;
    globalconf.http2.idle_timeout = (uint64_t)conf->idle_timeout_ms;
    globalconf.http2.max_concurrent_requests_per_connection = (size_t)conf->h2_max_concurrent;
    h2o_hostconf_t *host =
        h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *tracker = h2o_create_handler(path, sizeof(*tracker));
    tracker->on_req = track_request; /* runs first and declines */
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = pv_routes_handle;
    max_conns = conf->max_connections;
    pv_metrics_gauge("privid_connections_open", "Client connections open now.", conns_open, NULL);
    pv_metrics_gauge("privid_connections_refused_total",
                     "Connections closed at once because --max-connections were open.", conns_refused, NULL);
    pv_metrics_gauge("privid_http2_cancelled_total",
                     "HTTP/2 requests whose stream closed before any of the answer was sent.", h2_cancelled,
                     NULL);
    pv_metrics_gauge("privid_http2_goaway_total",
                     "HTTP/2 connections sent GOAWAY for cancelling too many streams.", h2_closed, NULL);

    int have_cert = conf->tls_cert != NULL && conf->tls_cert[0] != '\0';
    int have_key = conf->tls_key != NULL && conf->tls_key[0] != '\0';
    if (have_cert != have_key) {
        PV_LOG(PV_LOG_ERROR, "incomplete TLS configuration", "err=\"--tls-cert and --tls-key go together\"");
        ret = PV_EINVAL;
        goto out;
    }
    if (have_cert) {
        char err[512], fp[65] = "";
        if ((ret = pv_tls_ctx_create(&tls.ctx, conf->tls_cert, conf->tls_key, err, sizeof(err))) != 0) {
            PV_LOG(PV_LOG_ERROR, "cannot set up TLS", "err=\"%s\"", err);
            goto out;
        }
        tls.cert = conf->tls_cert;
        tls.key = conf->tls_key;
        pv_tls_fingerprint(fp, tls.ctx);
        PV_LOG(PV_LOG_INFO, "TLS certificate loaded", "cert=\"%s\" sha256=%s", tls.cert, fp);
    }

    if ((ret = pv_tenants_open(&gw.tenants, conf->data_dir)) != 0) {
        PV_LOG(PV_LOG_ERROR, "cannot open the tenants store", "dir=\"%s\" err=%s", conf->data_dir,
               pv_strerror(ret));
        goto out;
    }
    if (conf->pg != NULL && conf->pg[0] != '\0' &&
        (ret = pv_pgmon_start(&gw.pgmon, conf->pg, (int)conf->pg_check_ms)) != 0)
        goto out;
    if (conf->pg != NULL && conf->pg[0] != '\0' && (ret = start_writer(&gw, conf->pg)) != 0)
        goto out;
    int nworkers = (int)conf->workers;
    if (nworkers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nworkers = n > 0 ? (int)n : 1;
    }
    if ((ret = pv_ratelimit_create(&gw.ratelimit, 65536)) != 0)
        goto out;
    if (conf->auth_fail_max > 0 && (ret = pv_ratelimit_create(&gw.auth_failures, 65536)) != 0)
        goto out;
    if ((ret = start_recognition(&gw, conf, nworkers)) != 0)
        goto out;
    /* with --models off there is no inference, but events and reports still run as jobs */
    if (gw.pool == NULL && (ret = pv_pool_create(&gw.pool, nworkers, (int)conf->queue_max)) != 0)
        goto out;
    /* one report connection per worker at most: reports run as jobs on the pool */
    if (conf->pg != NULL && conf->pg[0] != '\0' &&
        (ret = pv_reports_create(&gw.reports, conf->pg, nworkers)) != 0)
        goto out;

    for (int i = 0; i < conf->listen.count; i++) {
        if ((ret = listen_one(&fds[nfds], &fd_tls[nfds], conf->listen.items[i], tls.ctx != NULL)) != 0)
            goto out;
        nfds++;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if ((workers = calloc((size_t)nthreads, sizeof(*workers))) == NULL) {
        ret = PV_ENOMEM;
        goto out;
    }
    for (int i = 0; i < nthreads; i++) {
        worker_t *w = &workers[i];
        h2o_linklist_init_anchor(&w->conns);
        w->config = &globalconf;
        w->t.gw = &gw;
        w->t.index = i;
        w->accept_plain.ctx = w->accept_tls.ctx = &w->t.super;
        w->accept_plain.hosts = w->accept_tls.hosts = globalconf.hosts;
        tls_adopt(w);
        if ((ret = pv_h2guard_create(&w->h2guard, &w->t.super, (int)conf->h2_reset_limit,
                                     H2_RESET_WINDOW_MS)) != 0)
            goto out;
        if ((ret = pv_tenants_reader_create(&w->t.reader, gw.tenants)) != 0)
            goto out;
        for (int j = 0; j < nfds; j++) {
            listener_t *l = &w->listeners[w->nlisteners++];
            l->w = w;
            l->fd = i == 0 ? fds[j] : dup(fds[j]);
            l->tls = fd_tls[j];
        }
        started++;
    }
    nfds = 0; /* the workers own the descriptors now */
    PV_LOG(PV_LOG_INFO, "gateway started", "threads=%d data_dir=\"%s\" postgres=%s", nthreads, conf->data_dir,
           gw.pgmon ? "configured" : "disabled");
    for (int i = 1; i < nthreads; i++)
        pthread_create(&workers[i].tid, NULL, worker_main, &workers[i]);
    worker_main(&workers[0]);
    for (int i = 1; i < nthreads; i++)
        pthread_join(workers[i].tid, NULL);
    PV_LOG(PV_LOG_INFO, "gateway stopped", "%s", "");

out:
    for (int i = 0; i < started; i++) {
        worker_t *w = &workers[i];
        pv_tenants_reader_destroy(w->t.reader);
        /* the loop is gone (worker_main) unless connections outstayed it; a worker that never ran has none */
        if (w->ret == 0) {
            pv_h2guard_destroy(w->h2guard);
            SSL_CTX_free(w->accept_tls.ssl_ctx);
        }
    }
    SSL_CTX_free(tls.ctx);
    tls.ctx = NULL;
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    free(workers);
    stop_recognition(&gw);
    pv_reports_destroy(gw.reports); /* after the workers (which own its connections) have exited */
    pv_ratelimit_destroy(gw.ratelimit);
    pv_ratelimit_destroy(gw.auth_failures);
    /* after the loops and workers: nothing appends any more; undelivered events stay in LMDB */
    pv_writer_stop(gw.writer);
    pv_pgmon_stop(gw.pgmon);
    pv_tenants_close(gw.tenants);
    h2o_config_dispose(&globalconf);
    return ret;
}
