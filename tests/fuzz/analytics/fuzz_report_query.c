/*
 * libFuzzer target for the report endpoints' query strings
 * (analytics/reports.c pv_report_query_parse, which GET /v1/analytics/<kind>
 * calls on the loop before any PostgreSQL work) and the kind lookup of the
 * path's last segment. Input: one byte choosing the kind (modulo 5), then the
 * query string. An accepted query must hold only values the SQL may see:
 * 0 <= from < to, at most 366 days apart, k 0 or 2..1000, a bucket of hour,
 * day or week, a time zone and a location without control characters
 * within their sizes; a refusal must be a 400 or 422 with a reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "analytics/reports.h"

static void check_text(const char *s, size_t max, int allow_empty)
{
    size_t n = strnlen(s, max + 1);
    if (n > max || (n == 0 && !allow_empty))
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    pv_report_kind_t kind = (pv_report_kind_t)(data[0] % 5);
    const char *q = (const char *)data + 1;
    size_t len = size - 1;
    pv_report_query_t out;
    pv_report_error_t err = {0, "", ""};
    if (pv_report_query_parse(&out, kind, q, len, &err) != 0) {
        if ((err.status != 400 && err.status != 422) || err.text[0] == '\0')
            abort();
    } else {
        if (out.kind != kind || out.from_ms < 0 || out.to_ms <= out.from_ms ||
            out.to_ms - out.from_ms > (int64_t)PV_REPORT_RANGE_MAX_DAYS * 86400000)
            abort();
        if (out.k != 0 && (out.k < PV_REPORT_K_MIN || out.k > PV_REPORT_K_MAX))
            abort();
        if (strcmp(out.bucket, "hour") != 0 && strcmp(out.bucket, "day") != 0 &&
            strcmp(out.bucket, "week") != 0)
            abort();
        if (kind != PV_REPORT_TIMESERIES && strcmp(out.bucket, "day") != 0)
            abort();
        check_text(out.tz, PV_REPORT_TZ_MAX, 0);
        check_text(out.location, PV_REPORT_LOCATION_MAX, !out.has_location);
        if (!out.has_location && out.location[0] != '\0')
            abort();
    }
    /* the same bytes as a path segment: a kind is one of the five names exactly */
    int k = pv_report_kind(q, len);
    static const char *names[] = {"summary", "timeseries", "retention", "frequency", "conversion"};
    if (k >= 0 && (k > 4 || strlen(names[k]) != len || memcmp(names[k], q, len) != 0))
        abort();
    return 0;
}
