/*
 * loadgen: an open-loop HTTP/1.1 load generator for the gateway on loopback.
 * It offers RATE requests per second (POST of a file, or GET without one)
 * over up to CONNS keep-alive connections for SECONDS, whatever the answers
 * take; a request whose turn comes while every connection is busy is counted
 * as unsent. Prints one JSON line: offered/sent/answered counts by status
 * class, 503/429 answers without Retry-After, connection errors, latency
 * p50/p99/max of accepted (2xx) answers and p99 of all, throughput, shed
 * rate, and the peak RSS (VmHWM) of PID when given.
 *   loadgen HOST:PORT PATH BODY|- KEY|- RATE CONNS SECONDS [PID]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 512

typedef struct {
    int fd;
    int busy;
    double sent_at;
    char in[65536];
    size_t inlen;
} conn_t;

static struct sockaddr_in addr;
static char *req;
static size_t reqlen;
static double *lat_ok, *lat_all;
static int first_other;
static long n_ok, n_all, n_503, n_429, n_other, n_noretry, n_err, n_sent, n_unsent, n_offered;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void conn_reset(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->busy = 0;
    c->inlen = 0;
}

/* A whole response in c->in? Records it and returns 1 (0: incomplete, -1: must reconnect). */
static int take_response(conn_t *c, double t)
{
    c->in[c->inlen < sizeof(c->in) ? c->inlen : sizeof(c->in) - 1] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - c->in) + 4, clen = 0;
    int status = atoi(c->in + 9), retry = 0, close_after = 0, chunked = 0;
    for (char *l = strstr(c->in, "\r\n"); l != NULL && l < end; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            clen = strtoul(l + 17, NULL, 10);
        else if (strncasecmp(l + 2, "retry-after:", 12) == 0)
            retry = 1;
        else if (strncasecmp(l + 2, "connection: close", 17) == 0)
            close_after = 1;
        else if (strncasecmp(l + 2, "transfer-encoding: chunked", 26) == 0)
            chunked = 1;
    }
    if (chunked) { /* JSON bodies never contain the last-chunk sequence */
        char *last = strstr(c->in + head - 2, "\r\n0\r\n\r\n");
        if (last == NULL)
            return 0;
        clen = (size_t)(last + 7 - c->in) - head;
    }
    if (c->inlen < head + clen)
        return 0;
    double ms = (t - c->sent_at) * 1000;
    lat_all[n_all++] = ms;
    if (status >= 200 && status < 300)
        lat_ok[n_ok++] = ms;
    else if (status == 503)
        n_503++;
    else if (status == 429)
        n_429++;
    else if (n_other++ == 0)
        first_other = status;
    if ((status == 503 || status == 429) && !retry)
        n_noretry++;
    memmove(c->in, c->in + head + clen, c->inlen - head - clen);
    c->inlen -= head + clen;
    c->busy = 0;
    return close_after ? -1 : 1;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof(*v), cmp);
    long i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static long vmhwm_kb(const char *pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: loadgen HOST:PORT PATH BODY|- KEY|- RATE CONNS SECONDS [PID]\n");
        return 2;
    }
    char host[64];
    snprintf(host, sizeof(host), "%s", argv[1]);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return 2;
    *colon = '\0';
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    inet_pton(AF_INET, host, &addr.sin_addr);
    double rate = atof(argv[5]), secs = atof(argv[7]);
    int nconns = atoi(argv[6]);
    if (nconns < 1 || nconns > MAXC || rate <= 0 || secs <= 0)
        return 2;

    char *body = NULL;
    long blen = 0;
    if (strcmp(argv[3], "-") != 0) {
        FILE *f = fopen(argv[3], "rb");
        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (blen = ftell(f)) < 0) {
            perror(argv[3]);
            return 2;
        }
        rewind(f);
        body = malloc((size_t)blen + 1);
        if (fread(body, 1, (size_t)blen, f) != (size_t)blen)
            return 2;
        fclose(f);
    }
    char auth[400] = "";
    if (strcmp(argv[4], "-") != 0)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", argv[4]);
    char head[1024];
    int hl = body ? snprintf(head, sizeof(head),
                             "POST %s HTTP/1.1\r\nHost: loadgen\r\n%sContent-Type: "
                             "image/jpeg\r\nContent-Length: %ld\r\n\r\n",
                             argv[2], auth, blen)
                  : snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: loadgen\r\n%s\r\n", argv[2], auth);
    reqlen = (size_t)hl + (size_t)blen;
    req = malloc(reqlen);
    memcpy(req, head, (size_t)hl);
    if (body)
        memcpy(req + hl, body, (size_t)blen);
    long cap = (long)(rate * secs) + 16;
    lat_ok = calloc((size_t)cap, sizeof(double));
    lat_all = calloc((size_t)cap, sizeof(double));
    conn_t *cs = calloc((size_t)nconns, sizeof(conn_t));
    for (int i = 0; i < nconns; i++)
        cs[i].fd = -1;

    double start = now_s(), stop = start + secs, next = start;
    int rr = 0;
    for (;;) {
        double t = now_s();
        int inflight = 0;
        for (int i = 0; i < nconns; i++)
            inflight += cs[i].busy;
        if (t >= stop && (inflight == 0 || t >= stop + 15))
            break;
        /* the schedule: each due request goes to an idle connection, or is unsent */
        while (t < stop && next <= t) {
            n_offered++;
            next += 1.0 / rate;
            int k = -1;
            for (int j = 0; j < nconns && k < 0; j++)
                if (!cs[(rr + j) % nconns].busy)
                    k = (rr + j) % nconns;
            if (k < 0) {
                n_unsent++;
                continue;
            }
            rr = k + 1;
            conn_t *c = &cs[k];
            if (c->fd < 0 && (c->fd = dial()) < 0) {
                n_err++;
                continue;
            }
            c->sent_at = now_s();
            if (send_all(c->fd, req, reqlen) != 0) {
                n_err++;
                conn_reset(c);
                continue;
            }
            c->busy = 1;
            n_sent++;
        }
        struct pollfd pf[MAXC];
        int map[MAXC], np = 0;
        for (int i = 0; i < nconns; i++)
            if (cs[i].busy) {
                pf[np].fd = cs[i].fd;
                pf[np].events = POLLIN;
                map[np++] = i;
            }
        double wait = t < stop ? next - now_s() : 0.05;
        int ms = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
        if (poll(pf, (nfds_t)np, ms > 50 ? 50 : ms) <= 0)
            continue;
        double tr = now_s();
        for (int p = 0; p < np; p++) {
            if (!(pf[p].revents & (POLLIN | POLLERR | POLLHUP)))
                continue;
            conn_t *c = &cs[map[p]];
            ssize_t r = recv(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen, 0);
            if (r <= 0) {
                n_err++; /* closed with a request outstanding */
                conn_reset(c);
                continue;
            }
            c->inlen += (size_t)r;
            if (take_response(c, tr) < 0)
                conn_reset(c);
        }
    }
    double elapsed = now_s() - start;
    long answered = n_ok + n_503 + n_429 + n_other;
    double p50 = pct(lat_ok, n_ok, 0.50), p99 = pct(lat_ok, n_ok, 0.99), mx = pct(lat_ok, n_ok, 1.0);
    double p99all = pct(lat_all, n_all, 0.99);
    printf(
        "{\"bench\":\"gateway_overload\",\"path\":\"%s\",\"rate\":%.0f,\"conns\":%d,\"seconds\":%.0f,"
        "\"offered\":%ld,\"sent\":%ld,\"unsent\":%ld,\"answered\":%ld,\"ok\":%ld,\"s503\":%ld,\"s429\":%ld,"
        "\"other\":%ld,\"first_other_status\":%d,\"no_retry_after\":%ld,\"conn_errors\":%ld,\"ok_per_s\":%."
        "1f,\"shed_rate\":%.3f,"
        "\"ok_p50_ms\":%.1f,\"ok_p99_ms\":%.1f,\"ok_max_ms\":%.1f,\"all_p99_ms\":%.1f,\"peak_rss_kb\":%ld}\n",
        argv[2], rate, nconns, secs, n_offered, n_sent, n_unsent, answered, n_ok, n_503, n_429, n_other,
        first_other, n_noretry, n_err, n_ok / elapsed,
        answered ? (double)(n_503 + n_429) / (double)answered : 0, p50, p99, mx, p99all,
        argc > 8 ? vmhwm_kb(argv[8]) : -1L);
    for (int i = 0; i < nconns; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    free(cs);
    free(body);
    free(req);
    free(lat_ok);
    free(lat_all);
    return 0;
}
