#ifndef BERTH_EXECINIT_H
#define BERTH_EXECINIT_H
/* berth_exec_init reads an exec's process from the sync socket fd, sets it
 * up and execs it; it never returns. */
void berth_exec_init(int fd) __attribute__((noreturn));
#endif
