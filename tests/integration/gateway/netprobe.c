/*
 * netprobe: hostile clients for the gateway's connection limits (loopback).
 *   netprobe slow HOST:PORT N MODE INTERVAL_MS MAX_S
 *     opens N connections; MODE headers (a request line, then one header
 *     byte per interval), body (full headers with Content-Length 1000000,
 *     then one body byte per interval) or idle (nothing). Waits up to MAX_S
 *     for the server to close them and prints
 *     {"opened":N,"closed":C,"max_open_s":S,"refused":R} (refused: closed
 *     within 50 ms of connecting).
 *   netprobe rapidreset HOST:PORT PAIRS PATH
 *     HTTP/2 with prior knowledge: PAIRS times HEADERS (END_STREAM) then
 *     RST_STREAM (CANCEL), in batches of 50, then reads until the server
 *     closes; prints {"sent_pairs":P,"goaway":0|1,"goaway_error":E,
 *     "closed":0|1,"responses":R}.
 *   netprobe streams HOST:PORT N PATH
 *     HTTP/2 with prior knowledge: N streams opened at once (HEADERS without
 *     END_STREAM: each waits for a body that never comes), then reads for a
 *     second; prints {"max_concurrent_streams":M (the server's SETTINGS, -1
 *     when absent),"refused":R (RST_STREAM REFUSED_STREAM),"other_rst":O,
 *     "goaway":0|1}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int parse_addr(const char *spec)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", spec);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &addr.sin_addr) == 1 ? 0 : -1;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int slow(int n, const char *mode, int interval_ms, double max_s)
{
    static const char hdr_start[] = "GET /healthz HTTP/1.1\r\nHost: probe\r\n";
    static const char body_start[] = "POST /v1/events HTTP/1.1\r\nHost: probe\r\nContent-Type: "
                                     "application/json\r\nContent-Length: 1000000\r\n\r\n";
    int *fd = calloc((size_t)n, sizeof(int));
    double *opened = calloc((size_t)n, sizeof(double)), max_open = 0;
    int nopen = 0, closed = 0, refused = 0;
    for (int i = 0; i < n; i++) {
        fd[i] = dial();
        opened[i] = now_s();
        if (fd[i] < 0)
            continue;
        nopen++;
        fcntl(fd[i], F_SETFL, O_NONBLOCK);
        if (strcmp(mode, "headers") == 0)
            send(fd[i], hdr_start, sizeof(hdr_start) - 1, MSG_NOSIGNAL);
        else if (strcmp(mode, "body") == 0)
            send(fd[i], body_start, sizeof(body_start) - 1, MSG_NOSIGNAL);
    }
    double start = now_s(), next = start + interval_ms / 1000.0;
    while (closed < nopen && now_s() - start < max_s) {
        double t = now_s();
        if (t >= next && strcmp(mode, "idle") != 0) {
            next += interval_ms / 1000.0;
            for (int i = 0; i < n; i++)
                if (fd[i] >= 0)
                    send(fd[i], strcmp(mode, "headers") == 0 ? "X" : "{", 1, MSG_NOSIGNAL);
        }
        for (int i = 0; i < n; i++) {
            if (fd[i] < 0)
                continue;
            char buf[4096];
            ssize_t r = recv(fd[i], buf, sizeof(buf), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                double open_s = now_s() - opened[i];
                if (open_s < 0.05)
                    refused++;
                if (open_s > max_open)
                    max_open = open_s;
                close(fd[i]);
                fd[i] = -1;
                closed++;
            }
        }
        usleep(10000);
    }
    for (int i = 0; i < n; i++)
        if (fd[i] >= 0) {
            close(fd[i]);
            max_open = max_s;
        }
    printf("{\"opened\":%d,\"closed\":%d,\"max_open_s\":%.2f,\"refused\":%d}\n", nopen, closed, max_open,
           refused);
    free(fd);
    free(opened);
    return 0;
}

static size_t frame(unsigned char *p, unsigned len, unsigned type, unsigned flags, unsigned sid)
{
    p[0] = (unsigned char)(len >> 16);
    p[1] = (unsigned char)(len >> 8);
    p[2] = (unsigned char)len;
    p[3] = (unsigned char)type;
    p[4] = (unsigned char)flags;
    p[5] = (unsigned char)(sid >> 24 & 0x7f);
    p[6] = (unsigned char)(sid >> 16);
    p[7] = (unsigned char)(sid >> 8);
    p[8] = (unsigned char)sid;
    return 9;
}

/* An HPACK header block (static table, no Huffman): :method GET or POST (static 2 / 3), :scheme http (6),
 * :path literal (name 4), :authority "probe" (name 1); path is at most 200 bytes. Returns its length. */
static size_t request_block(unsigned char *b, int post, const char *path)
{
    size_t bl = 0, plen = strlen(path);
    if (plen > 200)
        plen = 200;
    b[bl++] = post ? 0x83 : 0x82;
    b[bl++] = 0x86;
    b[bl++] = 0x04;
    b[bl++] = (unsigned char)plen;
    memcpy(b + bl, path, plen);
    bl += plen;
    b[bl++] = 0x01;
    b[bl++] = 5;
    memcpy(b + bl, "probe", 5);
    return bl + 5;
}

static int rapidreset(int pairs, const char *path)
{
    int fd = dial();
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    unsigned char out[65536];
    size_t n = 0;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    memcpy(out, preface, 24);
    n = 24;
    n += frame(out + n, 0, 4, 0, 0); /* SETTINGS */
    send(fd, out, n, MSG_NOSIGNAL);
    unsigned char block[300];
    size_t bl = request_block(block, 0, path);
    int sent = 0, closed = 0, goaway = 0, responses = 0;
    unsigned goaway_err = 0;
    unsigned sid = 1;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    unsigned char in[1 << 16];
    size_t inlen = 0;
    double deadline = now_s() + 20;
    while (!closed && now_s() < deadline) {
        if (sent < pairs && !goaway) {
            n = 0;
            for (int k = 0; k < 50 && sent < pairs; k++, sent++, sid += 2) {
                n += frame(out + n, (unsigned)bl, 1, 0x5, sid); /* HEADERS, END_STREAM|END_HEADERS */
                memcpy(out + n, block, bl);
                n += bl;
                n += frame(out + n, 4, 3, 0, sid); /* RST_STREAM CANCEL */
                out[n++] = 0, out[n++] = 0, out[n++] = 0, out[n++] = 8;
            }
            size_t off = 0;
            while (off < n) {
                ssize_t w = send(fd, out + off, n - off, MSG_NOSIGNAL);
                if (w > 0)
                    off += (size_t)w;
                else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    struct pollfd pf = {fd, POLLOUT, 0};
                    poll(&pf, 1, 100);
                    /* drain what the server writes meanwhile so neither side stalls */
                    ssize_t r = recv(fd, in + inlen, sizeof(in) - inlen, 0);
                    if (r > 0)
                        inlen += (size_t)r;
                    if (inlen == sizeof(in))
                        inlen =
                            0; /* frames are counted below only from what fits; enough for GOAWAY detection */
                } else {
                    closed = 1;
                    break;
                }
            }
        }
        struct pollfd pf = {fd, POLLIN, 0};
        poll(&pf, 1, sent < pairs && !goaway ? 0 : 200);
        ssize_t r = recv(fd, in + inlen, sizeof(in) - inlen, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed = 1;
        else if (r > 0)
            inlen += (size_t)r;
        /* parse whole frames */
        size_t off = 0;
        while (inlen - off >= 9) {
            unsigned len = (unsigned)in[off] << 16 | (unsigned)in[off + 1] << 8 | in[off + 2];
            if (inlen - off < 9 + len)
                break;
            unsigned type = in[off + 3];
            if (type == 7 && len >= 8 && !goaway) { /* the first GOAWAY says why */
                goaway = 1;
                goaway_err = (unsigned)in[off + 13] << 24 | (unsigned)in[off + 14] << 16 |
                             (unsigned)in[off + 15] << 8 | in[off + 16];
            } else if (type == 1) {
                responses++;
            }
            off += 9 + len;
        }
        memmove(in, in + off, inlen - off);
        inlen -= off;
    }
    close(fd);
    printf("{\"sent_pairs\":%d,\"goaway\":%d,\"goaway_error\":%u,\"closed\":%d,\"responses\":%d}\n", sent,
           goaway, goaway_err, closed, responses);
    return 0;
}

static int streams(int count, const char *path)
{
    int fd = dial();
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    static unsigned char out[1 << 20];
    size_t n = 0, plen = strlen(path);
    memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    n = 24;
    n += frame(out + n, 0, 4, 0, 0); /* SETTINGS */
    for (int i = 0; i < count && n + 64 + plen < sizeof(out); i++) {
        size_t bl = request_block(out + n + 9, 1, path);
        frame(out + n, (unsigned)bl, 1, 0x4, 1 + 2 * (unsigned)i); /* HEADERS, END_HEADERS only */
        n += 9 + bl;
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, out + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    static unsigned char in[1 << 16];
    size_t inlen = 0;
    long max_streams = -1;
    int refused = 0, other = 0, goaway = 0;
    double deadline = now_s() + 1.0;
    while (now_s() < deadline) {
        struct pollfd pf = {fd, POLLIN, 0};
        poll(&pf, 1, 100);
        ssize_t r = recv(fd, in + inlen, sizeof(in) - inlen, MSG_DONTWAIT);
        if (r == 0)
            break;
        if (r > 0)
            inlen += (size_t)r;
        size_t off = 0;
        while (inlen - off >= 9) {
            unsigned len = (unsigned)in[off] << 16 | (unsigned)in[off + 1] << 8 | in[off + 2];
            if (inlen - off < 9 + len)
                break;
            unsigned type = in[off + 3], flags = in[off + 4];
            const unsigned char *pl = in + off + 9;
            if (type == 4 && !(flags & 1)) {
                for (unsigned k = 0; k + 6 <= len; k += 6)
                    if ((pl[k] << 8 | pl[k + 1]) == 3)
                        max_streams = (long)((unsigned long)pl[k + 2] << 24 | (unsigned long)pl[k + 3] << 16 |
                                             (unsigned long)pl[k + 4] << 8 | pl[k + 5]);
            } else if (type == 3 && len == 4) {
                if (pl[3] == 7 && pl[0] == 0 && pl[1] == 0 && pl[2] == 0)
                    refused++;
                else
                    other++;
            } else if (type == 7) {
                goaway = 1;
            }
            off += 9 + len;
        }
        memmove(in, in + off, inlen - off);
        inlen -= off;
    }
    close(fd);
    printf("{\"max_concurrent_streams\":%ld,\"refused\":%d,\"other_rst\":%d,\"goaway\":%d}\n", max_streams,
           refused, other, goaway);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "slow") == 0 && parse_addr(argv[2]) == 0)
        return slow(atoi(argv[3]), argv[4], atoi(argv[5]), atof(argv[6]));
    if (argc >= 5 && strcmp(argv[1], "rapidreset") == 0 && parse_addr(argv[2]) == 0)
        return rapidreset(atoi(argv[3]), argv[4]);
    if (argc >= 5 && strcmp(argv[1], "streams") == 0 && parse_addr(argv[2]) == 0)
        return streams(atoi(argv[3]), argv[4]);
    fprintf(stderr, "usage: netprobe slow HOST:PORT N headers|body|idle INTERVAL_MS MAX_S\n"
                    "       netprobe rapidreset HOST:PORT PAIRS PATH\n"
                    "       netprobe streams HOST:PORT N PATH\n");
    return 2;
}
