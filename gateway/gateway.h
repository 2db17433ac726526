/*
 * The PrivID gateway: an h2o server with N event-loop threads that
 * authenticates API keys against the tenants store and answers the v1 API.
 * pv_gateway_run() owns the process until SIGINT/SIGTERM.
 */
#ifndef PV_GATEWAY_H
#define PV_GATEWAY_H

#include <stddef.h>
#include <stdio.h>
#include "common/config.h"

typedef struct {
    pv_strlist_t listen; /* HOST:PORT, port 0 = any free port (logged) */
    long threads;
    char *data_dir;
    char *pg;            /* libpq DSN, or NULL/"" for none */
    char *log_level;
    long max_body;       /* bytes */
    long pg_check_ms;
    char *models;        /* face-api model/ folder; "" = recognition off */
    long workers;        /* inference threads, 0 = one per core */
    long queue_max;      /* jobs waiting for a worker before 503 */
    long max_pixels;     /* decoded image bound */
    char *gallery_dir;   /* "" = <data-dir>/gallery */
    pv_strlist_t shards; /* remote shard URLs; none = in-process partitions */
    long local_shards;   /* in-process partitions when no remote shard is given */
    long shard_timeout_ms;
    long auth_fail_max;     /* failed authentications a client address may make at once (0 = no limit) */
    long auth_fail_per_min; /* ... and the refill rate of that allowance */
    /* TLS and connection limits (server.c) */
    char *tls_cert;          /* PEM certificate chain; with tls_key, HOST:PORT listeners serve HTTPS */
    char *tls_key;           /* PEM private key; both are re-read on SIGHUP */
    long max_connections;    /* open client connections (all listeners) before new ones are closed */
    long request_timeout_ms; /* HTTP/1: a whole request (headers and body) or keep-alive idle; TLS handshake */
    long idle_timeout_ms;    /* HTTP/2: a connection that sends nothing */
    long h2_max_concurrent;  /* HTTP/2 requests one connection runs at once (more wait) */
    long h2_reset_limit;     /* HTTP/2 requests a connection may cancel per 10 s before GOAWAY (0 = off) */
    long queue_timeout_ms;   /* a job that waited longer for a worker is answered 503 (0 = never) */
    long forget_ms;          /* how often queued (erased, expired) identities are removed from the gallery */
    long retention_sweep_ms; /* how often visitors past their tenant's retention are forgotten (0 = never) */
    char *console_dir;       /* the built web console (static.c); NULL = <bin>/../console, "off" = none */
} pv_gateway_config_t;

/* The option table of privid-gateway (flags, PRIVID_* variables, defaults). */
extern const pv_opt_t pv_gateway_options[];

/*
 * Binds every listen address, starts the threads and serves until a
 * SIGINT/SIGTERM, then drains and stops. Returns 0, or a negative code when
 * start-up failed (the reason is logged).
 */
int pv_gateway_run(const pv_gateway_config_t *conf);

/*
 * Writes the route table to f as a JSON array, one object per route and
 * method: {"method","path","auth","scope"} (scope null for any valid key or
 * a public route). A prefix route's last segment is written as an OpenAPI
 * template ({id}) or, for the reports, once per report name. For
 * `privid-gateway --routes` (the OpenAPI test compares it with the
 * document). Returns 0, or PV_ENOMEM / PV_EIO.
 */
int pv_gateway_print_routes(FILE *f);

#endif
