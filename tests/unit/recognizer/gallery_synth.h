/*
 * Synthetic face-like embeddings for the gallery tests and benchmark.
 * Identity centres = a common mean (norm 1.36) + an anisotropic Gaussian
 * (per-dimension scale falling as (j+1)^-0.35), scaled so that centres are
 * about 0.71 apart at the median like the real descriptors of
 * ../shared/golden (0.44-0.91, norms 1.39-1.50); exemplars of one identity
 * add isotropic noise so they lie about 0.2-0.45 from each other. Uniform
 * vectors on a sphere would be far harder than faces and mislead.
 * Everything is a pure function of (seed, identity, exemplar).
 */
#ifndef PV_TESTS_GALLERY_SYNTH_H
#define PV_TESTS_GALLERY_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t s;
} synth_rng_t;

static inline uint64_t synth_next(synth_rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline double synth_unif(synth_rng_t *r)
{
    return ((double)(synth_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static inline double synth_gauss(synth_rng_t *r)
{
    double u = synth_unif(r), v = synth_unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* The common mean direction, scaled to norm 1.36. */
static inline void synth_mean(float *m, size_t dim, uint64_t seed)
{
    synth_rng_t r = {seed ^ 0xA5A5A5A5ull};
    double n = 0;
    for (size_t j = 0; j < dim; j++) {
        m[j] = (float)synth_gauss(&r);
        n += (double)m[j] * m[j];
    }
    for (size_t j = 0; j < dim; j++)
        m[j] = (float)(m[j] * 1.36 / sqrt(n));
}

static inline void synth_centre(float *c, size_t dim, uint64_t seed, uint64_t id)
{
    synth_rng_t r = {seed * 0x100000001B3ull + id * 0x9E3779B97F4A7C15ull + 1};
    double h = 0;
    for (size_t j = 0; j < dim; j++)
        h += pow((double)(j + 1), -0.7);
    /* centres 0.60 apart at the median; with the exemplar noise, exemplars of
     * different identities end up about 0.71 apart */
    double s = 0.60 / sqrt(2.0 * h);
    synth_mean(c, dim, seed);
    for (size_t j = 0; j < dim; j++)
        c[j] += (float)(s * synth_gauss(&r) * pow((double)(j + 1), -0.35));
}

/* Exemplar e of identity id: its centre plus noise with an identity-specific
 * spread, so two exemplars are 0.2-0.45 apart. */
static inline void synth_exemplar(float *v, size_t dim, uint64_t seed, uint64_t id, uint64_t e)
{
    synth_rng_t r = {seed * 0x100000001B3ull + id * 0x9E3779B97F4A7C15ull + 7};
    double spread = 0.65 + 0.75 * synth_unif(&r); /* per identity */
    synth_centre(v, dim, seed, id);
    synth_rng_t n = {seed ^ (id * 0xD6E8FEB86659FD93ull) ^ ((e + 1) * 0xC2B2AE3D27D4EB4Full)};
    double sigma = spread * 0.32 / sqrt(2.0 * (double)dim);
    for (size_t j = 0; j < dim; j++)
        v[j] += (float)(sigma * synth_gauss(&n));
}

#endif
