// Command berth-apigw serves the Docker Engine API and translates it into
// commands on berth's NATS bus. The logic lives in services/apigw/server.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"berth/services/apigw/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var (
	version   = "dev"
	gitCommit = ""
)

type hostList []string

func (h *hostList) String() string     { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	var (
		hosts    hostList
		o        server.DaemonOptions
		logLevel string
		pwFile   string
		showVer  bool
	)
	hostname, _ := os.Hostname()
	fs := flag.NewFlagSet("berth-apigw", flag.ExitOnError)
	fs.Var(&hosts, "host", "address to serve the API on, unix:///path or tcp://host:port (repeatable; default unix:///run/berth/berth.sock)")
	fs.Var(&hosts, "H", "short for --host")
	fs.StringVar(&o.Listen.Group, "group", "", "group owning the unix socket (name or gid)")
	fs.BoolVar(&o.Listen.TLSVerify, "tls-verify", false, "tcp: require mutual TLS")
	fs.StringVar(&o.Listen.TLSCACert, "tlscacert", "", "tcp: CA certificate clients must be signed by")
	fs.StringVar(&o.Listen.TLSCert, "tlscert", "", "tcp: server certificate")
	fs.StringVar(&o.Listen.TLSKey, "tlskey", "", "tcp: server key")
	fs.BoolVar(&o.Listen.InsecureTCP, "insecure-tcp", false, "allow tcp:// without TLS (unsafe: root access for anyone who can connect)")
	fs.StringVar(&o.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s)")
	fs.StringVar(&o.NATSUser, "nats-user", os.Getenv("BERTH_NATS_USER"), "NATS user (env BERTH_NATS_USER)")
	fs.StringVar(&pwFile, "nats-password-file", "", "file holding the NATS password (or env BERTH_NATS_PASSWORD)")
	fs.StringVar(&o.NATSCredentials, "nats-credentials", "/var/lib/berth/auth/apigw.json", "NATS credentials file written by the supervisor (used unless --nats-user is given)")
	fs.StringVar(&o.Node, "node", hostname, "node name used in bus subjects")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "127.0.0.1:9324", "address of the /metrics listener (empty: none)")
	fs.Int64Var(&o.MaxUploadBytes, "max-upload-bytes", server.DefaultMaxUploadBytes, "largest streamed request body (docker import, load, cp into a container)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&showVer, "version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if showVer {
		fmt.Printf("berth-apigw %s (Docker Engine API %s)\n", version, server.EngineVersion)
		return
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "berth-apigw: --log-level: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	o.NATSPassword = os.Getenv("BERTH_NATS_PASSWORD")
	if pwFile != "" {
		data, err := os.ReadFile(pwFile)
		if err != nil {
			log.Error("read --nats-password-file", "err", err)
			os.Exit(2)
		}
		o.NATSPassword = strings.TrimSpace(string(data))
	}
	if len(hosts) == 0 {
		hosts = hostList{"unix:///run/berth/berth.sock"}
	}
	o.Hosts = hosts
	o.Version, o.GitCommit, o.Logger = version, gitCommit, log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, o); err != nil {
		log.Error("berth-apigw failed", "err", err)
		os.Exit(1)
	}
}
