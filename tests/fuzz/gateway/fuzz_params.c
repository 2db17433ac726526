/*
 * libFuzzer target for the recognition routes' query string
 * (gateway/request.c pv_params_parse) and the RFC 3339 parser it uses. The
 * input is the query string without '?'. An accepted query must hold only
 * values the routes can use: labels of 1..64 bytes without control
 * characters, a time at or after 1970, enroll 0/1, a known detector, and
 * no %00 (a decoded NUL would cut a value short); a refusal must be a 400 or
 * 422 with a reason. The whole input as one RFC 3339 time must, when
 * accepted, lie between 1970 and the year 9999.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/codec.h"
#include "gateway/request.h"

#define YEAR_10000_MS 253402300800000LL /* 10000-01-01T00:00:00Z, first time 4 digits cannot name */

static void check_label(const char *s)
{
    size_t n = strlen(s);
    if (n > PV_LABEL_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pv_recog_params_t p;
    pv_req_error_t err = {"", 0};
    if (pv_params_parse(&p, (const char *)data, size, &err) != 0) {
        if ((err.status != 400 && err.status != 422) || err.text[0] == '\0')
            abort();
    } else {
        /* a decoded NUL would cut a value short ("never%00junk" read as "never") */
        for (size_t i = 0; i + 2 < size; i++)
            if (data[i] == '%' && data[i + 1] == '0' && data[i + 2] == '0')
                abort();
        check_label(p.location);
        check_label(p.camera);
        if (p.ts_ms != -1 && (p.ts_ms < 0 || p.ts_ms >= YEAR_10000_MS + 86400000LL))
            abort();
        if ((p.enroll != 0 && p.enroll != 1) ||
            (p.detector != PV_DETECTOR_TINY && p.detector != PV_DETECTOR_SSD))
            abort();
    }
    /* the whole input as one time: accepted means within 1970..9999 (offsets move it by < 1 day) */
    int64_t ms;
    if (pv_rfc3339_parse(&ms, (const char *)data, size) == 0 && (ms < 0 || ms >= YEAR_10000_MS + 86400000LL))
        abort();
    return 0;
}
