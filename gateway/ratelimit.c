/*
 * Striped open-addressing table of token buckets. A probe looks at a short
 * window; an entry whose bucket is already full again (idle long enough) is
 * as good as empty, so it is reused. When the window holds only busy buckets,
 * the one touched longest ago is replaced: under that much pressure the
 * limiter errs on the side of admitting, never of refusing wrongly.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include "common/error.h"
#include "gateway/ratelimit.h"

#define STRIPES 64
#define PROBE 8

typedef struct {
    uint64_t key;    /* 0 = empty; real key 0 is stored as 1 << 63 | ... see norm() */
    double tokens;
    int64_t last_us;
    int64_t full_at_us; /* when the bucket is full again: after that it holds no state */
} bucket_t;

typedef struct {
    pthread_mutex_t mu;
    bucket_t *slots;
} stripe_t;

struct pv_ratelimit {
    size_t per_stripe; /* power of two */
    stripe_t stripes[STRIPES];
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

int pv_ratelimit_create(pv_ratelimit_t **out, size_t capacity)
{
    pv_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return PV_ENOMEM;
    size_t per = 16;
    while (per * STRIPES < capacity)
        per *= 2;
    rl->per_stripe = per;
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&rl->stripes[i].mu, NULL);
        if ((rl->stripes[i].slots = calloc(per, sizeof(bucket_t))) == NULL) {
            pv_ratelimit_destroy(rl);
            return PV_ENOMEM;
        }
    }
    *out = rl;
    return 0;
}

void pv_ratelimit_destroy(pv_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        free(rl->stripes[i].slots);
        pthread_mutex_destroy(&rl->stripes[i].mu);
    }
    free(rl);
}

int pv_ratelimit_take(pv_ratelimit_t *rl, uint64_t key, double rate, double burst, double cost, int64_t now_us)
{
    if (rate <= 0)
        return 0;
    if (burst < cost)
        burst = cost;
    uint64_t h = mix(key);
    uint64_t tag = h | 1; /* never 0, so 0 marks an empty slot; keys are compared through their hash */
    stripe_t *s = &rl->stripes[h % STRIPES];
    size_t mask = rl->per_stripe - 1, base = (size_t)(h >> 8) & mask;
    int ret = 0;

    pthread_mutex_lock(&s->mu);
    bucket_t *b = NULL, *reusable = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        bucket_t *c = &s->slots[(base + i) & mask];
        if (c->key == tag) {
            b = c;
            break;
        }
        if (reusable == NULL && (c->key == 0 || c->full_at_us <= now_us))
            reusable = c;
        if (oldest == NULL || c->last_us < oldest->last_us)
            oldest = c;
    }
    if (b == NULL) {
        b = reusable ? reusable : oldest;
        b->key = tag;
        b->tokens = burst;
        b->last_us = now_us;
    }
    double elapsed = (double)(now_us - b->last_us) / 1e6;
    if (elapsed > 0)
        b->tokens = fmin(burst, b->tokens + elapsed * rate);
    b->last_us = now_us > b->last_us ? now_us : b->last_us;
    if (b->tokens >= cost) {
        b->tokens -= cost;
    } else {
        double wait = (cost - b->tokens) / rate;
        ret = (int)ceil(wait);
        if (ret < 1)
            ret = 1;
    }
    b->full_at_us = b->last_us + (int64_t)((burst - b->tokens) / rate * 1e6);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

int pv_ratelimit_peek(pv_ratelimit_t *rl, uint64_t key, double rate, double burst, double cost,
                      int64_t now_us)
{
    if (rate <= 0)
        return 0;
    if (burst < cost)
        burst = cost;
    uint64_t h = mix(key), tag = h | 1;
    stripe_t *s = &rl->stripes[h % STRIPES];
    size_t mask = rl->per_stripe - 1, base = (size_t)(h >> 8) & mask;
    double tokens = burst;

    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < PROBE; i++) {
        bucket_t *c = &s->slots[(base + i) & mask];
        if (c->key == tag) {
            double elapsed = (double)(now_us - c->last_us) / 1e6;
            tokens = fmin(burst, c->tokens + (elapsed > 0 ? elapsed * rate : 0));
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (tokens >= cost)
        return 0;
    int wait = (int)ceil((cost - tokens) / rate);
    return wait < 1 ? 1 : wait;
}
