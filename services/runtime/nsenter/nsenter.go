// Package nsenter joins existing namespaces before the Go runtime starts.
//
// setns(2) into a mount or user namespace is refused for multi-threaded
// processes, and the Go runtime starts threads before main runs, so the
// joining is done by a C constructor (like runc's nsexec) that runs while
// the process is still single-threaded. It only acts when the runtime
// re-executes itself as the container-side init with _BERTH_NSENTER set;
// every other invocation pays nothing but a getenv.
//
// Joining a pid (or time) namespace only affects children, so in that case
// the constructor forks: the intermediate reports the child's pid (as seen
// by the runtime) on the sync socket and exits, and the child carries on
// into the Go runtime inside the joined namespaces.
package nsenter

/*
#cgo CFLAGS: -Wall -O2
#cgo LDFLAGS: -static
extern void berth_nsenter(void);
void __attribute__((constructor)) berth_nsenter_init(void) { berth_nsenter(); }
*/
import "C"
