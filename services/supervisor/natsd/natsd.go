// Package natsd runs the embedded NATS server (with JetStream) the
// supervisor starts when no external NATS URL is configured, and
// authenticates the bus's users: in-process for the embedded server (Auth),
// through auth callout for an external one (Callout).
package natsd

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// MaxPayload is the largest message the embedded server accepts.
const MaxPayload = 8 << 20

// Options configure the embedded server.
type Options struct {
	Listen   string // host:port; port 0 picks a free one
	StoreDir string // JetStream storage (<root>/nats)
	Name     string
	Logger   *slog.Logger
	// Auth authenticates clients; nil leaves the server open (tests only).
	Auth *Auth
}

// Server is a running embedded NATS server.
type Server struct {
	srv *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: bad port", o.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: o.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: MaxPayload,
		NoSigs:     true,
	}
	if o.Auth != nil {
		opts.CustomClientAuthentication = o.Auth
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if o.Logger != nil {
		srv.SetLoggerV2(&logger{o.Logger.With("component", "nats")}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start listening on %s", o.Listen)
	}
	return &Server{srv: srv}, nil
}

// ClientURL is the nats:// URL clients use.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// InProcessConn is a client connection to the server through a pipe: the
// supervisor's own, which so saves the loopback's syscalls and wake-ups on
// every message (see natsbus.Options.InProcess).
func (s *Server) InProcessConn() (net.Conn, error) { return s.srv.InProcessConn() }

// Shutdown stops the server.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

type logger struct{ l *slog.Logger }

func (l *logger) Noticef(f string, v ...any) { l.l.Debug(fmt.Sprintf(f, v...)) }
func (l *logger) Warnf(f string, v ...any)   { l.l.Warn(fmt.Sprintf(f, v...)) }
func (l *logger) Fatalf(f string, v ...any)  { l.l.Error(fmt.Sprintf(f, v...)) }
func (l *logger) Errorf(f string, v ...any)  { l.l.Error(fmt.Sprintf(f, v...)) }
func (l *logger) Debugf(f string, v ...any)  { l.l.Debug(fmt.Sprintf(f, v...)) }
func (l *logger) Tracef(f string, v ...any)  { l.l.Debug(fmt.Sprintf(f, v...)) }
