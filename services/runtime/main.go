// Command berth-runtime is berth's OCI runtime, the part runc plays: it
// creates the namespaces, cgroups and root filesystem of a container and
// execs its process. It has runc's command line (see package cli). The
// nsenter and faststart imports must stay: their C constructors run before
// the Go runtime starts, nsenter's to join namespaces for the
// container-side init, faststart's to do a plain start.
//
// updatemaxprocs=0: the runtime's processes are short-lived; no background
// re-reading of the cgroup CPU limit.
//
//go:debug updatemaxprocs=0
package main

import (
	"os"

	"berth/services/runtime/cli"
	_ "berth/services/runtime/faststart"
	_ "berth/services/runtime/nsenter"
)

func main() { os.Exit(cli.Main(os.Args)) }
