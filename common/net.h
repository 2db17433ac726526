/*
 * Listening sockets shared by the HTTP servers (common/net.c).
 */
#ifndef PV_COMMON_NET_H
#define PV_COMMON_NET_H

#include <stddef.h>

/*
 * Parses HOST:PORT or [V6]:PORT, binds a non-blocking listening socket
 * (SO_REUSEADDR, TCP_NODELAY) and writes "ADDR:PORT" as bound into `bound`.
 * *out receives the descriptor (caller closes). Returns 0, PV_EINVAL for a
 * malformed address or unknown host, or -errno.
 */
int pv_net_listen(int *out, const char *spec, char *bound, size_t boundlen);

#endif
