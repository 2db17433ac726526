/*
 * GET /openapi.json: the API reference (gateway/openapi.json), embedded in
 * the binary at build time (openapi_doc.c is generated from it by
 * embed.cmake), so it is served the same from the build tree and from an
 * installed binary. Public and cacheable: a strong ETag computed once from
 * the bytes, If-None-Match answers 304.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "gateway/internal.h"

/* openapi_doc.c (generated): the document's bytes, not NUL-terminated. */
extern const unsigned char pv_openapi_doc[];
extern const size_t pv_openapi_doc_len;

static char etag[24]; /* "\"" + 16 hex + "\"" */
static pthread_once_t etag_once = PTHREAD_ONCE_INIT;

/* FNV-1a 64: enough to tell versions of one document apart. */
static void etag_init(void)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < pv_openapi_doc_len; i++)
        h = (h ^ pv_openapi_doc[i]) * 0x100000001b3ULL;
    snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)h);
}

void pv_openapi_get(const char **doc, size_t *len)
{
    *doc = (const char *)pv_openapi_doc;
    *len = pv_openapi_doc_len;
}

/* Whether an If-None-Match value lists our ETag (or is "*"). */
static int etag_matches(h2o_iovec_t v)
{
    const size_t n = strlen(etag);
    if (h2o_memis(v.base, v.len, H2O_STRLIT("*")))
        return 1;
    for (size_t i = 0; i + n <= v.len; i++)
        if (memcmp(v.base + i, etag, n) == 0)
            return 1;
    return 0;
}

int pv_route_openapi(h2o_req_t *req, const pv_auth_t *auth, int route)
{
    (void)auth;
    (void)route;
    static h2o_generator_t generator = {NULL, NULL};
    pthread_once(&etag_once, etag_init);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, etag, strlen(etag));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("public, max-age=3600"));
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i >= 0 && etag_matches(req->headers.entries[i].value)) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, "", 0);
        return PV_ROUTE_DONE;
    }
    h2o_iovec_t body = h2o_iovec_init(pv_openapi_doc, pv_openapi_doc_len);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, 1);
    return PV_ROUTE_DONE;
}
