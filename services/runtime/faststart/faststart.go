// Package faststart does `berth-runtime start` on its common path in C,
// before the Go runtime starts: start only releases the init parked on
// the exec fifo, and a Go start-up is most of what it would otherwise cost
// (the shim starts every container this way).
//
// The common path is `--root R [--log F] [--log-format T] start ID` of a
// created container without poststart hooks (create leaves a marker,
// libct's poststartMarker, when it has some). Anything else (other flags,
// no fifo, an init that died, hooks to run) goes on into Go, where
// libct.Start handles it and gives the errors; the constructor never fails
// itself once it has taken the fifo's byte but for removing the fifo.
package faststart

/*
#cgo CFLAGS: -Wall -O2
extern void berth_faststart(int argc, char **argv);
static void __attribute__((constructor)) berth_faststart_init(int argc, char **argv) { berth_faststart(argc, argv); }
*/
import "C"
