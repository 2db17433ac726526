/*
 * Integration test of the remote shard client against three real
 * privid-shard processes on loopback, with real golden descriptors
 * (tests/data/gallery) and face-like synthetic ones. Checks: the same answers
 * as one in-process gallery holding the same data; one shard killed ->
 * answers marked degraded, enrolments that hash to it fail with PV_EUNAVAIL
 * and nothing lands anywhere else; the shard restarted -> full answers with
 * nothing lost; a hung shard (SIGSTOP) -> degraded after the client's
 * timeout; bad input to every endpoint -> 4xx with a JSON error, and the
 * shard keeps serving; SIGTERM -> every shard exits 0.
 *   test_shard_cluster PRIVID_SHARD GALLERY_DATA_DIR
 * Every child dies with this process (PR_SET_PDEATHSIG) and is killed at
 * exit on any failure; the temporary directory is removed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "recognizer/gallery.h"
#include "recognizer/shard_proto.h"
#include "recognizer/shards.h"
#include "tests/unit/recognizer/gallery_synth.h"

#define DIM 128
#define NFACES 22
#define S 3
#define NSYN 300
#define NNEW 30
#define K 5
#define SEED 20240612u
#define DOWN_MS 200

static const char *shard_bin;
static char base[64];
static pid_t pids[S];
static int ports[S];
static int fails, checks;
static float faces[NFACES][DIM], faces2[NFACES][DIM];

#define CHECK(c)                                                                                                   \
    do {                                                                                                           \
        checks++;                                                                                                  \
        if (!(c)) {                                                                                                \
            fails++;                                                                                               \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                                          \
        }                                                                                                          \
    } while (0)
#define REQUIRE(c)                                                                                                 \
    do {                                                                                                           \
        if (!(c)) {                                                                                                \
            fprintf(stderr, "FATAL %s:%d: %s\n", __FILE__, __LINE__, #c);                                         \
            exit(1);                                                                                               \
        }                                                                                                          \
    } while (0)

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* At exit, whatever happened: no shard outlives the test, no files stay. */
static void cleanup(void)
{
    for (int i = 0; i < S; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
    if (base[0] != '\0' && getenv("PV_KEEP_TMP") == NULL)
        nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_fatal_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* One request on a fresh connection ("Connection: close"); returns the
 * status (or -1), the body in out (NUL-terminated, truncated to outlen). */
static int http(int port, const char *method, const char *path, const char *ctype, const void *body, size_t len,
                char *out, size_t outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (out && outlen)
        out[0] = '\0';
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char head[512];
    int hl = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", len);
    if (send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl)
        goto out;
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, (const char *)body + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may refuse early (413) and close: read its answer anyway */
        off += (size_t)w;
    }
    static char resp[1 << 16];
    size_t rl = 0;
    for (ssize_t n; rl < sizeof(resp) - 1 && (n = recv(fd, resp + rl, sizeof(resp) - 1 - rl, 0)) > 0;)
        rl += (size_t)n;
    resp[rl] = '\0';
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    const char *b = strstr(resp, "\r\n\r\n");
    if (b && out)
        snprintf(out, outlen, "%s", b + 4);
out:
    close(fd);
    return status;
}

static void start_shard(int i)
{
    char dir[128], listen[64], logpath[128];
    snprintf(dir, sizeof(dir), "%s/shard%d", base, i);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", ports[i]);
    snprintf(logpath, sizeof(logpath), "%s/shard%d.log", base, i);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *log = fopen(logpath, "a");
        if (log) {
            dup2(fileno(log), 2);
            dup2(fileno(log), 1);
        }
        setenv("OMP_NUM_THREADS", "1", 1);
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        execl(shard_bin, shard_bin, "--listen", listen, "--data-dir", dir, "--durable=false", "--workers", "2",
              "--map-size-mb", "256", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    pids[i] = pid;
    /* ready when /healthz answers; fail fast if the process died */
    int64_t deadline = now_ms() + 15000;
    for (;;) {
        char body[256];
        if (http(ports[i], "GET", "/healthz", NULL, NULL, 0, body, sizeof(body)) == 200)
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pids[i] = 0;
            fprintf(stderr, "shard %d exited during start-up (see %s)\n", i, logpath);
            exit(1);
        }
        REQUIRE(now_ms() < deadline);
        usleep(20000);
    }
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void load_bin(float *dst, const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    REQUIRE(f != NULL);
    REQUIRE(fread(dst, sizeof(float), NFACES * DIM, f) == NFACES * DIM);
    fclose(f);
}

/* ---- the reference: one in-process gallery with the same data ---- */

static pv_gallery_t *ref;
static uint64_t expect_count[S]; /* identities each shard must hold */

enum { NQ = NFACES + 60 };
static float queries[NQ * DIM];

/* The client's answer equals the reference's best K among the identities of
 * the shards not in `skip_mask`. */
static void compare(pv_shards_t *cl, uint64_t skip_mask, const char *what)
{
    enum { KREF = 80 };
    static pv_gallery_hit_t a[NQ * K], b[NQ * KREF];
    pv_shards_info_t info;
    int rc = pv_shards_search(cl, a, &info, 0, NQ, queries, K);
    CHECK(rc == 0);
    CHECK(info.degraded == (skip_mask != 0));
    CHECK(info.failed_mask == skip_mask);
    REQUIRE(pv_gallery_search(ref, b, 0, NQ, queries, KREF) == 0);
    int bad = 0;
    for (int q = 0; q < NQ; q++) {
        int m = 0;
        for (int j = 0; j < KREF && m < K; j++) {
            const pv_gallery_hit_t *h = &b[q * KREF + j];
            if (h->gid != 0 && (skip_mask >> pv_jump_hash(h->gid, S) & 1))
                continue;
            const pv_gallery_hit_t *x = &a[q * K + m++];
            /* squared distances agree to rounding: FAISS computes a batch as |x|^2 + |y|^2 - 2xy with
             * BLAS, whose kernel (CPU-specific) rounds differently for different batch shapes; near
             * duplicates (d = 0.02) then differ by 1.5e-5 after the square root */
            if (x->gid != h->gid || x->slot != h->slot ||
                fabsf(x->distance * x->distance - h->distance * h->distance) > 1e-5f) {
                bad++;
                fprintf(stderr, "query %d rank %d: %llx/%u at %.7f, single gallery %llx/%u at %.7f\n", q, m - 1,
                        (unsigned long long)x->gid, x->slot, x->distance, (unsigned long long)h->gid, h->slot,
                        h->distance);
            }
        }
        CHECK(m == K);
    }
    if (bad)
        fprintf(stderr, "%s: %d hits differ from the single gallery\n", what, bad);
    CHECK(bad == 0);
}

static void check_counts(pv_shards_t *cl, uint64_t skip_mask)
{
    for (uint32_t i = 0; i < S; i++) {
        pv_shard_stats_t st;
        int rc = pv_shards_stat(cl, &st, i);
        if (skip_mask >> i & 1) {
            CHECK(rc == PV_EUNAVAIL);
            continue;
        }
        CHECK(rc == 0);
        if (rc == 0 && st.identities != expect_count[i])
            fprintf(stderr, "shard %u holds %llu identities, expected %llu\n", i, (unsigned long long)st.identities,
                    (unsigned long long)expect_count[i]);
        CHECK(rc == 0 && st.identities == expect_count[i]);
    }
}

/* ---- bad input ---- */

typedef struct {
    const char *name, *method, *path, *ctype;
    const uint8_t *body;
    size_t len;
    int status;
} bad_case_t;

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static void putf(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put32(p, v);
}

static void bad_input(pv_shards_t *cl, uint64_t existing_gid)
{
    const char *ct = PV_SHARD_CONTENT_TYPE;
    int port = ports[0];
    float v[DIM];
    memcpy(v, faces[0], sizeof(v));
    /* valid messages to corrupt */
    static uint8_t s1[PV_SHARD_SEARCH_REQ_SIZE(1) + 1], e1[PV_SHARD_ENROLL_REQ_SIZE], a1[PV_SHARD_ADD_REQ_SIZE],
        r1[PV_SHARD_REMOVE_REQ_SIZE];
    pv_shard_encode_search_req(s1, 0, K, 1, v);
    pv_shard_encode_enroll_req(e1, 0xabcdef, 0, 0, 0.9f, v);
    pv_shard_encode_add_req(a1, existing_gid, 0, 0.9f, v);
    pv_shard_encode_remove_req(r1, 0x5eed);
    const size_t sl = PV_SHARD_SEARCH_REQ_SIZE(1);
    enum { NV = 24 };
    static uint8_t var[NV][PV_SHARD_ENROLL_REQ_SIZE + 8];
    int nv = 0;
#define VARIANT(src, n) (memcpy(var[nv], (src), (n)), var[nv++])
    uint8_t *s_magic = VARIANT(s1, sl);
    s_magic[0] = 'X';
    uint8_t *s_ver = VARIANT(s1, sl);
    s_ver[4] = 2;
    uint8_t *s_flags = VARIANT(s1, sl);
    s_flags[12] = 1;
    uint8_t *s_type = VARIANT(s1, sl);
    s_type[6] = PV_SHARD_ENROLL;
    uint8_t *s_dim = VARIANT(s1, sl);
    put32(s_dim + PV_SHARD_HDR_SIZE + 12, 64);
    uint8_t *s_nan = VARIANT(s1, sl);
    putf(s_nan + PV_SHARD_HDR_SIZE + 16 + 40, NAN);
    uint8_t *s_inf = VARIANT(s1, sl);
    putf(s_inf + PV_SHARD_HDR_SIZE + 16, INFINITY);
    uint8_t *s_ninf = VARIANT(s1, sl);
    putf(s_ninf + sl - 4, -INFINITY);
    uint8_t *s_k0 = VARIANT(s1, sl);
    put32(s_k0 + PV_SHARD_HDR_SIZE + 8, 0);
    uint8_t *s_kbig = VARIANT(s1, sl);
    put32(s_kbig + PV_SHARD_HDR_SIZE + 8, PV_SHARD_K_MAX + 1);
    uint8_t *s_count = VARIANT(s1, sl);
    put32(s_count + 8, 2);
    uint8_t *e_gid0 = VARIANT(e1, sizeof(e1));
    memset(e_gid0 + PV_SHARD_HDR_SIZE, 0, 8);
    uint8_t *e_nan = VARIANT(e1, sizeof(e1));
    putf(e_nan + PV_SHARD_HDR_SIZE + 32 + 100 * 4, NAN);
    uint8_t *e_q = VARIANT(e1, sizeof(e1));
    putf(e_q + PV_SHARD_HDR_SIZE + 24, INFINITY);
    uint8_t *e_dim = VARIANT(e1, sizeof(e1));
    put32(e_dim + PV_SHARD_HDR_SIZE + 28, 127);
    uint8_t *e_exist = VARIANT(e1, sizeof(e1));
    memcpy(e_exist + PV_SHARD_HDR_SIZE, &existing_gid, 8); /* little-endian host */
    uint8_t *e_count = VARIANT(e1, sizeof(e1));
    put32(e_count + 8, 2);
    uint8_t *a_unknown = VARIANT(a1, sizeof(a1));
    memset(a_unknown + PV_SHARD_HDR_SIZE, 0x77, 8);
    uint8_t *a_nan = VARIANT(a1, sizeof(a1));
    putf(a_nan + PV_SHARD_HDR_SIZE + 24, NAN);
    uint8_t *a_dim = VARIANT(a1, sizeof(a1));
    put32(a_dim + PV_SHARD_HDR_SIZE + 20, 256);
    uint8_t *a_long = VARIANT(a1, sizeof(a1)); /* sent with 3 bytes more (zeros) */
    uint8_t *r_gid0 = VARIANT(r1, sizeof(r1));
    memset(r_gid0 + PV_SHARD_HDR_SIZE, 0, 8);
#undef VARIANT
    REQUIRE(nv <= NV);
    /* an oversized batch: PV_SHARD_BATCH_MAX + 1 queries (still under the body limit) */
    size_t big_len = PV_SHARD_SEARCH_REQ_SIZE(PV_SHARD_BATCH_MAX + 1);
    uint8_t *big = calloc(1, big_len);
    memcpy(big, s1, PV_SHARD_HDR_SIZE + 16);
    put32(big + 8, PV_SHARD_BATCH_MAX + 1);
    /* a body over the configured limit (1 MiB) */
    size_t huge_len = (size_t)PV_SHARD_BODY_MAX + PV_SHARD_BODY_MAX / 2;
    uint8_t *huge = calloc(1, huge_len);
    memcpy(huge, s1, 16);

    const bad_case_t cases[] = {
        {"search empty body", "POST", "/v1/shard/search", ct, (const uint8_t *)"", 0, 400},
        {"search short", "POST", "/v1/shard/search", ct, s1, 7, 400},
        {"search truncated", "POST", "/v1/shard/search", ct, s1, sl - 1, 400},
        {"search extra byte", "POST", "/v1/shard/search", ct, s1, sl + 1, 400},
        {"search bad magic", "POST", "/v1/shard/search", ct, s_magic, sl, 400},
        {"search version 2", "POST", "/v1/shard/search", ct, s_ver, sl, 400},
        {"search flags", "POST", "/v1/shard/search", ct, s_flags, sl, 400},
        {"search wrong type", "POST", "/v1/shard/search", ct, s_type, sl, 400},
        {"search count vs size", "POST", "/v1/shard/search", ct, s_count, sl, 400},
        {"search dim 64", "POST", "/v1/shard/search", ct, s_dim, sl, 422},
        {"search NaN", "POST", "/v1/shard/search", ct, s_nan, sl, 422},
        {"search +Inf", "POST", "/v1/shard/search", ct, s_inf, sl, 422},
        {"search -Inf", "POST", "/v1/shard/search", ct, s_ninf, sl, 422},
        {"search k 0", "POST", "/v1/shard/search", ct, s_k0, sl, 422},
        {"search k too big", "POST", "/v1/shard/search", ct, s_kbig, sl, 413},
        {"search oversized batch", "POST", "/v1/shard/search", ct, big, big_len, 413},
        {"search body over limit", "POST", "/v1/shard/search", ct, huge, huge_len, 413},
        {"search no content type", "POST", "/v1/shard/search", NULL, s1, sl, 415},
        {"search GET", "GET", "/v1/shard/search", NULL, NULL, 0, 405},
        {"enroll gid 0", "POST", "/v1/shard/enroll", ct, e_gid0, sizeof(e1), 422},
        {"enroll NaN", "POST", "/v1/shard/enroll", ct, e_nan, sizeof(e1), 422},
        {"enroll Inf quality", "POST", "/v1/shard/enroll", ct, e_q, sizeof(e1), 422},
        {"enroll dim 127", "POST", "/v1/shard/enroll", ct, e_dim, sizeof(e1), 422},
        {"enroll count 2", "POST", "/v1/shard/enroll", ct, e_count, sizeof(e1), 400},
        {"enroll wrong size", "POST", "/v1/shard/enroll", ct, e1, sizeof(e1) - 4, 400},
        {"enroll search body", "POST", "/v1/shard/enroll", ct, s1, sl, 400},
        {"enroll existing gid", "POST", "/v1/shard/enroll", ct, e_exist, sizeof(e1), 409},
        {"add unknown gid", "POST", "/v1/shard/add", ct, a_unknown, sizeof(a1), 404},
        {"add NaN", "POST", "/v1/shard/add", ct, a_nan, sizeof(a1), 422},
        {"add dim 256", "POST", "/v1/shard/add", ct, a_dim, sizeof(a1), 422},
        {"add wrong size", "POST", "/v1/shard/add", ct, a_long, sizeof(a1) + 3, 400},
        {"remove unknown gid", "POST", "/v1/shard/remove", ct, r1, sizeof(r1), 404},
        {"remove gid 0", "POST", "/v1/shard/remove", ct, r_gid0, sizeof(r1), 422},
        {"remove wrong size", "POST", "/v1/shard/remove", ct, r1, sizeof(r1) - 1, 400},
        {"stats POST", "POST", "/v1/shard/stats", ct, r1, sizeof(r1), 405},
        {"healthz DELETE", "DELETE", "/healthz", NULL, NULL, 0, 405},
        {"unknown path", "GET", "/v1/shard/nope", NULL, NULL, 0, 404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const bad_case_t *c = &cases[i];
        char body[2048];
        int st = http(port, c->method, c->path, c->ctype, c->body, c->len, body, sizeof(body));
        int json_error = strstr(body, "\"error\":{\"code\":\"") != NULL && strstr(body, "\"message\":\"") != NULL;
        if (st != c->status || !json_error)
            fprintf(stderr, "%s: status %d (expected %d), body %.200s\n", c->name, st, c->status, body);
        CHECK(st == c->status);
        CHECK(json_error);
        /* still serving after each */
        CHECK(http(port, "GET", "/healthz", NULL, NULL, 0, body, sizeof(body)) == 200);
    }
    free(big);
    free(huge);
    /* and the client still gets full, right answers from every shard */
    compare(cl, 0, "after bad input");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PRIVID_SHARD GALLERY_DATA_DIR\n", argv[0]);
        return 2;
    }
    shard_bin = argv[1];
    load_bin(&faces[0][0], argv[2], "descriptors_jpegjs_22x128_f32.bin");
    load_bin(&faces2[0][0], argv[2], "descriptors_libjpeg_22x128_f32.bin");
    strcpy(base, "/tmp/pv_shardit_XXXXXX");
    REQUIRE(mkdtemp(base) != NULL);
    atexit(cleanup);
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGSEGV, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    signal(SIGPIPE, SIG_IGN);
    int64_t t0 = now_ms();

    for (int i = 0; i < S; i++)
        ports[i] = free_port();
    for (int i = 0; i < S; i++)
        start_shard(i);
    char urls[S][64];
    const char *url_ptrs[S];
    for (int i = 0; i < S; i++) {
        snprintf(urls[i], sizeof(urls[i]), "http://127.0.0.1:%d", ports[i]);
        url_ptrs[i] = urls[i];
    }
    pv_shards_remote_config_t rc = {.urls = url_ptrs, .count = S, .timeout_ms = 3000, .down_ms = DOWN_MS};
    pv_shards_t *cl = NULL;
    REQUIRE(pv_shards_open_remote(&cl, &rc) == 0);

    char refdir[128];
    snprintf(refdir, sizeof(refdir), "%s/ref", base);
    REQUIRE(mkdir(refdir, 0700) == 0);
    pv_gallery_config_t gc;
    pv_gallery_config_init(&gc);
    gc.dir = refdir;
    gc.durable = 0;
    gc.map_size = (size_t)256 << 20;
    REQUIRE(pv_gallery_open(&ref, &gc) == 0);

    /* the same data through the client and into the reference */
    uint64_t got;
    for (int i = 0; i < NFACES; i++) {
        uint64_t gid = 1000 + (uint64_t)i;
        CHECK(pv_shards_enroll(cl, &got, gid, 0, faces[i], 0.9f, 1700000000000ll) == 0 && got == gid);
        REQUIRE(pv_gallery_enroll(ref, &got, gid, 0, faces[i], 0.9f) == 0);
        expect_count[pv_jump_hash(gid, S)]++;
    }
    float v[DIM];
    for (uint64_t i = 0; i < NSYN; i++) {
        uint64_t gid = mix(i) | 1;
        synth_exemplar(v, DIM, SEED, i, 0);
        CHECK(pv_shards_enroll(cl, NULL, gid, 0, v, 0.8f, 0) == 0);
        REQUIRE(pv_gallery_enroll(ref, &got, gid, 0, v, 0.8f) == 0);
        synth_exemplar(v, DIM, SEED, i, 1);
        uint32_t s1 = 99, s2 = 98;
        CHECK(pv_shards_add(cl, &s1, gid, v, 0.7f, 0) == 0);
        REQUIRE(pv_gallery_add(ref, &s2, gid, v, 0.7f) == 0);
        CHECK(s1 == s2);
        expect_count[pv_jump_hash(gid, S)]++;
    }
    for (int i = 0; i < S; i++)
        REQUIRE(expect_count[i] > 0);
    check_counts(cl, 0);

    memcpy(queries, faces2, sizeof(faces2));
    for (int i = 0; i < NQ - NFACES; i++)
        synth_exemplar(queries + (NFACES + i) * DIM, DIM, SEED, (uint64_t)i * 5, 7);
    compare(cl, 0, "three shards");
    /* the real faces find themselves through the cluster */
    {
        pv_gallery_hit_t h[NFACES * K];
        CHECK(pv_shards_search(cl, h, NULL, 0, NFACES, &faces2[0][0], K) == 0);
        for (int i = 0; i < NFACES; i++)
            CHECK(h[i * K].gid == 1000 + (uint64_t)i && h[i * K].distance < 0.2f);
    }

    /* one shard killed: degraded answers, writes to it refused, nothing misplaced */
    const int victim = 1;
    kill(pids[victim], SIGKILL);
    waitpid(pids[victim], NULL, 0);
    pids[victim] = 0;
    compare(cl, 1ull << victim, "shard 1 killed");
    compare(cl, 1ull << victim, "shard 1 still down");
    uint64_t refused[NNEW];
    int nrefused = 0, nok = 0;
    for (uint64_t i = 0; i < NNEW; i++) {
        uint64_t gid = mix(100000 + i) | 1, id = 5000 + i;
        synth_exemplar(v, DIM, SEED, id, 0);
        int r = pv_shards_enroll(cl, &got, gid, 0, v, 0.8f, 0);
        if (pv_shards_shard_of(cl, gid) == (uint32_t)victim) {
            CHECK(r == PV_EUNAVAIL);
            refused[nrefused++] = i;
        } else {
            CHECK(r == 0);
            REQUIRE(pv_gallery_enroll(ref, &got, gid, 0, v, 0.8f) == 0);
            expect_count[pv_jump_hash(gid, S)]++;
            nok++;
        }
    }
    CHECK(nrefused > 0 && nok > 0);
    /* an existing identity on the down shard: add and remove refused too */
    uint64_t on_victim = 0;
    for (int i = 0; i < NFACES && on_victim == 0; i++)
        if (pv_jump_hash(1000 + (uint64_t)i, S) == victim)
            on_victim = 1000 + (uint64_t)i;
    REQUIRE(on_victim != 0);
    CHECK(pv_shards_add(cl, NULL, on_victim, faces2[on_victim - 1000], 0.9f, 0) == PV_EUNAVAIL);
    CHECK(pv_shards_remove(cl, on_victim) == PV_EUNAVAIL);
    check_counts(cl, 1ull << victim); /* the live shards hold exactly their own gids */
    compare(cl, 1ull << victim, "after refused writes");
    pv_shards_counters_t c;
    pv_shards_counters(cl, &c);
    CHECK(c.degraded >= 3);
    CHECK(c.unavailable == (uint64_t)nrefused + 2);
    CHECK(c.shard_failures >= c.degraded);

    /* restarted: full answers again, nothing lost */
    start_shard(victim);
    usleep((DOWN_MS + 50) * 1000);
    compare(cl, 0, "shard 1 restarted");
    check_counts(cl, 0);
    /* the refused enrolments go through now, to their own shard */
    for (int j = 0; j < nrefused; j++) {
        uint64_t i = refused[j], gid = mix(100000 + i) | 1;
        synth_exemplar(v, DIM, SEED, 5000 + i, 0);
        CHECK(pv_shards_enroll(cl, &got, gid, 0, v, 0.8f, 0) == 0);
        REQUIRE(pv_gallery_enroll(ref, &got, gid, 0, v, 0.8f) == 0);
        expect_count[victim]++;
    }
    check_counts(cl, 0);
    compare(cl, 0, "after the retried enrolments");
    /* erasure through the cluster */
    CHECK(pv_shards_remove(cl, on_victim) == 0);
    REQUIRE(pv_gallery_remove(ref, on_victim) == 0);
    expect_count[victim]--;
    CHECK(pv_shards_remove(cl, on_victim) == PV_ENOTFOUND);
    compare(cl, 0, "after a removal");

    /* a shard that hangs (SIGSTOP): a client with a short timeout answers
     * degraded once the timeout expires, then full again after SIGCONT */
    {
        pv_shards_remote_config_t quick = rc;
        quick.timeout_ms = 300;
        pv_shards_t *qc = NULL;
        REQUIRE(pv_shards_open_remote(&qc, &quick) == 0);
        compare(qc, 0, "before the hang");
        const int hung = 2;
        kill(pids[hung], SIGSTOP);
        int64_t t = now_ms();
        compare(qc, 1ull << hung, "shard 2 hung");
        int64_t el = now_ms() - t;
        if (el < 250 || el > 2000)
            fprintf(stderr, "degraded answer took %lld ms with a 300 ms timeout\n", (long long)el);
        CHECK(el >= 250 && el <= 2000);
        kill(pids[hung], SIGCONT);
        usleep((DOWN_MS + 50) * 1000);
        compare(qc, 0, "shard 2 resumed");
        pv_shards_close(qc);
    }

    uint64_t on_first = 0; /* an identity shard 0 holds: enrolling it again there is a conflict */
    for (int i = 0; i < NFACES && on_first == 0; i++)
        if (pv_jump_hash(1000 + (uint64_t)i, S) == 0)
            on_first = 1000 + (uint64_t)i;
    REQUIRE(on_first != 0);
    bad_input(cl, on_first);
    check_counts(cl, 0);

    /* clean shutdown: SIGTERM, every shard exits 0 */
    pv_shards_close(cl);
    for (int i = 0; i < S; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < S; i++) {
        int st = -1;
        waitpid(pids[i], &st, 0);
        pids[i] = 0;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    pv_gallery_close(ref);
    printf("%d checks, %d failed, %.1f s\n", checks, fails, (now_ms() - t0) / 1000.0);
    return fails == 0 ? 0 : 1;
}
