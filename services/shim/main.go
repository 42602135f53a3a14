// Command berth-shim is the shim of one container: started by the
// supervisor with `berth-shim start --config <shim.json>`, it creates the
// container with the OCI runtime, holds its stdio and log, reaps it and
// reports its exit on the bus. See package berth/services/shim/shim.
package main

import (
	"os"

	"berth/services/shim/shim"
)

func main() {
	os.Exit(shim.Main(os.Args[1:], os.Stdout, os.Stderr))
}
