/*
 * Metric storage: fixed arrays of relaxed atomic counters. Histogram bucket
 * bounds are shared by all latency series (seconds, Prometheus `le`).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "gateway/metrics.h"

static const int statuses[] = {200, 201, 204, 207, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503};
#define NSTATUS (int)(sizeof(statuses) / sizeof(statuses[0]))
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBOUNDS (int)(sizeof(bounds) / sizeof(bounds[0]))

typedef struct {
    _Atomic uint64_t buckets[NBOUNDS + 1]; /* last = +Inf */
    _Atomic uint64_t sum_us;
} histo_t;

static const char *route_names[PV_METRICS_ROUTES_MAX + 1];
static int nroutes;
static _Atomic uint64_t requests[PV_METRICS_ROUTES_MAX + 1][NSTATUS + 1];
static histo_t route_latency[PV_METRICS_ROUTES_MAX + 1];
static histo_t stage_latency[PV_STAGE_COUNT];
static _Atomic uint64_t counters[PV_COUNTER_COUNT];
static const char *stage_names[] = {"decode", "detect", "landmarks", "embed", "search", "store", "queue"};
static const struct {
    const char *name, *help;
} counter_info[] = {
    {"privid_faces_total", "Faces answered."},
    {"privid_visitors_new_total", "Faces answered as new visitors."},
    {"privid_visitors_returning_total", "Faces answered as returning visitors."},
    {"privid_degraded_answers_total", "Answers computed without every shard."},
    {"privid_shed_total", "Requests refused with 503 because the work queue was full."},
    {"privid_rate_limited_total", "Requests refused with 429."},
};

static struct {
    const char *name, *help;
    double (*read)(void *);
    void *arg;
} gauges[16];
static _Atomic int ngauges;

void pv_metrics_init(const char *const *names, int n)
{
    nroutes = n > PV_METRICS_ROUTES_MAX ? PV_METRICS_ROUTES_MAX : n;
    for (int i = 0; i < nroutes; i++)
        route_names[i] = names[i];
    route_names[nroutes] = "none";
}

static void observe(histo_t *h, double seconds)
{
    int i = 0;
    while (i < NBOUNDS && seconds > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

void pv_metrics_request(int route, int status, double seconds)
{
    int r = route < 0 || route >= nroutes ? nroutes : route, s = NSTATUS;
    for (int i = 0; i < NSTATUS; i++)
        if (statuses[i] == status)
            s = i;
    atomic_fetch_add_explicit(&requests[r][s], 1, memory_order_relaxed);
    observe(&route_latency[r], seconds);
}

void pv_metrics_stage(pv_stage_t stage, double seconds)
{
    if (stage < PV_STAGE_COUNT)
        observe(&stage_latency[stage], seconds);
}

void pv_metrics_count(pv_counter_t c, uint64_t n)
{
    if (c < PV_COUNTER_COUNT)
        atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void pv_metrics_gauge(const char *name, const char *help, double (*read)(void *), void *arg)
{
    int i = atomic_fetch_add(&ngauges, 1);
    if (i >= 16)
        return;
    gauges[i].name = name;
    gauges[i].help = help;
    gauges[i].read = read;
    gauges[i].arg = arg;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} sb_t;

static void put(sb_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sb_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->buf, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
}

static void put_histo(sb_t *b, const char *name, const char *label, const char *value, histo_t *h)
{
    uint64_t cum = 0;
    for (int i = 0; i <= NBOUNDS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < NBOUNDS)
            put(b, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value, bounds[i], (unsigned long long)cum);
        else
            put(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, value, (unsigned long long)cum);
    }
    put(b, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value,
        (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    put(b, "%s_count{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)cum);
}

int pv_metrics_render(char **out, size_t *len)
{
    sb_t b = {malloc(16384), 0, 16384, 0};
    if (b.buf == NULL)
        return PV_ENOMEM;
    put(&b, "# HELP privid_requests_total HTTP requests answered, by route and status.\n"
            "# TYPE privid_requests_total counter\n");
    for (int r = 0; r <= nroutes; r++)
        for (int s = 0; s <= NSTATUS; s++) {
            uint64_t v = atomic_load_explicit(&requests[r][s], memory_order_relaxed);
            if (v != 0)
                put(&b, "privid_requests_total{route=\"%s\",status=\"%s%d\"} %llu\n", route_names[r],
                    s == NSTATUS ? "other" : "", s == NSTATUS ? 0 : statuses[s], (unsigned long long)v);
        }
    put(&b, "# HELP privid_request_seconds Request latency by route.\n# TYPE privid_request_seconds histogram\n");
    for (int r = 0; r <= nroutes; r++)
        put_histo(&b, "privid_request_seconds", "route", route_names[r], &route_latency[r]);
    put(&b, "# HELP privid_stage_seconds Latency of each recognition stage.\n"
            "# TYPE privid_stage_seconds histogram\n");
    for (int s = 0; s < PV_STAGE_COUNT; s++)
        put_histo(&b, "privid_stage_seconds", "stage", stage_names[s], &stage_latency[s]);
    for (int c = 0; c < PV_COUNTER_COUNT; c++)
        put(&b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_info[c].name, counter_info[c].help,
            counter_info[c].name, counter_info[c].name,
            (unsigned long long)atomic_load_explicit(&counters[c], memory_order_relaxed));
    int n = atomic_load(&ngauges);
    for (int g = 0; g < n && g < 16; g++)
        put(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", gauges[g].name, gauges[g].help, gauges[g].name,
            gauges[g].name, gauges[g].read(gauges[g].arg));
    if (b.failed) {
        free(b.buf);
        return PV_ENOMEM;
    }
    *out = b.buf;
    *len = b.len;
    return 0;
}
