/*
 * HTTP response helpers for the gateway: JSON bodies, the error object
 * {"error":{"code":...,"message":...}}, the PV_E* → status table (the one
 * place that maps codes to statuses) and the per-request x-request-id.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/error.h"
#include "gateway/internal.h"

#define REQUEST_ID_MAX 64

static int valid_request_id(const char *s, size_t len)
{
    if (len == 0 || len > REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

/* Echo a well-formed client request id (for tracing across systems), else mint one. */
void pv_http_begin(h2o_req_t *req)
{
    static const char name[] = "x-request-id";
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT(name), -1);
    h2o_iovec_t id;
    if (i >= 0 && valid_request_id(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        id = req->headers.entries[i].value;
    } else {
        pv_gw_thread_t *t = pv_gw_thread(req);
        id.base = h2o_mem_alloc_pool(&req->pool, 32);
        id.len = (size_t)snprintf(id.base, 32, "%s-%02x-%llx", t->gw->id_prefix, t->index & 0xff, ++t->request_seq);
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT(name), 0, NULL, id.base, id.len);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 207: return "Multi-Status";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

int pv_http_send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t body = h2o_strdup(&req->pool, json, len);
    req->res.status = status;
    req->res.reason = reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, 1);
    return 0;
}

int pv_http_send_error(h2o_req_t *req, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_t *obj = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    int ret;
    if (text != NULL)
        ret = pv_http_send_json(req, status, text, strlen(text));
    else
        ret = pv_http_send_json(req, 500, H2O_STRLIT("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}"));
    free(text);
    json_decref(obj);
    return ret;
}

int pv_http_send_code(h2o_req_t *req, int err, const char *message)
{
    int status;
    switch (err) {
    case PV_EINVAL:
    case PV_EFORMAT:
        status = 400;
        break;
    case PV_EAUTH:
    case PV_EREVOKED:
        status = 401;
        break;
    case PV_ENOTFOUND:
        status = 404;
        break;
    case PV_EEXIST:
        status = 409;
        break;
    case PV_ELIMIT:
        status = 413;
        break;
    case PV_EUNAVAIL:
        status = 503;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        break;
    default:
        status = 500;
        break;
    }
    return pv_http_send_error(req, status, status == 500 ? "internal" : pv_errname(err), "%s",
                              message ? message : pv_strerror(err));
}
