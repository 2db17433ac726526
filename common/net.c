/*
 * Listening sockets for the HTTP servers (privid-gateway, privid-shard):
 * HOST:PORT parsing, bind, listen, non-blocking, and the address actually
 * bound (port 0 picks a free one).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common/error.h"
#include "common/net.h"

int pv_net_listen(int *out, const char *spec, char *bound, size_t boundlen)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || strlen(spec) >= sizeof(host))
        return PV_EINVAL;
    size_t hlen = (size_t)(colon - spec);
    const char *h = spec;
    if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']')
        h++, hlen -= 2;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return PV_EINVAL;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%ld", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0)
        return PV_EINVAL;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret = 0;
    if (fd < 0) {
        ret = -errno;
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        ret = -errno;
        close(fd);
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char addr[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
        p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(bound, boundlen, "%s:%d", addr, p);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
        p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(bound, boundlen, "[%s]:%d", addr, p);
    }
    *out = fd;
out:
    freeaddrinfo(ai);
    return ret;
}
