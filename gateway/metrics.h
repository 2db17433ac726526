/*
 * Gateway metrics in the Prometheus text format: request counts by route and
 * status, latency histograms by route and by pipeline stage, and gauges
 * supplied by callbacks at scrape time. Recording is lock-free (relaxed
 * atomics); only the scrape formats text.
 */
#ifndef PV_GATEWAY_METRICS_H
#define PV_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define PV_METRICS_ROUTES_MAX 32

typedef enum {
    PV_STAGE_DECODE,
    PV_STAGE_DETECT,
    PV_STAGE_LANDMARKS,
    PV_STAGE_EMBED,
    PV_STAGE_SEARCH,
    PV_STAGE_STORE,
    PV_STAGE_QUEUE,
    PV_STAGE_COUNT
} pv_stage_t;

typedef enum {
    PV_COUNTER_FACES,
    PV_COUNTER_NEW_VISITORS,
    PV_COUNTER_RETURNING,
    PV_COUNTER_DEGRADED,
    PV_COUNTER_SHED,        /* refused with 503 because the queue was full */
    PV_COUNTER_RATE_LIMITED,
    PV_COUNTER_COUNT
} pv_counter_t;

/* Names the routes (label values); called once at start-up. */
void pv_metrics_init(const char *const *route_names, int nroutes);

/* One finished request: route index (or -1 for no route), status, latency. */
void pv_metrics_request(int route, int status, double seconds);
void pv_metrics_stage(pv_stage_t stage, double seconds);
void pv_metrics_count(pv_counter_t c, uint64_t n);

/* A gauge read at scrape time (e.g. queue depth). Up to 16. */
void pv_metrics_gauge(const char *name, const char *help, double (*read)(void *), void *arg);

/* Formats everything into a malloc'ed string (*out, *len); caller frees. */
int pv_metrics_render(char **out, size_t *len);

#endif
