/*
 * The web console's static files (GET/HEAD of any path outside /v1/ that no
 * route serves): the files the set-up built into --console-dir (default
 * <bin>/../console, i.e. build/console), "/" being index.html.
 *
 * Only plain names are served: a path is at most PATH_MAX_LEN bytes of
 * [A-Za-z0-9._-] segments separated by single slashes, no segment starting
 * with a dot, no percent escape, at most DEPTH_MAX segments. Each segment is
 * opened relative to the previous one with O_NOFOLLOW, so a symbolic link is
 * never followed (in or out of the directory) and ".." cannot occur. Only
 * regular files up to FILE_MAX bytes.
 *
 * Every answer carries a strict Content-Security-Policy (no inline script or
 * style, everything from 'self', images also from blob:/data: for the
 * previews, no framing), nosniff and no-referrer. Names under assets/ carry
 * a content hash (the bundler's) and are cached for a year as immutable;
 * everything else is revalidated (no-cache) through its ETag (size and
 * modification time).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "gateway/internal.h"

#define PATH_MAX_LEN 200
#define DEPTH_MAX 4
#define FILE_MAX (16 * 1024 * 1024)

#define CSP                                                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' " \
    "blob:; "                                                                                                \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "          \
    "frame-ancestors 'none'"

static int root_fd = -1;
static pthread_once_t root_once = PTHREAD_ONCE_INIT;
static const char *root_conf;

/* Opens the console directory once (for the process): --console-dir, or <bin>/../console. */
static void root_open(void)
{
    char dir[4200], exe[4096];
    const char *d = root_conf;
    if (d != NULL && strcmp(d, "off") == 0)
        return;
    if (d == NULL || d[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(dir, sizeof(dir), "%s/../console", exe);
        d = dir;
    }
    root_fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        PV_LOG(PV_LOG_WARN, "web console not available", "dir=\"%s\" err=\"%s\" hint=\"run deploy/setup.sh\"",
               d, strerror(errno));
}

/* Whether p (without the leading slash) is a name we may serve (see the top comment). */
int pv_static_path_ok(const char *p, size_t len)
{
    if (len == 0 || len > PATH_MAX_LEN)
        return 0;
    int depth = 1;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        int seg_start = i == 0 || p[i - 1] == '/';
        if (c == '/') {
            if (seg_start || i + 1 == len || ++depth > DEPTH_MAX)
                return 0; /* empty segment, trailing slash, too deep */
            continue;
        }
        if (seg_start && c == '.')
            return 0; /* "..", ".hidden" */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Opens rel (already checked) under root_fd without following any link; -1 with errno. */
static int open_beneath(const char *rel)
{
    char buf[PATH_MAX_LEN + 1];
    snprintf(buf, sizeof(buf), "%s", rel);
    int dir = root_fd, fd = -1;
    char *seg = buf;
    for (;;) {
        char *slash = strchr(seg, '/');
        if (slash != NULL)
            *slash = '\0';
        fd = openat(dir, seg, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (slash != NULL ? O_DIRECTORY : 0));
        if (dir != root_fd)
            close(dir);
        if (fd < 0 || slash == NULL)
            return fd;
        dir = fd;
        seg = slash + 1;
    }
}

static void add(h2o_req_t *req, const h2o_token_t *t, const char *v)
{
    h2o_add_header(&req->pool, &req->res.headers, t, NULL, v, strlen(v));
}

static int send_file(h2o_req_t *req, const char *rel)
{
    static h2o_generator_t generator = {NULL, NULL};
    struct stat st;
    int fd = open_beneath(rel);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        if (fd >= 0)
            close(fd);
        return pv_http_send_error(req, 404, "not_found", "no such route or console file");
    }
    char tag[64];
    snprintf(tag, sizeof(tag), "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st.st_size,
             (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec);
    h2o_iovec_t etag = h2o_strdup(&req->pool, tag, strlen(tag));
    add(req, H2O_TOKEN_CONTENT_TYPE, content_type(rel));
    add(req, H2O_TOKEN_CACHE_CONTROL,
        strncmp(rel, "assets/", 7) == 0 ? "public, max-age=31536000, immutable" : "no-cache");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, etag.base, etag.len);
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i >= 0 && h2o_memis(req->headers.entries[i].value.base, req->headers.entries[i].value.len, etag.base,
                            etag.len)) {
        close(fd);
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, "", 0);
        return 0;
    }
    h2o_iovec_t body = {h2o_mem_alloc_pool(&req->pool, (size_t)st.st_size + 1), 0};
    while (body.len < (size_t)st.st_size) {
        ssize_t n = read(fd, body.base + body.len, (size_t)st.st_size - body.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        body.len += (size_t)n;
    }
    close(fd);
    if (body.len != (size_t)st.st_size)
        return pv_http_send_code(req, PV_EIO, "could not read the console file");
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

int pv_static_serve(h2o_req_t *req)
{
    int get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
              h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    /* the raw path (before h2o's decoding and dot-segment removal): what we check is what we open */
    h2o_iovec_t p = req->path;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : p.len;
    if (!get || plen < 1 || p.base[0] != '/' || (plen >= 4 && memcmp(p.base, "/v1/", 4) == 0))
        return 0;
    root_conf = pv_gw_thread(req)->gw->conf->console_dir;
    pthread_once(&root_once, root_open);
    static const char *const hdrs[][2] = {{"content-security-policy", CSP},
                                          {"x-content-type-options", "nosniff"},
                                          {"referrer-policy", "no-referrer"},
                                          {"x-frame-options", "DENY"}};
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
        h2o_add_header_by_str(&req->pool, &req->res.headers, hdrs[i][0], strlen(hdrs[i][0]), 0, NULL,
                              hdrs[i][1], strlen(hdrs[i][1]));
    if (root_fd < 0) {
        pv_http_send_error(req, 404, "not_found", "no such route (the web console is not installed)");
        return 1;
    }
    char rel[PATH_MAX_LEN + 1];
    if (plen == 1) {
        strcpy(rel, "index.html");
    } else if (!pv_static_path_ok(p.base + 1, plen - 1)) {
        pv_http_send_error(req, 404, "not_found", "no such route or console file");
        return 1;
    } else {
        memcpy(rel, p.base + 1, plen - 1);
        rel[plen - 1] = '\0';
    }
    send_file(req, rel);
    return 1;
}
