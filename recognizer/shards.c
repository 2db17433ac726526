/*
 * The shard client (see shards.h). Both implementations share routing
 * (jump hash), input checks, the merge of per-shard answers and the
 * counters; they differ only in how one shard is asked.
 *
 * Remote shards: each call builds its HTTP/1.1 request(s) once and drives one
 * exchange per shard on non-blocking sockets with poll(), so a search asks
 * every shard at the same time and waits at most timeout_ms in all. Each
 * shard keeps a small stack of idle keep-alive connections (mutex guarded);
 * a reused connection that turns out closed before any answer byte arrived
 * (the server's idle timeout raced us) is retried once on a fresh one. A
 * transport failure or timeout marks the shard down for down_ms, so a dead
 * shard costs one refused connect, not a timeout per call.
 */
#include "recognizer/shards.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/error.h"

#define HEAD_MAX 8192                           /* response status line + headers */
#define RESP_MAX (PV_SHARD_BODY_MAX + HEAD_MAX) /* a shard's whole answer */
#define ERROR_BODY_MAX 4096
#define ENROLL_RANDOM_TRIES 4

int32_t pv_jump_hash(uint64_t key, int32_t buckets)
{
    /* Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm":
     * a pseudo-random walk over bucket counts where the key jumps forward;
     * the last jump below `buckets` is its bucket. */
    int64_t b = -1, j = 0;
    while (j < buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
    }
    return (int32_t)b;
}

typedef struct {
    char hostport[300]; /* Host header */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    pthread_mutex_t mu;
    int *idle; /* idle keep-alive connections (a stack) */
    int nidle;
    _Atomic int64_t down_until; /* monotonic ms; 0 = up */
} remote_t;

struct pv_shards {
    uint32_t count;
    pv_gallery_t **local; /* count partitions, or NULL */
    uint32_t local_k;
    remote_t *remote; /* count shards, or NULL */
    int timeout_ms, down_ms, idle_max;
    _Atomic uint64_t searches, degraded, failures, unavailable;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- remote: one HTTP exchange with one shard ---- */

enum { X_CONNECT, X_SEND, X_RECV, X_DONE, X_FAIL };

typedef struct {
    remote_t *r;
    char head[512];
    size_t head_len;
    const uint8_t *body;
    size_t body_len, sent;
    int fd, reused, state;
    int skipped; /* not tried: the shard was marked down */
    uint8_t *buf;
    size_t len, cap;
    size_t body_off; /* 0 until the response headers are parsed */
    size_t clen;
    int status, keep;
} xfer_t;

static void xfer_init(xfer_t *x, remote_t *r, const char *method, const char *path, const uint8_t *body,
                      size_t body_len)
{
    memset(x, 0, sizeof(*x));
    x->r = r;
    x->fd = -1;
    x->body = body;
    x->body_len = body_len;
    if (body != NULL)
        x->head_len = (size_t)snprintf(x->head, sizeof(x->head),
                                       "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: " PV_SHARD_CONTENT_TYPE
                                       "\r\nContent-Length: %zu\r\n\r\n",
                                       method, path, r->hostport, body_len);
    else
        x->head_len = (size_t)snprintf(x->head, sizeof(x->head), "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path,
                                       r->hostport);
}

static void xfer_fail(xfer_t *x)
{
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
    x->state = X_FAIL;
}

/* Starts (or restarts) the exchange: a pooled connection when one is idle
 * and `fresh` is 0, else a new non-blocking connect. */
static void xfer_start(xfer_t *x, int fresh)
{
    remote_t *r = x->r;
    x->sent = x->len = x->body_off = x->clen = 0;
    x->reused = 0;
    x->fd = -1;
    if (!fresh) {
        pthread_mutex_lock(&r->mu);
        if (r->nidle > 0)
            x->fd = r->idle[--r->nidle];
        pthread_mutex_unlock(&r->mu);
    }
    if (x->fd >= 0) {
        x->reused = 1;
        x->state = X_SEND;
        return;
    }
    int one = 1;
    x->fd = socket(r->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (x->fd < 0) {
        x->state = X_FAIL;
        return;
    }
    setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(x->fd, (struct sockaddr *)&r->addr, r->addrlen) == 0)
        x->state = X_SEND;
    else if (errno == EINPROGRESS)
        x->state = X_CONNECT;
    else
        xfer_fail(x);
}

/* A reused connection that died before any answer byte: the server closed it
 * while idle; the request was not processed, so one fresh retry is safe. */
static void xfer_stale_or_fail(xfer_t *x)
{
    if (x->reused && x->len == 0) {
        close(x->fd);
        xfer_start(x, 1);
    } else {
        xfer_fail(x);
    }
}

/* Parses the status line and headers once "\r\n\r\n" is in the buffer.
 * Returns 1 when parsed, 0 when more bytes are needed, -1 on a bad answer. */
static int parse_head(xfer_t *x)
{
    const uint8_t *end = NULL;
    for (size_t i = 3; i < x->len; i++)
        if (x->buf[i] == '\n' && x->buf[i - 1] == '\r' && x->buf[i - 2] == '\n' && x->buf[i - 3] == '\r') {
            end = x->buf + i + 1;
            break;
        }
    if (end == NULL)
        return x->len > HEAD_MAX ? -1 : 0;
    const char *p = (const char *)x->buf, *stop = (const char *)end;
    int minor, status;
    if (sscanf(p, "HTTP/1.%d %3d", &minor, &status) != 2 || status < 100 || status > 599)
        return -1;
    x->status = status;
    x->keep = minor >= 1;
    int have_len = 0;
    for (p = memchr(p, '\n', (size_t)(stop - p)); p != NULL && p + 1 < stop; p = memchr(p, '\n', (size_t)(stop - p))) {
        p++;
        const char *eol = memchr(p, '\r', (size_t)(stop - p));
        if (eol == NULL || eol == p)
            break;
        size_t n = (size_t)(eol - p);
        if (n > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            char num[24];
            size_t vl = n - 15;
            if (vl >= sizeof(num))
                return -1;
            memcpy(num, p + 15, vl);
            num[vl] = '\0';
            char *e;
            unsigned long long v = strtoull(num, &e, 10);
            while (*e == ' ')
                e++;
            if (*e != '\0' || v > PV_SHARD_BODY_MAX)
                return -1;
            x->clen = (size_t)v;
            have_len = 1;
        } else if (n > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
            return -1; /* privid-shard always sends Content-Length */
        } else if (n >= 16 && strncasecmp(p, "connection:", 11) == 0) {
            const char *v = p + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                x->keep = 0;
        }
    }
    if (!have_len)
        return -1;
    x->body_off = (size_t)(end - x->buf);
    return 1;
}

static void xfer_io(xfer_t *x, short revents)
{
    if (x->state == X_CONNECT) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            xfer_fail(x);
            return;
        }
        x->state = X_SEND;
    }
    if (x->state == X_SEND) {
        while (x->sent < x->head_len + x->body_len) {
            struct iovec iov[2];
            int n = 0;
            if (x->sent < x->head_len)
                iov[n++] = (struct iovec){x->head + x->sent, x->head_len - x->sent};
            size_t boff = x->sent > x->head_len ? x->sent - x->head_len : 0;
            if (x->body_len > boff)
                iov[n++] = (struct iovec){(void *)(x->body + boff), x->body_len - boff};
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            ssize_t w = sendmsg(x->fd, &mh, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    continue;
                xfer_stale_or_fail(x);
                return;
            }
            x->sent += (size_t)w;
        }
        x->state = X_RECV;
        return; /* wait for POLLIN */
    }
    if (x->state == X_RECV && (revents & (POLLIN | POLLERR | POLLHUP))) {
        for (;;) {
            if (x->len == x->cap) {
                size_t ncap = x->cap ? x->cap * 2 : 4096;
                if (ncap > RESP_MAX)
                    ncap = RESP_MAX;
                if (ncap == x->cap) {
                    xfer_fail(x); /* answer larger than any valid one */
                    return;
                }
                uint8_t *nb = realloc(x->buf, ncap);
                if (nb == NULL) {
                    xfer_fail(x);
                    return;
                }
                x->buf = nb;
                x->cap = ncap;
            }
            ssize_t n = recv(x->fd, x->buf + x->len, x->cap - x->len, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return;
                if (errno == EINTR)
                    continue;
                xfer_stale_or_fail(x);
                return;
            }
            if (n == 0) {
                xfer_stale_or_fail(x);
                return;
            }
            x->len += (size_t)n;
            if (x->body_off == 0) {
                int h = parse_head(x);
                if (h < 0) {
                    xfer_fail(x);
                    return;
                }
                if (h == 0)
                    continue;
            }
            if (x->len > x->body_off + x->clen) {
                xfer_fail(x); /* bytes past the answer: not a shard we understand */
                return;
            }
            if (x->len == x->body_off + x->clen) {
                x->state = X_DONE;
                return;
            }
        }
    }
}

/* Drives n exchanges to completion or to the deadline. */
static void xfer_run(xfer_t *xs, size_t n, int64_t deadline)
{
    struct pollfd pfd[PV_SHARDS_MAX];
    xfer_t *who[PV_SHARDS_MAX];
    for (;;) {
        size_t np = 0;
        for (size_t i = 0; i < n; i++) {
            xfer_t *x = &xs[i];
            if (x->state == X_DONE || x->state == X_FAIL)
                continue;
            pfd[np] = (struct pollfd){.fd = x->fd, .events = x->state == X_RECV ? POLLIN : POLLOUT};
            who[np++] = x;
        }
        if (np == 0)
            return;
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            for (size_t i = 0; i < np; i++)
                xfer_fail(who[i]);
            return;
        }
        int rc = poll(pfd, np, (int)left);
        if (rc < 0 && errno != EINTR) {
            for (size_t i = 0; i < np; i++)
                xfer_fail(who[i]);
            return;
        }
        for (size_t i = 0; rc > 0 && i < np; i++)
            if (pfd[i].revents != 0)
                xfer_io(who[i], pfd[i].revents);
    }
}

/* Returns the connection to its pool when the exchange left it reusable,
 * frees the buffer. */
static void xfer_dispose(xfer_t *x, int idle_max)
{
    if (x->fd >= 0) {
        remote_t *r = x->r;
        int kept = 0;
        if (x->state == X_DONE && x->keep) {
            pthread_mutex_lock(&r->mu);
            if (r->nidle < idle_max) {
                r->idle[r->nidle++] = x->fd;
                kept = 1;
            }
            pthread_mutex_unlock(&r->mu);
        }
        if (!kept)
            close(x->fd);
        x->fd = -1;
    }
    free(x->buf);
    x->buf = NULL;
}

/* Maps the JSON error object of a non-200 answer back to its PV_E* code. */
static int answer_error(const xfer_t *x)
{
    int fallback = x->status == 503 ? PV_EUNAVAIL : x->status >= 500 ? PV_EUNAVAIL : PV_EINVAL;
    size_t blen = x->len - x->body_off;
    if (blen == 0 || blen > ERROR_BODY_MAX)
        return fallback;
    json_t *root = json_loadb((const char *)x->buf + x->body_off, blen, 0, NULL);
    const char *code = json_string_value(json_object_get(json_object_get(root, "error"), "code"));
    int err = fallback;
    for (int c = PV_EBASE - 1; code != NULL && c > PV_ELAST; c--)
        if (strcmp(pv_errname(c), code) == 0) {
            err = c;
            break;
        }
    json_decref(root);
    return err;
}

static int shard_is_down(const pv_shards_t *s, remote_t *r)
{
    return s->down_ms > 0 && atomic_load(&r->down_until) > now_ms();
}

/* After an exchange: 0 with a 200 answer, else a PV_E* code. Transport
 * failures and timeouts mark the shard down and are PV_EUNAVAIL; 5xx answers
 * are failures of the shard too (counted) but leave it up. */
static int xfer_result(pv_shards_t *s, xfer_t *x, int *shard_failed)
{
    *shard_failed = 0;
    if (x->skipped) {
        *shard_failed = 1;
        return PV_EUNAVAIL;
    }
    if (x->state != X_DONE) {
        if (s->down_ms > 0)
            atomic_store(&x->r->down_until, now_ms() + s->down_ms);
        *shard_failed = 1;
        return PV_EUNAVAIL;
    }
    atomic_store(&x->r->down_until, 0);
    if (x->status == 200)
        return 0;
    *shard_failed = x->status >= 500;
    return answer_error(x);
}

/* One request to one remote shard; on 0, the answer's body is in x at
 * body_off (valid until xfer_dispose). */
static int remote_call(pv_shards_t *s, xfer_t *x, uint32_t shard, const char *method, const char *path,
                       const uint8_t *body, size_t body_len)
{
    remote_t *r = &s->remote[shard];
    xfer_init(x, r, method, path, body, body_len);
    if (shard_is_down(s, r)) {
        x->state = X_FAIL;
        x->skipped = 1;
    } else {
        xfer_start(x, 0);
        xfer_run(x, 1, now_ms() + s->timeout_ms);
    }
    int failed, ret = xfer_result(s, x, &failed);
    if (failed)
        atomic_fetch_add(&s->failures, 1);
    return ret;
}

/* ---- open / close ---- */

static int parse_url(remote_t *r, const char *url)
{
    char host[256];
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    size_t ulen = strcspn(url, "/");
    if (url[ulen] == '/' && url[ulen + 1] != '\0')
        return PV_EINVAL; /* a base URL has no path */
    const char *colon = memrchr(url, ':', ulen);
    if (colon == NULL || colon == url || (size_t)(colon - url) >= sizeof(host) || ulen >= sizeof(r->hostport))
        return PV_EINVAL;
    size_t hlen = (size_t)(colon - url);
    const char *h = url;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']')
        h++, hlen -= 2;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char port[8];
    size_t plen = ulen - (size_t)(colon + 1 - url);
    if (plen == 0 || plen >= sizeof(port))
        return PV_EINVAL;
    memcpy(port, colon + 1, plen);
    port[plen] = '\0';
    for (size_t i = 0; i < plen; i++)
        if (port[i] < '0' || port[i] > '9')
            return PV_EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return PV_EINVAL;
    memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
    r->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    memcpy(r->hostport, url, ulen);
    r->hostport[ulen] = '\0';
    return 0;
}

int pv_shards_open_local(pv_shards_t **out, const char *dir, uint32_t count, const pv_gallery_config_t *tmpl)
{
    pv_gallery_config_t cfg;
    pv_shards_t *s = NULL;
    char path[4096];
    int ret = 0;
    if (tmpl != NULL)
        cfg = *tmpl;
    else
        pv_gallery_config_init(&cfg);
    if (dir == NULL || count < 1 || count > PV_SHARDS_MAX || (cfg.dim != 0 && cfg.dim != PV_SHARD_DIM) ||
        strlen(dir) > sizeof(path) - 32)
        return PV_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->local = calloc(count, sizeof(*s->local))) == NULL) {
        ret = PV_ENOMEM;
        goto fail;
    }
    s->count = count;
    s->local_k = cfg.k ? cfg.k : PV_GALLERY_K_DEFAULT;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        ret = -errno;
        goto fail;
    }
    for (uint32_t i = 0; i < count; i++) {
        snprintf(path, sizeof(path), "%s/shard-%u", dir, i);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            ret = -errno;
            goto fail;
        }
        cfg.dir = path;
        if ((ret = pv_gallery_open(&s->local[i], &cfg)) != 0)
            goto fail;
    }
    *out = s;
    return 0;
fail:
    pv_shards_close(s);
    return ret;
}

int pv_shards_open_remote(pv_shards_t **out, const pv_shards_remote_config_t *cfg)
{
    pv_shards_t *s = NULL;
    int ret = 0;
    if (cfg == NULL || cfg->urls == NULL || cfg->count < 1 || cfg->count > PV_SHARDS_MAX || cfg->timeout_ms < 0 ||
        cfg->down_ms < 0 || cfg->idle_max < 0)
        return PV_EINVAL;
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->remote = calloc(cfg->count, sizeof(*s->remote))) == NULL) {
        free(s);
        return PV_ENOMEM;
    }
    s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 1000;
    s->down_ms = cfg->down_ms;
    s->idle_max = cfg->idle_max ? cfg->idle_max : 8;
    for (uint32_t i = 0; i < cfg->count; i++) {
        remote_t *r = &s->remote[i];
        pthread_mutex_init(&r->mu, NULL);
        s->count = i + 1; /* what close() must undo */
        if (cfg->urls[i] == NULL || (ret = parse_url(r, cfg->urls[i])) != 0)
            goto fail;
        if ((r->idle = calloc((size_t)s->idle_max, sizeof(int))) == NULL) {
            ret = PV_ENOMEM;
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    pv_shards_close(s);
    return ret ? ret : PV_EINVAL;
}

void pv_shards_close(pv_shards_t *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; s->local != NULL && i < s->count; i++)
        pv_gallery_close(s->local[i]);
    for (uint32_t i = 0; s->remote != NULL && i < s->count; i++) {
        remote_t *r = &s->remote[i];
        for (int j = 0; j < r->nidle; j++)
            close(r->idle[j]);
        free(r->idle);
        pthread_mutex_destroy(&r->mu);
    }
    free(s->local);
    free(s->remote);
    free(s);
}

uint32_t pv_shards_count(const pv_shards_t *s)
{
    return s->count;
}

uint32_t pv_shards_shard_of(const pv_shards_t *s, uint64_t gid)
{
    return (uint32_t)pv_jump_hash(gid, (int32_t)s->count);
}

/* ---- operations ---- */

static int finite_vec(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static int hit_cmp(const void *a, const void *b)
{
    const pv_gallery_hit_t *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance < y->distance ? -1 : 1;
    return x->gid < y->gid ? -1 : x->gid > y->gid;
}

/* Merges the per-shard answers (all[shard][q*k + j]) of the shards not in
 * failed_mask into hits: the k closest distinct identities per query. */
static int merge(pv_gallery_hit_t *hits, const pv_gallery_hit_t *all, uint32_t count, uint64_t failed_mask,
                 size_t nq, size_t k)
{
    pv_gallery_hit_t *tmp = malloc(count * k * sizeof(*tmp));
    if (tmp == NULL)
        return PV_ENOMEM;
    for (size_t q = 0; q < nq; q++) {
        size_t n = 0;
        for (uint32_t i = 0; i < count; i++) {
            if (failed_mask & (1ull << i))
                continue;
            const pv_gallery_hit_t *h = all + ((size_t)i * nq + q) * k;
            for (size_t j = 0; j < k && h[j].gid != 0; j++)
                tmp[n++] = h[j];
        }
        qsort(tmp, n, sizeof(*tmp), hit_cmp);
        size_t m = 0;
        for (size_t j = 0; j < n && m < k; j++) {
            /* a gid lives in one shard; dedupe anyway so a misplaced copy cannot show twice */
            int dup = 0;
            for (size_t t = 0; t < m && !dup; t++)
                dup = hits[q * k + t].gid == tmp[j].gid;
            if (!dup)
                hits[q * k + m++] = tmp[j];
        }
        for (; m < k; m++)
            hits[q * k + m] = (pv_gallery_hit_t){.gid = 0, .slot = 0, .distance = INFINITY};
    }
    free(tmp);
    return 0;
}

int pv_shards_search(pv_shards_t *s, pv_gallery_hit_t *hits, pv_shards_info_t *info, uint64_t owner, size_t nq,
                     const float *queries, size_t k)
{
    pv_shards_info_t inf = {0};
    pv_gallery_hit_t *all = NULL;
    uint8_t *req = NULL;
    xfer_t *xs = NULL;
    int ret = 0;
    if (s == NULL || hits == NULL || queries == NULL || nq < 1 || k < 1)
        return PV_EINVAL;
    if (nq > PV_SHARD_BATCH_MAX || k > PV_SHARD_K_MAX || nq * k > PV_SHARD_RESULTS_MAX)
        return PV_ELIMIT;
    if (!finite_vec(queries, nq * PV_SHARD_DIM))
        return PV_EINVAL;
    if ((all = malloc((size_t)s->count * nq * k * sizeof(*all))) == NULL) {
        ret = PV_ENOMEM;
        goto out;
    }
    if (s->local != NULL) {
        for (uint32_t i = 0; i < s->count; i++)
            if (pv_gallery_search(s->local[i], all + (size_t)i * nq * k, owner, nq, queries, k) != 0)
                inf.failed_mask |= 1ull << i;
    } else {
        size_t len = PV_SHARD_SEARCH_REQ_SIZE(nq);
        if ((req = malloc(len)) == NULL || (xs = calloc(s->count, sizeof(*xs))) == NULL) {
            ret = PV_ENOMEM;
            goto out;
        }
        pv_shard_encode_search_req(req, owner, (uint32_t)k, (uint32_t)nq, queries);
        for (uint32_t i = 0; i < s->count; i++) {
            xfer_init(&xs[i], &s->remote[i], "POST", "/v1/shard/search", req, len);
            if (shard_is_down(s, &s->remote[i])) {
                xs[i].state = X_FAIL;
                xs[i].skipped = 1;
            } else
                xfer_start(&xs[i], 0);
        }
        xfer_run(xs, s->count, now_ms() + s->timeout_ms);
        for (uint32_t i = 0; i < s->count; i++) {
            int failed, rc = xfer_result(s, &xs[i], &failed);
            if (rc == 0)
                rc = pv_shard_decode_search_resp(all + (size_t)i * nq * k, (uint32_t)nq, (uint32_t)k,
                                                 xs[i].buf + xs[i].body_off, xs[i].len - xs[i].body_off, NULL, 0);
            if (rc != 0)
                inf.failed_mask |= 1ull << i;
            xfer_dispose(&xs[i], s->idle_max);
        }
    }
    for (uint32_t i = 0; i < s->count; i++)
        inf.failed += (inf.failed_mask >> i) & 1;
    atomic_fetch_add(&s->failures, inf.failed);
    if (inf.failed == s->count) {
        ret = PV_EUNAVAIL;
        goto out;
    }
    inf.degraded = inf.failed > 0;
    atomic_fetch_add(&s->searches, 1);
    if (inf.degraded)
        atomic_fetch_add(&s->degraded, 1);
    ret = merge(hits, all, s->count, inf.failed_mask, nq, k);
out:
    if (info != NULL)
        *info = inf;
    free(xs);
    free(req);
    free(all);
    return ret;
}

/* Sends one write to gid's shard and decodes the answer with `decode`. */
static int remote_write(pv_shards_t *s, uint32_t shard, const char *path, const uint8_t *req, size_t len,
                        int (*decode)(void *arg, const uint8_t *buf, size_t len), void *arg)
{
    xfer_t x;
    int ret = remote_call(s, &x, shard, "POST", path, req, len);
    if (ret == 0 && decode(arg, x.buf + x.body_off, x.len - x.body_off) != 0) {
        atomic_fetch_add(&s->failures, 1);
        ret = PV_EUNAVAIL; /* a 200 we cannot read: the outcome is unknown, as after a timeout */
    }
    xfer_dispose(&x, s->idle_max);
    return ret;
}

typedef struct {
    uint64_t gid;
    uint32_t slot;
    int type;
} write_ans_t;

static int decode_gid(void *arg, const uint8_t *buf, size_t len)
{
    write_ans_t *a = arg;
    uint64_t gid;
    int ret = pv_shard_decode_gid_resp(&gid, a->type, buf, len, NULL, 0);
    return ret != 0 ? ret : gid == a->gid ? 0 : PV_EFORMAT;
}

static int decode_add(void *arg, const uint8_t *buf, size_t len)
{
    write_ans_t *a = arg;
    uint64_t gid;
    int ret = pv_shard_decode_add_resp(&gid, &a->slot, buf, len, NULL, 0);
    return ret != 0 ? ret : gid == a->gid ? 0 : PV_EFORMAT;
}

static int count_unavail(pv_shards_t *s, int ret)
{
    if (ret == PV_EUNAVAIL)
        atomic_fetch_add(&s->unavailable, 1);
    return ret;
}

static int enroll_one(pv_shards_t *s, uint64_t gid, uint64_t owner, const float *vec, float quality, int64_t time_ms)
{
    uint32_t shard = pv_shards_shard_of(s, gid);
    if (s->local != NULL) {
        uint64_t got;
        return pv_gallery_enroll(s->local[shard], &got, gid, owner, vec, quality);
    }
    uint8_t req[PV_SHARD_ENROLL_REQ_SIZE];
    size_t len = pv_shard_encode_enroll_req(req, gid, owner, time_ms, quality, vec);
    write_ans_t a = {.gid = gid, .type = PV_SHARD_ENROLL};
    return remote_write(s, shard, "/v1/shard/enroll", req, len, decode_gid, &a);
}

int pv_shards_enroll(pv_shards_t *s, uint64_t *gid_out, uint64_t gid, uint64_t owner, const float *vec,
                     float quality, int64_t time_ms)
{
    if (s == NULL || vec == NULL || !finite_vec(vec, PV_SHARD_DIM) || !isfinite(quality))
        return PV_EINVAL;
    int ret;
    if (gid != 0) {
        ret = enroll_one(s, gid, owner, vec, quality, time_ms);
    } else {
        /* a random 64-bit gid collides with probability ~n/2^64; retried anyway */
        ret = PV_EEXIST;
        for (int i = 0; i < ENROLL_RANDOM_TRIES && ret == PV_EEXIST; i++) {
            do {
                if (pv_random_bytes(&gid, sizeof(gid)) != 0)
                    return PV_EUNAVAIL;
            } while (gid == 0);
            ret = enroll_one(s, gid, owner, vec, quality, time_ms);
        }
    }
    if (ret == 0 && gid_out != NULL)
        *gid_out = gid;
    return count_unavail(s, ret);
}

int pv_shards_add(pv_shards_t *s, uint32_t *slot_out, uint64_t gid, const float *vec, float quality,
                  int64_t time_ms)
{
    if (s == NULL || gid == 0 || vec == NULL || !finite_vec(vec, PV_SHARD_DIM) || !isfinite(quality))
        return PV_EINVAL;
    uint32_t shard = pv_shards_shard_of(s, gid), slot = PV_GALLERY_NOSLOT;
    int ret;
    if (s->local != NULL) {
        ret = pv_gallery_add(s->local[shard], &slot, gid, vec, quality);
    } else {
        uint8_t req[PV_SHARD_ADD_REQ_SIZE];
        size_t len = pv_shard_encode_add_req(req, gid, time_ms, quality, vec);
        write_ans_t a = {.gid = gid, .type = PV_SHARD_ADD};
        ret = remote_write(s, shard, "/v1/shard/add", req, len, decode_add, &a);
        slot = a.slot;
    }
    if (ret == 0 && slot_out != NULL)
        *slot_out = slot;
    return count_unavail(s, ret);
}

int pv_shards_remove(pv_shards_t *s, uint64_t gid)
{
    if (s == NULL || gid == 0)
        return PV_EINVAL;
    uint32_t shard = pv_shards_shard_of(s, gid);
    int ret;
    if (s->local != NULL) {
        ret = pv_gallery_remove(s->local[shard], gid);
    } else {
        uint8_t req[PV_SHARD_REMOVE_REQ_SIZE];
        size_t len = pv_shard_encode_remove_req(req, gid);
        write_ans_t a = {.gid = gid, .type = PV_SHARD_REMOVE};
        ret = remote_write(s, shard, "/v1/shard/remove", req, len, decode_gid, &a);
    }
    return count_unavail(s, ret);
}

int pv_shards_stat(pv_shards_t *s, pv_shard_stats_t *st, uint32_t shard)
{
    if (s == NULL || st == NULL || shard >= s->count)
        return PV_EINVAL;
    if (s->local != NULL) {
        pv_gallery_stat_t gs;
        int ret = pv_gallery_stat(s->local[shard], &gs);
        if (ret != 0)
            return ret;
        *st = (pv_shard_stats_t){.identities = gs.identities,
                                 .exemplars = gs.exemplars,
                                 .owners = gs.owners,
                                 .seq = gs.seq,
                                 .snapshot_seq = gs.snapshot_seq,
                                 .lmdb_bytes = gs.lmdb_bytes,
                                 .dim = PV_SHARD_DIM,
                                 .k = s->local_k,
                                 .shared_approx = (uint32_t)gs.shared_approx};
        return 0;
    }
    xfer_t x;
    int ret = remote_call(s, &x, shard, "GET", "/v1/shard/stats", NULL, 0);
    if (ret == 0 && pv_shard_decode_stats_resp(st, x.buf + x.body_off, x.len - x.body_off, NULL, 0) != 0)
        ret = PV_EUNAVAIL;
    xfer_dispose(&x, s->idle_max);
    return ret;
}

void pv_shards_counters(pv_shards_t *s, pv_shards_counters_t *out)
{
    out->searches = atomic_load(&s->searches);
    out->degraded = atomic_load(&s->degraded);
    out->shard_failures = atomic_load(&s->failures);
    out->unavailable = atomic_load(&s->unavailable);
}
