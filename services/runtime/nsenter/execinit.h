#ifndef BERTH_EXECINIT_H
#define BERTH_EXECINIT_H
/* berth_exec_init reads an exec's process from the sync socket fd, sets it
 * up and execs it; it never returns. */
void berth_exec_init(int fd) __attribute__((noreturn));

/* berth_fail reports {"type":"error","msg":...} to the runtime on fd (on
 * stderr if it cannot) and exits 1: the constructor's and the exec init's
 * one way to fail. */
void berth_fail(int fd, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* berth_errstr is errno's text as Go writes it (strerror's, small first
 * letter), for messages that read like the Go runtime's. */
const char *berth_errstr(int err);
#endif
