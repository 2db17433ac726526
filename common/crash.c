/* Fatal-signal reports (see crash.h). Only async-signal-safe calls in the handler. */
#include "common/crash.h"
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define PV_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PV_HAVE_ASAN 1
#endif
#endif

#ifndef PV_HAVE_ASAN
static const char *prog = "privid";
static char altstack[64 * 1024];

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Decimal without stdio (async-signal-safe). */
static void put_num(long v)
{
    char buf[24], *p = buf + sizeof(buf) - 1;
    int neg = v < 0;
    unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
    *p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0 && p > buf + 1);
    if (neg)
        *--p = '-';
    put(p);
}

static void on_fatal(int sig)
{
    void *frames[64];
    put("level=fatal msg=\"fatal signal\" program=");
    put(prog);
    put(" signal=");
    put(sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGABRT ? "SIGABRT" : sig == SIGFPE ? "SIGFPE" : "SIGILL");
    put(" tid=");
    put_num((long)syscall(SYS_gettid));
    put("\n");
    int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    /* SA_RESETHAND restored the default action: raise it again for the core dump and exit status */
    raise(sig);
}

#endif

void pv_crash_handler_install(const char *name)
{
#ifndef PV_HAVE_ASAN
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    void *warm[1];
    prog = name;
    backtrace(warm, 1); /* loads libgcc's unwinder now, not inside the handler */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
    sigaltstack(&ss, NULL); /* the main thread's: a stack overflow still gets reported there */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sa.sa_flags = SA_RESETHAND | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
#else
    (void)name;
#endif
}
