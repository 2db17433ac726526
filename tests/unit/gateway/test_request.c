/*
 * Query-string, RFC 3339 and multipart parsing of the recognition routes:
 * good inputs give the right values; every malformed class gives an error
 * naming the parameter, with the status the gateway will answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "common/error.h"
#include "gateway/request.h"

static int parse(pv_recog_params_t *p, const char *q, pv_req_error_t *e)
{
    memset(e, 0, sizeof(*e));
    return pv_params_parse(p, q, strlen(q), e);
}

static void test_params_defaults_and_values(void **state)
{
    (void)state;
    pv_recog_params_t p;
    pv_req_error_t e;
    assert_int_equal(parse(&p, "", &e), 0);
    assert_string_equal(p.location, "");
    assert_int_equal(p.ts_ms, -1);
    assert_int_equal(p.enroll, 1);
    assert_int_equal(p.detector, PV_DETECTOR_TINY);
    assert_int_equal(parse(&p, "location=store%2012&camera=door+1&ts=2026-12-04T10:00:00Z&enroll=never&detector=ssd", &e), 0);
    assert_string_equal(p.location, "store 12");
    assert_string_equal(p.camera, "door 1");
    assert_int_equal(p.ts_ms, 1796378400000LL);
    assert_int_equal(p.enroll, 0);
    assert_int_equal(p.detector, PV_DETECTOR_SSD);
    assert_int_equal(parse(&p, "location=M%C3%BCnchen&&enroll=auto", &e), 0);
    assert_string_equal(p.location, "M\xc3\xbcnchen");
}

static void test_params_errors(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        int status;
        const char *needle;
    } cases[] = {
        {"bogus=1", 400, "unknown query parameter \"bogus\""},
        {"location=a&location=b", 400, "given twice"},
        {"location", 400, "needs a value"},
        {"location=", 422, "location"},
        {"location=%zz", 400, "location"},
        {"location=%4", 400, "location"},
        {"camera=a%0Ab", 422, "camera"},
        {"camera=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 422, "camera"},
        {"ts=yesterday", 422, "ts"},
        {"ts=2026-02-30T00:00:00Z", 422, "ts"},
        {"ts=2026-12-04T10:00:00", 422, "ts"},
        {"enroll=sometimes", 422, "enroll"},
        {"enroll=never%00junk", 400, "enroll"},
        {"detector=ssd%00", 400, "detector"},
        {"detector=yolo", 422, "detector"},
        {"%ff%fe=1", 400, "unknown query parameter"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pv_recog_params_t p;
        pv_req_error_t e;
        assert_int_equal(parse(&p, cases[i].q, &e), PV_EINVAL);
        assert_int_equal(e.status, cases[i].status);
        if (strstr(e.text, cases[i].needle) == NULL)
            fail_msg("case %zu (%s): \"%s\" lacks \"%s\"", i, cases[i].q, e.text, cases[i].needle);
    }
    char longq[4000];
    memset(longq, 'a', sizeof(longq) - 1);
    longq[sizeof(longq) - 1] = '\0';
    pv_recog_params_t p;
    pv_req_error_t e;
    assert_int_equal(parse(&p, longq, &e), PV_EINVAL);
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ms;
    const char *ok[] = {"1970-01-01T00:00:00Z", "2024-02-29T23:59:59.999Z", "2026-12-04T11:30:00+01:30",
                        "2026-12-04t10:00:00.5z", "2026-12-04 10:00:00-00:00"};
    const int64_t want[] = {0, 1709251199999LL, 1796378400000LL, 1796378400500LL, 1796378400000LL};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(pv_rfc3339_parse(&ms, ok[i], strlen(ok[i])), 0);
        assert_int_equal(ms, want[i]);
    }
    const char *bad[] = {"", "2026-12-04", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z", "2026-12-04T24:00:00Z",
                         "2026-12-04T10:00:00+1:00", "2026-12-04T10:00:00.Z", "2026-12-04T10:00:00Zjunk",
                         "1969-12-31T23:59:59Z", "2026-12-04T10:00:00.1234567890Z",
                         /* before 1970 in UTC; the last one parsed to -1, which pv_params_parse reads as "no ts" */
                         "1970-01-01T00:00:00+00:01", "1970-01-01T00:00:59.999+00:01"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pv_rfc3339_parse(&ms, bad[i], strlen(bad[i])) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
}

static int body(const char *ct, const char *b, size_t blen, const uint8_t **img, size_t *ilen, pv_req_error_t *e)
{
    memset(e, 0, sizeof(*e));
    return pv_body_image(img, ilen, ct, ct ? strlen(ct) : 0, (const uint8_t *)b, blen, e);
}

static void test_body_raw_and_media_types(void **state)
{
    (void)state;
    const uint8_t *img;
    size_t n;
    pv_req_error_t e;
    assert_int_equal(body("image/jpeg", "\xff\xd8xyz", 5, &img, &n, &e), 0);
    assert_int_equal(n, 5);
    assert_int_equal(body("IMAGE/PNG; charset=x", "abc", 3, &img, &n, &e), 0);
    assert_int_equal(body("application/octet-stream", "abc", 3, &img, &n, &e), 0);
    assert_int_equal(body("text/plain", "abc", 3, &img, &n, &e), PV_EINVAL);
    assert_int_equal(e.status, 415);
    assert_int_equal(body("image/jpegx", "abc", 3, &img, &n, &e), PV_EINVAL);
    assert_int_equal(e.status, 415);
    assert_int_equal(body(NULL, "abc", 3, &img, &n, &e), PV_EINVAL);
    assert_int_equal(e.status, 415);
    assert_int_equal(body("image/jpeg", "", 0, &img, &n, &e), PV_EINVAL);
    assert_int_equal(e.status, 422);
}

static void test_body_multipart(void **state)
{
    (void)state;
    const uint8_t *img;
    size_t n;
    pv_req_error_t e;
    const char mp[] = "--XyZ\r\n"
                      "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                      "hello\r\n"
                      "--XyZ\r\n"
                      "Content-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
                      "Content-Type: image/jpeg\r\n\r\n"
                      "\xff\xd8\r\n--Xy not the boundary\xff\xd9\r\n"
                      "--XyZ--\r\n";
    assert_int_equal(body("multipart/form-data; boundary=XyZ", mp, sizeof(mp) - 1, &img, &n, &e), 0);
    assert_int_equal(n, strlen("\xff\xd8\r\n--Xy not the boundary\xff\xd9"));
    assert_memory_equal(img, "\xff\xd8\r\n--Xy", 8);
    assert_int_equal(body("multipart/form-data; boundary=\"XyZ\"", mp, sizeof(mp) - 1, &img, &n, &e), 0);

    static const struct {
        const char *ct, *b;
        int status;
    } bad[] = {
        {"multipart/form-data", "--a\r\n\r\nx\r\n--a--", 400},
        {"multipart/form-data; boundary=", "--a\r\n\r\nx\r\n--a--", 400},
        {"multipart/form-data; boundary=a", "no boundary here", 400},
        {"multipart/form-data; boundary=a", "--a\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc", 400},
        {"multipart/form-data; boundary=a", "--a\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nabc\r\n--a--", 422},
        {"multipart/form-data; boundary=a", "--a\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\r\n--a--", 422},
        {"multipart/form-data; boundary=a", "--a\r\nContent-Disposition: form-data; name=\"imagex\"\r\n\r\nabc\r\n--a--", 422},
        {"multipart/form-data; boundary=a", "--aXX", 400},
        {"multipart/form-data; boundary=a", "--a\r\nno header end", 400},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = body(bad[i].ct, bad[i].b, strlen(bad[i].b), &img, &n, &e);
        if (r != PV_EINVAL || e.status != bad[i].status)
            fail_msg("case %zu: got %d status %d (%s)", i, r, e.status, e.text);
    }
}

static void test_bearer_key(void **state)
{
    (void)state;
    const char *key;
    size_t len;
    const char *v = "bEaReR   pvk_abc  ";
    assert_int_equal(pv_bearer_key(&key, &len, v, strlen(v)), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(key, "pvk_abc", 7);
    v = "Bearer ";
    assert_int_equal(pv_bearer_key(&key, &len, v, strlen(v)), 0);
    assert_int_equal(len, 0);
    char longv[PV_AUTH_HEADER_MAX + 2];
    memset(longv, 'k', sizeof(longv));
    memcpy(longv, "Bearer ", 7);
    assert_int_equal(pv_bearer_key(&key, &len, longv, PV_AUTH_HEADER_MAX), 0);
    assert_int_equal(pv_bearer_key(&key, &len, longv, PV_AUTH_HEADER_MAX + 1), PV_EINVAL);
    const char *bad[] = {"", "Bearer", "Basic dXNlcjpwYXNz", "Bearerpvk_abc", " Bearer pvk_abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pv_bearer_key(&key, &len, bad[i], strlen(bad[i])) != PV_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_defaults_and_values), cmocka_unit_test(test_params_errors),
        cmocka_unit_test(test_rfc3339),                    cmocka_unit_test(test_body_raw_and_media_types),
        cmocka_unit_test(test_body_multipart),             cmocka_unit_test(test_bearer_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
