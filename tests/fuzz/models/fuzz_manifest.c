/*
 * libFuzzer target for the tfjs weight-manifest reader (models/weights.c):
 * the input is the manifest text, a NUL byte, then the shards' bytes, fed to
 * wmap_load_mem(). On success every tensor is taken back with its own shape
 * (and once with a wrong one), so the shape checks run on fuzzed metadata.
 * Any outcome but a crash, leak or sanitizer report is fine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "models/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul != NULL ? (size_t)(nul - data) : size;
    const unsigned char *bin = nul != NULL ? nul + 1 : data + size;
    size_t bin_len = nul != NULL ? size - text_len - 1 : 0;
    char msg[256];
    wmap_t m;

    if (wmap_load_mem(&m, (const char *)data, text_len, bin, bin_len, msg, sizeof(msg)) != 0)
        return 0;
    for (size_t i = 0; i < m.n; i++) {
        wtensor_t *t = &m.t[i];
        float *out = NULL;
        if (t->data == NULL && t->q == NULL)
            continue;
        /* a wrong rank first: must fail and leave the tensor in place */
        if (wmap_take(&out, &m, t->name, 1, (int)t->numel + 1) == 0)
            __builtin_trap();
        int s[WMAP_MAX_RANK] = {0};
        for (int d = 0; d < t->rank; d++)
            s[d] = t->shape[d];
        /* uint8 tensors: every other one is taken as bytes + table, the rest as floats */
        unsigned char *q = NULL;
        float lut[256];
        if (t->q != NULL && i % 2 == 0 &&
            wmap_take_u8(&q, lut, &m, t->name, t->rank, s[0], s[1], s[2], s[3]) == 0) {
            volatile float sink = t->numel > 0 ? lut[q[t->numel - 1]] : 0.0f;
            (void)sink;
            free(q);
        } else if (wmap_take(&out, &m, t->name, t->rank, s[0], s[1], s[2], s[3]) == 0) {
            volatile float sink = t->numel > 0 ? out[t->numel - 1] : 0.0f;
            (void)sink;
            free(out);
        }
    }
    wmap_dispose(&m);
    return 0;
}
