/*
 * libFuzzer target for recognizer/image: any bytes go to pv_image_decode()
 * with a small pixel bound (so a fuzzer-made 6000x6000 header cannot stall
 * the run) and, on every other input, a DCT downscale. A successful decode
 * must describe a buffer that is really there; a failure must own nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "recognizer/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_image_opts_t opts = {.max_pixels = 1u << 20, .min_long_side = (size & 1) ? 16 : 0};
    pv_image_t img;
    char msg[256];
    int rc = pv_image_decode(&img, data, size, &opts, msg, sizeof(msg));
    if (rc == 0) {
        if (img.rgb == NULL || img.w < PV_IMAGE_MIN_SIDE || img.h < PV_IMAGE_MIN_SIDE ||
            img.stride < (size_t)img.w * 3 || img.orig_w < img.w || img.orig_h < img.h)
            abort();
        /* touch the first and last pixel so ASan sees the whole extent */
        volatile uint8_t sink =
            img.rgb[0] ^ img.rgb[(size_t)(img.h - 1) * img.stride + (size_t)img.w * 3 - 1];
        (void)sink;
    } else if (img.rgb != NULL || msg[0] == '\0') {
        abort();
    }
    pv_image_dispose(&img);
    pv_image_sniff(data, size);
    return 0;
}
