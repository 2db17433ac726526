/*
 * Fatal-signal reports for the servers: on SIGSEGV, SIGBUS, SIGABRT, SIGFPE or
 * SIGILL, one log line naming the signal and the faulting thread, then the
 * stack of that thread (backtrace_symbols_fd: module+offset, no heap use) on
 * stderr, then the default action (core dump where enabled). A crash in
 * production or CI then says where it happened. Never prints memory contents.
 * Not installed under AddressSanitizer, which reports these itself.
 */
#ifndef PV_COMMON_CRASH_H
#define PV_COMMON_CRASH_H

/* `name` is the program's name in the report; call once, early in main. */
void pv_crash_handler_install(const char *name);

#endif
