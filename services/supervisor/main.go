// Command berth-supervisor is berth's per-node daemon (containerd's part):
// it answers container and image commands on the bus, owns images, records
// and bundles, and spawns one shim per container.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"berth/services/supervisor/app"
	"berth/services/supervisor/natsd"
)

func main() {
	// callout-key FILE: the deployer's one step for an external NATS
	// (deploy/nats.conf): the issuer's public key goes into its auth_callout.
	if len(os.Args) == 3 && os.Args[1] == "callout-key" {
		pub, err := natsd.EnsureCalloutKey(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "berth-supervisor:", err)
			os.Exit(1)
		}
		fmt.Println(pub)
		return
	}
	cfg, err := app.ParseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-supervisor:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "berth-supervisor:", err)
		os.Exit(1)
	}
}
