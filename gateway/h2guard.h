/*
 * The HTTP/2 rapid-reset guard (CVE-2023-44487; libh2o 2.2.5 has none). A
 * client that opens streams and cancels them before their answer goes out
 * makes the server work without ever being limited by the concurrent-stream
 * cap. Every HTTP/2 request is tracked from the moment the gateway sees it;
 * when its stream closes before any byte of the answer was sent it counts
 * as cancelled against its connection. A connection with more than `limit`
 * cancelled requests within `window_ms` is sent GOAWAY (ENHANCE_YOUR_CALM)
 * and closed once the streams it still has are answered. One guard per
 * event loop; everything runs on that loop.
 */
#ifndef PV_GATEWAY_H2GUARD_H
#define PV_GATEWAY_H2GUARD_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <stdint.h>

typedef struct pv_h2guard pv_h2guard_t;

/* A guard for ctx's connections; limit 0 disables it (requests are still counted). */
int pv_h2guard_create(pv_h2guard_t **out, h2o_context_t *ctx, int limit, int window_ms);

/* Frees the guard; on its loop, before the context is disposed. NULL is a no-op. */
void pv_h2guard_destroy(pv_h2guard_t *g);

/* Starts tracking req (HTTP/1 requests are ignored). On the loop, once per request. */
void pv_h2guard_track(pv_h2guard_t *g, h2o_req_t *req);

/* Process-wide totals for the metrics: cancelled HTTP/2 requests, connections closed by the guard. */
uint64_t pv_h2guard_cancelled(void);
uint64_t pv_h2guard_closed(void);

#endif
