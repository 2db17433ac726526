/*
 * PostgreSQL readiness monitor: one thread, one connection, a `SELECT 1`
 * per interval. Readers see an atomic state, so /readyz never blocks an
 * event loop on libpq. Reconnection backs off exponentially up to 5 s.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "analytics/analytics.h"
#include "common/error.h"
#include "common/log.h"

struct pv_pgmon {
    char *dsn;
    int interval_ms;
    _Atomic int state;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

/* Sleeps up to ms, returning early (nonzero) when asked to stop. */
static int nap(pv_pgmon_t *m, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    while (!m->stopping && pthread_cond_timedwait(&m->cv, &m->mu, &until) != ETIMEDOUT)
        ;
    int stop = m->stopping;
    pthread_mutex_unlock(&m->mu);
    return stop;
}

static int check(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

static void set_state(pv_pgmon_t *m, int state)
{
    int old = atomic_exchange(&m->state, state);
    if (old != state)
        PV_LOG(state == PV_PG_UP ? PV_LOG_INFO : PV_LOG_WARN, "postgres state", "state=%s",
               state == PV_PG_UP ? "up" : "down");
}

static void *run(void *arg)
{
    pv_pgmon_t *m = arg;
    PGconn *conn = NULL;
    int backoff = 100;
    do {
        if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = PQconnectdb(m->dsn);
        }
        if (PQstatus(conn) == CONNECTION_OK && check(conn)) {
            set_state(m, PV_PG_UP);
            backoff = 100;
            continue;
        }
        set_state(m, PV_PG_DOWN);
        PQfinish(conn);
        conn = NULL;
        if (nap(m, backoff))
            break;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    } while (!nap(m, m->interval_ms));
    PQfinish(conn);
    return NULL;
}

int pv_pgmon_start(pv_pgmon_t **out, const char *dsn, int interval_ms)
{
    pv_pgmon_t *m = calloc(1, sizeof(*m));
    if (m == NULL || (m->dsn = strdup(dsn)) == NULL) {
        free(m);
        return PV_ENOMEM;
    }
    m->interval_ms = interval_ms;
    atomic_init(&m->state, PV_PG_UNKNOWN);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    int err = pthread_create(&m->thread, NULL, run, m);
    if (err != 0) {
        free(m->dsn);
        free(m);
        return -err;
    }
    *out = m;
    return 0;
}

pv_pg_state_t pv_pgmon_state(const pv_pgmon_t *m)
{
    return (pv_pg_state_t)atomic_load(&((pv_pgmon_t *)m)->state);
}

void pv_pgmon_stop(pv_pgmon_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->dsn);
    free(m);
}
