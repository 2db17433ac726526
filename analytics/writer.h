/*
 * The analytics writer: one thread that drains the tenants store's LMDB
 * outbox into PostgreSQL. Each batch (events in sequence order) is inserted
 * with ON CONFLICT DO NOTHING on the event's key (a large batch without
 * erasures split over conf.connections connections, a transaction each),
 * then deleted from LMDB after every part committed: at-least-once delivery onto idempotent
 * inserts, so every event lands exactly once. A second thread applies the
 * delivered visits to the reports' roll-up (migrations/0007), off the
 * delivery path. PostgreSQL down: events wait in
 * LMDB, reconnection backs off exponentially up to a cap (no busy loop).
 */
#ifndef PV_ANALYTICS_WRITER_H
#define PV_ANALYTICS_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include "tenants/tenants.h"

typedef struct pv_writer pv_writer_t;

/* How a batch travels to PostgreSQL (tests/bench/analytics/bench_writer.c
 * compares them). */
typedef enum {
    PV_WRITER_DEFAULT = 0,  /* PV_WRITER_COPY: the fastest here with the roll-up deferred (bench_writer) */
    PV_WRITER_INSERT = 1,   /* one INSERT ... SELECT over a jsonb array of the batch */
    PV_WRITER_COPY = 2,     /* COPY into a temporary table, then INSERT ... SELECT */
    PV_WRITER_PIPELINE = 3, /* one prepared INSERT per event, libpq pipeline mode */
} pv_writer_method_t;

typedef struct {
    const char *dsn;           /* libpq connection string (copied) */
    size_t batch_max;          /* events per transaction; 0: 5000 */
    int idle_ms;               /* outbox poll when empty (pv_writer_notify wakes it); 0: 200 */
    int backoff_min_ms;        /* first retry delay after a failure; 0: 100 */
    int backoff_max_ms;        /* cap of the doubling retry delay; 0: 5000 */
    pv_writer_method_t method; /* PV_WRITER_DEFAULT unless benchmarking */
    int rollup_inline;         /* 1: the roll-up runs in each delivery's transaction (0006; for the
                                  bench); 0 (default): deliveries defer it to the roll-up thread */
    int connections;           /* delivery connections a large batch is split over; 0: 2, at most 4 */
} pv_writer_conf_t;

/*
 * Starts the writer over store t (borrowed: it must outlive the writer). The
 * caller owns *out and stops it with pv_writer_stop. One writer per store at
 * a time, across processes: it holds an exclusive lock on writer.lock in the
 * store's directory (two drainers could delete an event appended between
 * them, because the outbox renumbers from 1 once empty), and PV_EEXIST says
 * another writer (a gateway, privid-admin analytics backfill) holds it; the
 * kernel releases it when a process dies. Returns 0, PV_EINVAL, PV_EEXIST,
 * PV_ENOMEM or -errno (lock file, thread creation).
 */
int pv_writer_start(pv_writer_t **out, pv_tenants_t *t, const pv_writer_conf_t *conf);

/* Wakes the writer when it is idle (new events were appended). Safe from any
 * thread, never blocks for long; a writer backing off after a failure keeps
 * its delay. */
void pv_writer_notify(pv_writer_t *w);

/* Stops the thread (after the batch in flight) and frees; NULL is a no-op.
 * Events not yet delivered stay in the outbox for the next start. */
void pv_writer_stop(pv_writer_t *w);

/* Metrics, safe from any thread (atomics, refreshed on every writer cycle). */
uint64_t pv_writer_depth(const pv_writer_t *w);           /* events waiting in the outbox */
int64_t pv_writer_oldest_age_ms(const pv_writer_t *w);    /* age of the oldest waiting event, 0 when none */
uint64_t pv_writer_delivered(const pv_writer_t *w);       /* events committed to PostgreSQL */
int64_t pv_writer_last_delivery_ms(const pv_writer_t *w); /* unix ms of the last commit, 0 before */
uint64_t pv_writer_failures(const pv_writer_t *w);        /* failed connection or batch attempts */
uint64_t pv_writer_rejected(const pv_writer_t *w);        /* events PostgreSQL refused as invalid (dropped) */
int pv_writer_connected(const pv_writer_t *w);            /* 1 while the last attempt succeeded */
uint64_t pv_writer_rolled_up(const pv_writer_t *w);       /* delivered visits applied to the roll-up */
int pv_writer_rollup_idle(
    const pv_writer_t *w); /* 1: the roll-up found nothing pending since the last delivery */

#endif
