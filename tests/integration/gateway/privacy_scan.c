/*
 * privacy_scan: looks for biometric data and secrets where PrivID promises
 * there are none. Needles: image bytes (JPEG/PNG/WebP signatures and every
 * 64-byte window of the given image files), face descriptors (every run of 4
 * consecutive values as raw little-endian float32 or float64, and printed in
 * decimal in any format that keeps 6 significant digits) and API key secrets
 * (the text and the raw 32 bytes). Haystacks: files, directory trees, and
 * every key and value of every named database of LMDB environments (read
 * through the LMDB API). Prints one FOUND line per finding; exit 0 clean,
 * 1 found, 2 usage or I/O error.
 *   privacy_scan [--image F]... [--desc F] [--secret KEY]... [--lmdb DIR]...
 *                [--file F]... [--dir D]... [--skip PATH]...
 * --desc F: whitespace-separated decimal values, 128 per face.
 */
#include <dirent.h>
#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/codec.h"

#define WIN 64  /* image window */
#define DWIN 4  /* descriptor values per run */
#define DIM 128 /* values per face */
#define MAX_ARGS 64
#define BASE 0x100000001b3ULL

typedef struct {
    uint64_t h;
    const uint8_t *p; /* the needle's bytes (len of its table) */
} entry_t;

/* An open-addressing set of rolling hashes of fixed-length needles. */
typedef struct {
    size_t len, cap, n;
    entry_t *slots;
    uint64_t pow; /* BASE^(len-1) */
    const char *what;
} table_t;

static int found;

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * BASE + p[i];
    return h;
}

static void table_init(table_t *t, size_t len, size_t expect, const char *what)
{
    t->len = len;
    t->cap = 16;
    while (t->cap < expect * 2)
        t->cap *= 2;
    t->slots = calloc(t->cap, sizeof(entry_t));
    t->n = 0;
    t->pow = 1;
    for (size_t i = 1; i < len; i++)
        t->pow *= BASE;
    t->what = what;
    if (t->slots == NULL) {
        fprintf(stderr, "privacy_scan: out of memory\n");
        exit(2);
    }
}

static void table_add(table_t *t, const uint8_t *p)
{
    uint64_t h = hash_bytes(p, t->len);
    size_t i = (size_t)(h ^ h >> 29) & (t->cap - 1);
    while (t->slots[i].p != NULL) {
        if (t->slots[i].h == h && memcmp(t->slots[i].p, p, t->len) == 0)
            return;
        i = (i + 1) & (t->cap - 1);
    }
    t->slots[i] = (entry_t){h, p};
    t->n++;
}

/* Reports the first match of any needle of t in buf (one finding per table and haystack). */
static void table_scan(const table_t *t, const uint8_t *buf, size_t n, const char *where)
{
    if (t->n == 0 || n < t->len)
        return;
    uint64_t h = hash_bytes(buf, t->len);
    for (size_t off = 0;; off++) {
        size_t i = (size_t)(h ^ h >> 29) & (t->cap - 1);
        for (; t->slots[i].p != NULL; i = (i + 1) & (t->cap - 1)) {
            if (t->slots[i].h == h && memcmp(t->slots[i].p, buf + off, t->len) == 0) {
                printf("FOUND %s in %s at offset %zu\n", t->what, where, off);
                found = 1;
                return;
            }
        }
        if (off + t->len >= n)
            return;
        h = (h - buf[off] * t->pow) * BASE + buf[off + t->len];
    }
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* ---- needles ---- */

static table_t images, raw32, raw64, secrets_raw;
static float *desc; /* nfaces * DIM */
static size_t nfaces;
static const char *secret_text[MAX_ARGS];
static int nsecrets;
static double *sorted; /* every descriptor value with its position, for the printed-form search */
static size_t *sorted_pos;

/* A window with few distinct bytes (padding, runs) says nothing about an image. */
static int informative(const uint8_t *p)
{
    uint8_t seen[256] = {0};
    int distinct = 0;
    for (int i = 0; i < WIN; i++)
        if (!seen[p[i]]++)
            distinct++;
    return distinct >= 16;
}

static int cmp_pos(const void *a, const void *b)
{
    double x = sorted[*(const size_t *)a], y = sorted[*(const size_t *)b];
    return x < y ? -1 : x > y;
}

static int close_to(double printed, float value)
{
    double v = value, tol = 5e-7 + 5e-6 * fabs(v);
    return fabs(printed - v) <= tol;
}

/* Finds runs of DWIN consecutive numbers in text that are consecutive descriptor values. */
static void scan_printed(const uint8_t *buf, size_t n, const char *where)
{
    size_t cap = 1024, cnt = 0;
    double *num = malloc(cap * sizeof(double));
    size_t *at = malloc(cap * sizeof(size_t));
    if (num == NULL || at == NULL || nfaces == 0)
        goto out;
    for (size_t i = 0; i < n;) {
        int start = (buf[i] >= '0' && buf[i] <= '9') ||
                    ((buf[i] == '-' || buf[i] == '.') && i + 1 < n && buf[i + 1] >= '0' && buf[i + 1] <= '9');
        if (!start || (i > 0 && ((buf[i - 1] >= '0' && buf[i - 1] <= '9') || buf[i - 1] == '.'))) {
            i++;
            continue;
        }
        char tmp[64];
        size_t k = 0;
        while (i + k < n && k < sizeof(tmp) - 1 && strchr("0123456789.-+eE", buf[i + k]) != NULL &&
               buf[i + k] != '\0') {
            tmp[k] = (char)buf[i + k];
            k++;
        }
        tmp[k] = '\0';
        char *end;
        double v = strtod(tmp, &end);
        size_t used = end > tmp ? (size_t)(end - tmp) : 1;
        if (end > tmp) {
            if (cnt == cap) {
                cap *= 2;
                double *nn = realloc(num, cap * sizeof(double));
                size_t *na = realloc(at, cap * sizeof(size_t));
                if (nn != NULL)
                    num = nn;
                if (na != NULL)
                    at = na;
                if (nn == NULL || na == NULL)
                    goto out;
            }
            num[cnt] = v;
            at[cnt++] = i;
        }
        i += used;
    }
    size_t total = nfaces * DIM;
    for (size_t t = 0; t + DWIN <= cnt; t++) {
        double lo = num[t] - 5e-7 - 5e-6 * fabs(num[t]) * 1.01,
               hi = num[t] + 5e-7 + 5e-6 * fabs(num[t]) * 1.01;
        /* binary search for the first value >= lo */
        size_t a = 0, b = total;
        while (a < b) {
            size_t m = (a + b) / 2;
            if (sorted[sorted_pos[m]] < lo)
                a = m + 1;
            else
                b = m;
        }
        for (; a < total && sorted[sorted_pos[a]] <= hi; a++) {
            size_t p = sorted_pos[a];
            if (p % DIM > DIM - DWIN)
                continue;
            int ok = 1;
            for (int d = 0; d < DWIN && ok; d++)
                ok = close_to(num[t + d], desc[p + d]);
            if (ok) {
                printf("FOUND descriptor values printed in decimal (face %zu, values %zu..%zu) in %s at "
                       "offset %zu\n",
                       p / DIM, p % DIM, p % DIM + DWIN - 1, where, at[t]);
                found = 1;
                goto out;
            }
        }
    }
out:
    free(num);
    free(at);
}

static void scan_buf(const uint8_t *buf, size_t n, const char *where)
{
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    for (size_t i = 0; i + 12 <= n; i++) {
        const char *magic = NULL;
        if (buf[i] == 0xff && buf[i + 1] == 0xd8 && buf[i + 2] == 0xff &&
            ((buf[i + 3] & 0xf0) == 0xe0 || buf[i + 3] == 0xdb || buf[i + 3] == 0xfe || buf[i + 3] == 0xc0 ||
             buf[i + 3] == 0xc4))
            magic = "JPEG signature";
        else if (buf[i] == 0x89 && memcmp(buf + i, png, 8) == 0)
            magic = "PNG signature";
        else if (buf[i] == 'R' && memcmp(buf + i, "RIFF", 4) == 0 && memcmp(buf + i + 8, "WEBP", 4) == 0)
            magic = "WebP signature";
        if (magic != NULL) {
            printf("FOUND %s in %s at offset %zu\n", magic, where, i);
            found = 1;
            break;
        }
    }
    table_scan(&images, buf, n, where);
    table_scan(&raw32, buf, n, where);
    table_scan(&raw64, buf, n, where);
    table_scan(&secrets_raw, buf, n, where);
    for (int s = 0; s < nsecrets; s++) {
        const char *sec = secret_text[s];
        if (n >= strlen(sec) && memmem(buf, n, sec, strlen(sec)) != NULL) {
            printf("FOUND API key secret %.8s... in %s\n", sec, where);
            found = 1;
        }
    }
    scan_printed(buf, n, where);
}

/* ---- haystacks ---- */

static const char *skips[MAX_ARGS];
static int nskips;

static int skipped(const char *path)
{
    for (int i = 0; i < nskips; i++) {
        size_t n = strlen(skips[i]);
        if (strncmp(path, skips[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return 1;
    }
    return 0;
}

static int scan_file(const char *path)
{
    size_t n;
    uint8_t *buf = read_file(path, &n);
    if (buf == NULL) {
        fprintf(stderr, "privacy_scan: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    scan_buf(buf, n, path);
    free(buf);
    return 0;
}

static int scan_dir(const char *dir, size_t *files)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;
    if (d == NULL) {
        fprintf(stderr, "privacy_scan: cannot open %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (skipped(path) || lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            rc |= scan_dir(path, files);
        else if (S_ISREG(st.st_mode)) {
            rc |= scan_file(path);
            (*files)++;
        }
    }
    closedir(d);
    return rc;
}

/* Every key and value of every named database (and of the main one). */
static int scan_lmdb(const char *dir, size_t *records)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi;
    MDB_val k, v;
    char names[256][128];
    int nnames = 0, rc;

    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 256)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY, 0600)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
        (rc = mdb_cursor_open(txn, main_dbi, &cur)) != 0) {
        fprintf(stderr, "privacy_scan: cannot read LMDB environment %s: %s\n", dir, mdb_strerror(rc));
        if (env != NULL)
            mdb_env_close(env);
        return -1;
    }
    for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
        char where[4200];
        snprintf(where, sizeof(where), "LMDB %s main database", dir);
        scan_buf(k.mv_data, k.mv_size, where);
        scan_buf(v.mv_data, v.mv_size, where);
        if (k.mv_size < sizeof(names[0]) && nnames < 256 && memchr(k.mv_data, 0, k.mv_size) == NULL) {
            memcpy(names[nnames], k.mv_data, k.mv_size);
            names[nnames++][k.mv_size] = '\0';
        }
    }
    mdb_cursor_close(cur);
    int ndb = 0;
    for (int i = 0; i < nnames; i++) {
        MDB_dbi dbi;
        if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0)
            continue; /* a plain key of the main database */
        ndb++;
        if (mdb_cursor_open(txn, dbi, &cur) != 0)
            continue;
        char where[4400];
        snprintf(where, sizeof(where), "LMDB %.4096s database '%.127s'", dir, names[i]);
        for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0; op = MDB_NEXT) {
            scan_buf(k.mv_data, k.mv_size, where);
            scan_buf(v.mv_data, v.mv_size, where);
            (*records)++;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    fprintf(stderr, "privacy_scan: %s: %d named databases\n", dir, ndb);
    return 0;
}

/* ---- set-up ---- */

static int load_desc(const char *path)
{
    size_t n;
    uint8_t *text = read_file(path, &n);
    size_t cap = 0, cnt = 0;
    if (text == NULL)
        return -1;
    char *p = (char *)text, *end;
    for (;;) {
        double v = strtod(p, &end);
        if (end == p)
            break;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 1024;
            desc = realloc(desc, cap * sizeof(float));
            if (desc == NULL)
                exit(2);
        }
        desc[cnt++] = (float)v;
        p = end;
    }
    free(text);
    if (cnt == 0 || cnt % DIM != 0) {
        fprintf(stderr, "privacy_scan: %s holds %zu values, not a multiple of %d\n", path, cnt, DIM);
        return -1;
    }
    nfaces = cnt / DIM;
    /* raw forms: every run of DWIN consecutive values of a face */
    table_init(&raw32, DWIN * 4, cnt, "descriptor values as float32");
    table_init(&raw64, DWIN * 8, cnt, "descriptor values as float64");
    uint8_t *b32 = malloc(cnt * 4), *b64 = malloc(cnt * 8);
    sorted = malloc(cnt * sizeof(double));
    sorted_pos = malloc(cnt * sizeof(size_t));
    if (b32 == NULL || b64 == NULL || sorted == NULL || sorted_pos == NULL)
        exit(2);
    for (size_t i = 0; i < cnt; i++) {
        double d = desc[i];
        memcpy(b32 + 4 * i, &desc[i], 4); /* little-endian on every machine PrivID runs on */
        memcpy(b64 + 8 * i, &d, 8);
        sorted[i] = d;
        sorted_pos[i] = i;
    }
    for (size_t f = 0; f < nfaces; f++)
        for (size_t j = 0; j + DWIN <= DIM; j++) {
            table_add(&raw32, b32 + 4 * (f * DIM + j));
            table_add(&raw64, b64 + 8 * (f * DIM + j));
        }
    qsort(sorted_pos, cnt, sizeof(size_t), cmp_pos);
    return 0;
}

int main(int argc, char **argv)
{
    const char *files[MAX_ARGS], *dirs[MAX_ARGS], *envs[MAX_ARGS], *imgs[MAX_ARGS];
    int nfiles = 0, ndirs = 0, nenvs = 0, nimgs = 0, rc = 0;
    uint8_t *imgbuf[MAX_ARGS];
    size_t imglen[MAX_ARGS], total = 0;
    static uint8_t secret_bytes[MAX_ARGS][32];

    table_init(&images, WIN, 16, "a 64-byte window of an uploaded image");
    table_init(&secrets_raw, 32, 16, "API key secret bytes");
    table_init(&raw32, DWIN * 4, 1, "descriptor values as float32");
    table_init(&raw64, DWIN * 8, 1, "descriptor values as float64");
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            goto usage;
        if (strcmp(o, "--image") == 0 && nimgs < MAX_ARGS)
            imgs[nimgs++] = v;
        else if (strcmp(o, "--desc") == 0) {
            free(raw32.slots);
            free(raw64.slots);
            if (load_desc(v) != 0)
                return 2;
        } else if (strcmp(o, "--secret") == 0 && nsecrets < MAX_ARGS) {
            /* pvk_<16 hex>_<43 base64url>: the secret is the last 43 characters */
            size_t n = strlen(v);
            if (n < 43 || pv_b64url_decode(secret_bytes[nsecrets], 32, v + n - 43, 43) != 0) {
                fprintf(stderr, "privacy_scan: --secret %.8s...: not an API key\n", v);
                return 2;
            }
            secret_text[nsecrets++] = v + n - 43;
        } else if (strcmp(o, "--lmdb") == 0 && nenvs < MAX_ARGS)
            envs[nenvs++] = v;
        else if (strcmp(o, "--file") == 0 && nfiles < MAX_ARGS)
            files[nfiles++] = v;
        else if (strcmp(o, "--dir") == 0 && ndirs < MAX_ARGS)
            dirs[ndirs++] = v;
        else if (strcmp(o, "--skip") == 0 && nskips < MAX_ARGS)
            skips[nskips++] = v;
        else
            goto usage;
        i++;
    }
    for (int i = 0; i < nimgs; i++) {
        if ((imgbuf[i] = read_file(imgs[i], &imglen[i])) == NULL) {
            fprintf(stderr, "privacy_scan: cannot read %s\n", imgs[i]);
            return 2;
        }
        total += imglen[i];
    }
    free(images.slots);
    table_init(&images, WIN, total, "a 64-byte window of an uploaded image");
    for (int i = 0; i < nimgs; i++)
        for (size_t off = 0; off + WIN <= imglen[i]; off++)
            if (informative(imgbuf[i] + off))
                table_add(&images, imgbuf[i] + off);
    for (int i = 0; i < nsecrets; i++)
        table_add(&secrets_raw, secret_bytes[i]);

    size_t nscanned = 0, records = 0;
    for (int i = 0; i < nfiles; i++, nscanned++)
        rc |= scan_file(files[i]);
    for (int i = 0; i < ndirs; i++)
        rc |= scan_dir(dirs[i], &nscanned);
    for (int i = 0; i < nenvs; i++)
        rc |= scan_lmdb(envs[i], &records);
    fprintf(stderr,
            "privacy_scan: %zu image windows, %zu faces, %d secrets; scanned %zu files and %zu LMDB records: "
            "%s\n",
            images.n, nfaces, nsecrets, nscanned, records, found ? "FOUND" : "clean");
    if (rc != 0)
        return 2;
    return found ? 1 : 0;
usage:
    fprintf(stderr,
            "usage: privacy_scan [--image F]... [--desc F] [--secret KEY]... [--lmdb DIR]... [--file F]... "
            "[--dir D]... [--skip PATH]...\n");
    return 2;
}
