/*
 * libFuzzer target for the recognition routes' body parsing
 * (gateway/request.c pv_body_image: raw image media types and
 * multipart/form-data). Input: the Content-Type header value, a NUL, then
 * the body (no NUL: the whole input is the body of a multipart request whose
 * boundary is "b"). An accepted body must yield a non-empty image lying
 * inside the body; a refusal must be a 400, 415 or 422 with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *ct = "multipart/form-data; boundary=b";
    size_t ct_len = strlen(ct);
    const uint8_t *body = data, *nul = memchr(data, '\0', size);
    size_t body_len = size;
    if (nul != NULL) {
        ct = (const char *)data;
        ct_len = (size_t)(nul - data);
        body = nul + 1;
        body_len = size - ct_len - 1;
    }
    /* copies, so ASan sees any read past either end */
    char *ctc = malloc(ct_len ? ct_len : 1);
    uint8_t *bc = malloc(body_len ? body_len : 1);
    if (ctc == NULL || bc == NULL)
        abort();
    memcpy(ctc, ct, ct_len);
    memcpy(bc, body, body_len);
    const uint8_t *img = NULL;
    size_t img_len = 0;
    pv_req_error_t err = {"", 0};
    if (pv_body_image(&img, &img_len, ctc, ct_len, bc, body_len, &err) == 0) {
        if (img == NULL || img_len == 0 || img < bc || img_len > body_len ||
            (size_t)(img - bc) > body_len - img_len)
            abort();
    } else if ((err.status != 400 && err.status != 415 && err.status != 422) || err.text[0] == '\0') {
        abort();
    }
    free(ctc);
    free(bc);
    return 0;
}
