/*
 * Parsing of what a client sends with an image: the query string of the
 * recognition routes and the body (raw image or multipart/form-data field
 * `image`). Pure functions over byte ranges, no h2o types, so they are unit
 * tested and fuzzed on their own. Every failure names the parameter or part
 * at fault in `err`.
 */
#ifndef PV_GATEWAY_REQUEST_H
#define PV_GATEWAY_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include "common/codec.h"     /* pv_rfc3339_parse */
#include "recognizer/face.h" /* pv_detector_t */

#define PV_LABEL_MAX 64 /* location and camera labels, bytes */


typedef struct {
    char location[PV_LABEL_MAX + 1]; /* "" when absent */
    char camera[PV_LABEL_MAX + 1];
    int64_t ts_ms;   /* event time, unix milliseconds; -1 when absent (caller uses now) */
    int enroll;      /* 1 = auto (default), 0 = never */
    pv_detector_t detector;
} pv_recog_params_t;

typedef struct {
    char text[200];
    int status; /* HTTP status to answer: 400 malformed, 422 well-formed but unacceptable, 415 media type */
} pv_req_error_t;

/*
 * Parses a query string (without the '?'), percent-decoding names and values.
 * Unknown or repeated parameters are errors (a typo must not be ignored).
 * Returns 0, or PV_EINVAL with err filled.
 */
int pv_params_parse(pv_recog_params_t *out, const char *query, size_t len, pv_req_error_t *err);

/*
 * Finds the image in a request body. content_type is the request's
 * Content-Type header (may be NULL). A raw body is accepted for image/jpeg,
 * image/png, image/webp and application/octet-stream; multipart/form-data
 * yields the part named "image". *image points into body (borrowed).
 * Returns 0, or PV_EINVAL with err filled (415 for other media types).
 */
int pv_body_image(const uint8_t **image, size_t *image_len, const char *content_type, size_t ct_len,
                  const uint8_t *body, size_t body_len, pv_req_error_t *err);

#define PV_AUTH_HEADER_MAX 256 /* longest Authorization header value accepted, bytes */

/*
 * The API key in an Authorization header value "Bearer <key>" (scheme
 * case-insensitive, RFC 7235; spaces around the key ignored). *key points
 * into value (borrowed). Returns 0, or PV_EINVAL when the value is longer
 * than PV_AUTH_HEADER_MAX or not of that form.
 */
int pv_bearer_key(const char **key, size_t *key_len, const char *value, size_t len);

#endif
