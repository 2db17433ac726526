/*
 * The gateway's upkeep thread (see internal.h): removes the identities of
 * the forget queue (tenants/visitors.h) from the gallery, and runs the
 * retention sweep. An erasure through the API removes its identity at once
 * (pv_gw_forget_now); the queue catches what could not go then (a shard
 * down, a crash between the LMDB commit and the removal) and what
 * `privid-admin visitor erase` and `privid-admin retention run` queue from
 * another process.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "common/error.h"
#include "common/log.h"
#include "gateway/internal.h"
#include "tenants/visitors.h"

#define FORGET_BATCH 256

struct pv_gw_upkeep {
    pv_gw_t *gw;
    int forget_ms, sweep_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pv_gw_forget_now(pv_gw_t *gw, uint64_t gid)
{
    if (gw->shards == NULL)
        return PV_EUNAVAIL;
    int rc = pv_shards_remove(gw->shards, gid);
    if (rc != 0 && rc != PV_ENOTFOUND)
        return rc; /* stays queued: the next round tries again */
    return pv_forget_done(gw->tenants, gid);
}

size_t pv_gw_forget_run(pv_gw_t *gw)
{
    uint64_t gids[FORGET_BATCH];
    size_t n = 0, done = 0;
    if (gw->shards == NULL || pv_forget_list(gw->tenants, gids, FORGET_BATCH, &n) != 0)
        return 0;
    int last_err = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = pv_gw_forget_now(gw, gids[i]);
        if (rc == 0)
            done++;
        else
            last_err = rc;
    }
    if (done < n) /* one line per pass, not per identity (a shard may be down for a while) */
        PV_LOG(PV_LOG_WARN, "forgotten identities not yet removed from the gallery; retrying later",
               "pending=%zu err=%s", n - done, pv_errname(last_err));
    return done;
}

/* Sleeps ms unless stopped; returns 1 when stopping. */
static int nap(pv_gw_upkeep_t *u, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&u->mu);
    while (!u->stopping && pthread_cond_timedwait(&u->cv, &u->mu, &until) == 0)
        ;
    int stop = u->stopping;
    pthread_mutex_unlock(&u->mu);
    return stop;
}

static void *run(void *arg)
{
    pv_gw_upkeep_t *u = arg;
    int64_t swept_at = 0;
    do {
        if (u->sweep_ms > 0 && (swept_at == 0 || mono_ms() - swept_at >= u->sweep_ms)) {
            size_t expired = 0;
            int rc = pv_retention_sweep(u->gw->tenants, wall_ms(), 0, &expired);
            if (rc != 0)
                PV_LOG(PV_LOG_WARN, "retention sweep failed", "err=%s", pv_errname(rc));
            else if (expired > 0)
                PV_LOG(PV_LOG_INFO, "retention sweep", "visitors_forgotten=%zu", expired);
            swept_at = mono_ms();
        }
        size_t removed = pv_gw_forget_run(u->gw);
        if (removed > 0)
            PV_LOG(PV_LOG_INFO, "forgotten identities removed from the gallery", "identities=%zu", removed);
    } while (!nap(u, u->forget_ms));
    return NULL;
}

int pv_gw_upkeep_start(pv_gw_upkeep_t **out, pv_gw_t *gw, int forget_ms, int sweep_ms)
{
    pv_gw_upkeep_t *u = calloc(1, sizeof(*u));
    *out = NULL;
    if (u == NULL)
        return PV_ENOMEM;
    u->gw = gw;
    u->forget_ms = forget_ms > 0 ? forget_ms : 1000;
    u->sweep_ms = sweep_ms;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    int err = pthread_create(&u->thread, NULL, run, u);
    if (err != 0) {
        pthread_mutex_destroy(&u->mu);
        pthread_cond_destroy(&u->cv);
        free(u);
        return -err;
    }
    *out = u;
    return 0;
}

void pv_gw_upkeep_stop(pv_gw_upkeep_t *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->mu);
    u->stopping = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u);
}
