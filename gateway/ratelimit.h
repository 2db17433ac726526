/*
 * Token-bucket rate limiting keyed by a 64-bit id (an API key id, or a
 * client address for failed authentications). Memory is fixed at creation: a bucket that has refilled
 * completely carries no state, so it may be evicted and recreated at will.
 * Thread-safe (striped locks); O(1) per call.
 */
#ifndef PV_GATEWAY_RATELIMIT_H
#define PV_GATEWAY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct pv_ratelimit pv_ratelimit_t;

/* Creates a limiter holding up to `capacity` live buckets (rounded up). */
int pv_ratelimit_create(pv_ratelimit_t **out, size_t capacity);
void pv_ratelimit_destroy(pv_ratelimit_t *rl);

/*
 * Takes `cost` tokens from key's bucket (refilled at `rate` tokens/s up to
 * `burst`). Returns 0 when allowed; otherwise the whole seconds (>= 1) after
 * which the request would be allowed (the Retry-After value). rate <= 0
 * means unlimited.
 */
int pv_ratelimit_take(pv_ratelimit_t *rl, uint64_t key, double rate, double burst, double cost, int64_t now_us);

/*
 * What pv_ratelimit_take(rl, key, rate, burst, cost, now_us) would answer,
 * without taking anything or creating a bucket: 0 when `cost` tokens are
 * there (an unknown key has a full bucket), else the Retry-After seconds.
 */
int pv_ratelimit_peek(pv_ratelimit_t *rl, uint64_t key, double rate, double burst, double cost,
                      int64_t now_us);

#endif
