/*
 * Query-string, RFC 3339 and multipart/form-data parsing for the recognition
 * routes. Everything is bounded by the input length; nothing allocates.
 * Multipart parsing follows RFC 7578 / RFC 2046: the boundary comes from the
 * Content-Type, parts are delimited by CRLF "--" boundary, and each part's
 * headers end at an empty line.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "common/codec.h"
#include "common/error.h"
#include "gateway/request.h"

#define MULTIPART_MAX_PARTS 16
#define PART_HEADERS_MAX 4096

static int fail(pv_req_error_t *err, int status, const char *fmt, const char *what)
{
    err->status = status;
    snprintf(err->text, sizeof(err->text), fmt, what);
    return PV_EINVAL;
}

/* Labels: 1..64 bytes, printable ASCII or UTF-8 continuation/lead bytes, no control characters. */
static int label_ok(const char *s, int len)
{
    if (len <= 0 || len > PV_LABEL_MAX)
        return 0;
    for (int i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

int pv_params_parse(pv_recog_params_t *out, const char *query, size_t len, pv_req_error_t *err)
{
    enum { P_LOCATION = 1, P_CAMERA = 2, P_TS = 4, P_ENROLL = 8, P_DETECTOR = 16 };
    unsigned seen = 0;
    memset(out, 0, sizeof(*out));
    out->ts_ms = -1;
    out->enroll = 1;
    out->detector = PV_DETECTOR_TINY;
    if (len > 2048)
        return fail(err, 400, "%s", "query string too long");

    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        if (end == i) { /* tolerate empty segments such as "a=1&&b=2" */
            i = end + 1;
            continue;
        }
        const char *eq = memchr(query + i, '=', end - i);
        size_t nlen = eq ? (size_t)(eq - (query + i)) : end - i;
        char name[32], value[PV_LABEL_MAX * 3 + 1];
        int vlen;
        if (pv_url_decode(name, sizeof(name), query + i, nlen) < 0)
            return fail(err, 400, "%s", "malformed query parameter name");
        if (eq == NULL)
            return fail(err, 400, "query parameter \"%.31s\" needs a value", name);
        if ((vlen = pv_url_decode(value, sizeof(value), eq + 1, (size_t)(query + end - eq - 1))) < 0)
            return fail(err, 400, "query parameter \"%.31s\": malformed or too long value", name);
        unsigned bit;
        if (strcmp(name, "location") == 0) {
            bit = P_LOCATION;
            if (!label_ok(value, vlen))
                return fail(err, 422, "%s", "location: 1 to 64 bytes, no control characters");
            memcpy(out->location, value, (size_t)vlen + 1);
        } else if (strcmp(name, "camera") == 0) {
            bit = P_CAMERA;
            if (!label_ok(value, vlen))
                return fail(err, 422, "%s", "camera: 1 to 64 bytes, no control characters");
            memcpy(out->camera, value, (size_t)vlen + 1);
        } else if (strcmp(name, "ts") == 0) {
            bit = P_TS;
            if (pv_rfc3339_parse(&out->ts_ms, value, (size_t)vlen) != 0)
                return fail(err, 422, "%s", "ts: expected an RFC 3339 time such as 2026-12-04T10:00:00Z");
        } else if (strcmp(name, "enroll") == 0) {
            bit = P_ENROLL;
            if (strcmp(value, "auto") == 0)
                out->enroll = 1;
            else if (strcmp(value, "never") == 0)
                out->enroll = 0;
            else
                return fail(err, 422, "%s", "enroll: expected auto or never");
        } else if (strcmp(name, "detector") == 0) {
            bit = P_DETECTOR;
            if (strcmp(value, "tiny") == 0)
                out->detector = PV_DETECTOR_TINY;
            else if (strcmp(value, "ssd") == 0)
                out->detector = PV_DETECTOR_SSD;
            else
                return fail(err, 422, "%s", "detector: expected tiny or ssd");
        } else {
            return fail(err, 400, "unknown query parameter \"%.31s\"", name);
        }
        if (seen & bit)
            return fail(err, 400, "query parameter \"%.31s\" given twice", name);
        seen |= bit;
        i = end + 1;
    }
    return 0;
}

static const uint8_t *memmem_bounded(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t nlen)
{
    if (nlen == 0 || hlen < nlen)
        return NULL;
    return memmem(hay, hlen, needle, nlen);
}

/* Extracts boundary=... from a multipart Content-Type (quoted or token). */
static int get_boundary(char *out, size_t cap, const char *ct, size_t len)
{
    for (size_t i = 0; i + 9 <= len; i++) {
        if (strncasecmp(ct + i, "boundary=", 9) != 0 || (i > 0 && ct[i - 1] != ';' && ct[i - 1] != ' '))
            continue;
        const char *v = ct + i + 9, *end = ct + len;
        size_t n = 0;
        if (v < end && *v == '"') {
            v++;
            while (v + n < end && v[n] != '"')
                n++;
            if (v + n >= end)
                return -1;
        } else {
            while (v + n < end && v[n] != ';' && v[n] != ' ')
                n++;
        }
        if (n == 0 || n > 70 || n + 1 > cap) /* RFC 2046: 1..70 characters */
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return (int)n;
    }
    return -1;
}

/* Is this part's Content-Disposition form-data with name="image"? */
static int part_is_image(const uint8_t *hdr, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const uint8_t *eol = memmem_bounded(hdr + i, len - i, (const uint8_t *)"\r\n", 2);
        size_t llen = eol ? (size_t)(eol - (hdr + i)) : len - i;
        const char *line = (const char *)hdr + i;
        if (llen > 20 && strncasecmp(line, "content-disposition:", 20) == 0) {
            /* look for name="image" as a whole parameter */
            for (size_t j = 20; j + 12 <= llen; j++) {
                if (strncasecmp(line + j, "name=\"image\"", 12) == 0 &&
                    (line[j - 1] == ' ' || line[j - 1] == ';'))
                    return 1;
                if (strncasecmp(line + j, "name=image", 10) == 0 &&
                    (line[j - 1] == ' ' || line[j - 1] == ';') &&
                    (j + 10 == llen || line[j + 10] == ';' || line[j + 10] == ' '))
                    return 1;
            }
            return 0;
        }
        i += llen + 2;
    }
    return 0;
}

static int multipart_image(const uint8_t **image, size_t *image_len, const char *ct, size_t ct_len,
                           const uint8_t *body, size_t body_len, pv_req_error_t *err)
{
    char boundary[80];
    uint8_t delim[84];
    int blen = get_boundary(boundary, sizeof(boundary), ct, ct_len);
    if (blen < 0)
        return fail(err, 400, "%s", "multipart/form-data without a valid boundary");
    /* the first delimiter may open the body without a preceding CRLF */
    delim[0] = '\r';
    delim[1] = '\n';
    delim[2] = delim[3] = '-';
    memcpy(delim + 4, boundary, (size_t)blen);
    size_t dlen = (size_t)blen + 4;
    const uint8_t *p;
    if (body_len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0)
        p = body + dlen - 2;
    else if ((p = memmem_bounded(body, body_len, delim, dlen)) != NULL)
        p += dlen;
    else
        return fail(err, 400, "%s", "multipart body has no boundary line");
    const uint8_t *end = body + body_len;
    for (int part = 0; part < MULTIPART_MAX_PARTS; part++) {
        /* after a delimiter: "--" closes the body, else CRLF starts a part */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return fail(err, 400, "%s", "malformed multipart delimiter line");
        p += 2;
        const uint8_t *hdr_end =
            memmem_bounded(p, (size_t)(end - p) < PART_HEADERS_MAX ? (size_t)(end - p) : PART_HEADERS_MAX,
                           (const uint8_t *)"\r\n\r\n", 4);
        const uint8_t *content;
        size_t hdr_len;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') { /* a part with no headers */
            hdr_len = 0;
            content = p + 2;
        } else if (hdr_end == NULL) {
            return fail(err, 400, "%s", "multipart part headers missing or too long");
        } else {
            hdr_len = (size_t)(hdr_end - p);
            content = hdr_end + 4;
        }
        const uint8_t *next = memmem_bounded(content, (size_t)(end - content), delim, dlen);
        if (next == NULL)
            return fail(err, 400, "%s", "multipart body is not closed by its boundary");
        if (part_is_image(p, hdr_len)) {
            if (next == content)
                return fail(err, 422, "%s", "the image part is empty");
            *image = content;
            *image_len = (size_t)(next - content);
            return 0;
        }
        p = next + dlen;
    }
    return fail(err, 422, "%s", "multipart/form-data has no part named \"image\"");
}

static int media_is(const char *ct, size_t len, const char *type)
{
    size_t n = strlen(type);
    if (len < n || strncasecmp(ct, type, n) != 0)
        return 0;
    return len == n || ct[n] == ';' || ct[n] == ' ';
}

int pv_body_image(const uint8_t **image, size_t *image_len, const char *content_type, size_t ct_len,
                  const uint8_t *body, size_t body_len, pv_req_error_t *err)
{
    if (content_type == NULL || ct_len == 0)
        return fail(err, 415, "%s",
                    "Content-Type is required: image/jpeg, image/png, image/webp or multipart/form-data");
    if (media_is(content_type, ct_len, "multipart/form-data"))
        return multipart_image(image, image_len, content_type, ct_len, body, body_len, err);
    if (!media_is(content_type, ct_len, "image/jpeg") && !media_is(content_type, ct_len, "image/png") &&
        !media_is(content_type, ct_len, "image/webp") &&
        !media_is(content_type, ct_len, "application/octet-stream"))
        return fail(
            err, 415, "%s",
            "unsupported Content-Type: send image/jpeg, image/png, image/webp or multipart/form-data");
    if (body_len == 0)
        return fail(err, 422, "%s", "the request body is empty");
    *image = body;
    *image_len = body_len;
    return 0;
}

int pv_bearer_key(const char **key, size_t *key_len, const char *value, size_t len)
{
    if (len > PV_AUTH_HEADER_MAX || len < 7 || strncasecmp(value, "bearer ", 7) != 0)
        return PV_EINVAL;
    const char *k = value + 7;
    size_t n = len - 7;
    while (n > 0 && *k == ' ')
        k++, n--;
    while (n > 0 && k[n - 1] == ' ')
        n--;
    *key = k;
    *key_len = n;
    return 0;
}
