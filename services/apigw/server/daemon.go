package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"berth/pkg/bus"
	"berth/pkg/bus/natsbus"
)

// DaemonOptions are berth-apigw's command line.
type DaemonOptions struct {
	Hosts        []string
	Listen       ListenOptions
	NATSURL      string
	NATSUser     string
	NATSPassword string
	// NATSCredentials is a credentials file ({"user":…,"password":…}),
	// read on every connection attempt (the supervisor may write it after
	// apigw starts); NATSUser, when set, takes precedence.
	NATSCredentials string
	Node            string
	MetricsAddr     string // empty: no metrics listener
	MaxUploadBytes  int64  // streamed bodies (import, load, cp); 0: DefaultMaxUploadBytes
	Version         string
	GitCommit       string
	Logger          *slog.Logger
	// Ready, if set, is called with the API listeners' addresses once they accept.
	Ready func(addrs []net.Addr)
}

// Run serves the API until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, o DaemonOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := bus.Token(o.Node); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	if len(o.Hosts) == 0 {
		return errors.New("no --host to listen on")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := New(Config{Node: o.Node, Logger: log, Registerer: reg, Version: o.Version, GitCommit: o.GitCommit, MaxUploadBytes: o.MaxUploadBytes})
	o.Listen.Logger = log

	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, h := range o.Hosts {
		l, err := Listen(h, o.Listen)
		if err != nil {
			closeAll()
			return err
		}
		listeners = append(listeners, l)
		log.Info("API listening", "host", h)
	}

	// The bus: connect in the background so the API answers (503) while NATS is away.
	connCtx, stopConnecting := context.WithCancel(ctx)
	defer stopConnecting()
	var busWG sync.WaitGroup
	busWG.Add(1)
	go func() {
		defer busWG.Done()
		delay := 250 * time.Millisecond
		for {
			user, pass := o.NATSUser, o.NATSPassword
			if user == "" && o.NATSCredentials != "" {
				if c, err := bus.LoadCredentials(o.NATSCredentials); err == nil {
					user, pass = c.User, c.Password
				} else {
					log.Warn("no NATS credentials; connecting without", "err", err)
				}
			}
			nc, err := natsbus.Connect(natsbus.Options{URL: o.NATSURL, Name: "berth-apigw", User: user, Password: pass, Logger: log})
			if err == nil {
				log.Info("bus connected", "url", nc.ConnectedUrl(), "node", o.Node)
				s.SetConn(nc)
				<-connCtx.Done()
				return
			}
			log.Warn("bus not reachable yet, retrying", "url", o.NATSURL, "err", err)
			select {
			case <-connCtx.Done():
				return
			case <-time.After(delay):
			}
			if delay < 5*time.Second {
				delay *= 2
			}
		}
	}()

	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, len(listeners)+1)
	for _, l := range listeners {
		go func(l net.Listener) {
			if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(l)
	}
	var ms *http.Server
	if o.MetricsAddr != "" {
		ml, err := net.Listen("tcp", o.MetricsAddr)
		if err != nil {
			hs.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		ms = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := ms.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		log.Info("metrics listening", "addr", ml.Addr().String())
	}
	if o.Ready != nil {
		addrs := make([]net.Addr, len(listeners))
		for i, l := range listeners {
			addrs[i] = l.Addr()
		}
		o.Ready(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("listener failed", "err", runErr)
	}
	s.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete", "err", err)
		hs.Close()
	}
	if ms != nil {
		_ = ms.Shutdown(sctx)
	}
	stopConnecting()
	busWG.Wait()
	if nc, err := s.conn(); err == nil {
		_ = nc.Drain()
	}
	return runErr
}
