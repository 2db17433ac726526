/*
 * Internal: reader of tfjs weight manifests (model/<name>-weights_manifest.json)
 * and their .bin shards. A uint8-quantized tensor stays uint8 until a net
 * takes it (as floats, or as bytes + table with wmap_take_u8);
 * int32 tensors are skipped (face-api discards them). A net takes the
 * tensors it needs by name with the shape it expects; anything missing,
 * short, trailing or mismatched is PV_EFORMAT with a message naming it.
 */
#ifndef PV_MODELS_WEIGHTS_H
#define PV_MODELS_WEIGHTS_H

#include <stddef.h>

#define WMAP_MAX_RANK 4

typedef struct {
    char *name;
    int rank;
    int shape[WMAP_MAX_RANK];
    size_t numel;
    float *data;      /* float32 and uint16-quantized tensors; NULL for skipped (int32) ones or once taken */
    unsigned char *q; /* uint8-quantized tensors: the raw bytes (until taken) */
    double qscale, qmin;
} wtensor_t;

typedef struct {
    size_t n;
    wtensor_t *t;
    char *msg; /* caller's message buffer, may be NULL */
    size_t msglen;
} wmap_t;

/* Loads `<dir>/<model>-weights_manifest.json` and its shards. msg (may be
 * NULL) receives a description of the first error. */
int wmap_load(wmap_t *m, const char *dir, const char *model, char *msg, size_t msglen);
/* The same from memory: manifest text and the shards' bytes concatenated
 * (the manifest's paths are checked but not read). For tests and fuzzing. */
int wmap_load_mem(wmap_t *m, const char *text, size_t text_len, const unsigned char *bin, size_t bin_len,
                  char *msg, size_t msglen);
void wmap_dispose(wmap_t *m);
/* Moves the float data of tensor `name` into *out (caller frees), after
 * checking it has exactly `rank` dims equal to the following ints. */
int wmap_take(float **out, wmap_t *m, const char *name, int rank, ...);
/* Like wmap_take for a uint8-quantized tensor, which stays quantized: moves
 * its bytes into *q (caller frees) and fills lut[v] = (float)((double)v *
 * scale + min), so lut[q[i]] is bit for bit what wmap_take would give.
 * PV_EFORMAT if the tensor is not uint8-quantized. */
int wmap_take_u8(unsigned char **q, float lut[256], wmap_t *m, const char *name, int rank, ...);
/* Formats an error into the map's message buffer and returns `err`. */
int wmap_fail(wmap_t *m, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
