/*
 * Analytics: everything PrivID does with PostgreSQL. This header has the
 * readiness monitor; the outbox writer is in writer.h, the k-anonymous
 * reports in reports.h. Nothing here
 * ever runs on an event loop: libpq calls happen on this module's threads.
 */
#ifndef PV_ANALYTICS_H
#define PV_ANALYTICS_H

typedef struct pv_pgmon pv_pgmon_t;

typedef enum { PV_PG_UNKNOWN = 0, PV_PG_UP = 1, PV_PG_DOWN = 2 } pv_pg_state_t;

/*
 * Starts a thread that keeps one connection to `dsn` and checks it with
 * `SELECT 1` every interval_ms (reconnecting with backoff when it fails).
 * The caller owns *out and stops it with pv_pgmon_stop. Returns 0 or
 * PV_ENOMEM / -errno.
 */
int pv_pgmon_start(pv_pgmon_t **out, const char *dsn, int interval_ms);

/* The last observed state; safe from any thread. */
pv_pg_state_t pv_pgmon_state(const pv_pgmon_t *m);

/* Stops the thread and frees; NULL is a no-op. */
void pv_pgmon_stop(pv_pgmon_t *m);

#endif
