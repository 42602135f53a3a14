// Package natsbus connects a berth process to the bus with nats.go and
// makes request/reply calls on it. It is apart from package bus so that
// berth-shim, which speaks to the bus with the much smaller
// bus/natslite, links neither nats.go nor what it brings (net/http,
// crypto/tls, websocket and compression support).
package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// Options say how a process connects to NATS.
type Options struct {
	URL      string // nats://host:port[,…]
	Name     string // connection name, shown by the server (berth-apigw, berth-shim-<id>…)
	User     string
	Password string
	// InboxPrefix replaces "_INBOX" for the answers to this connection's
	// requests (a shim may subscribe only to its own, ShimInboxPrefix).
	InboxPrefix string
	// InProcess, when set, is the server to use through an in-process
	// pipe instead of URL (the supervisor and its embedded server).
	InProcess nats.InProcessConnProvider
	Logger    *slog.Logger
}

// Connect dials NATS and keeps reconnecting for ever: every berth process
// must outlive an outage of the bus.
func Connect(o Options) (*nats.Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("bus disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus reconnected", "url", nc.ConnectedUrl())
		}),
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", o.URL, err)
	}
	return nc, nil
}

// Call sends req to subject and decodes the answer into resp (which may be
// nil). Errors the far side returned keep their errdefs kind; a bus that is
// away or a service that does not answer becomes errdefs.Unavailable.
func Call(ctx context.Context, nc *nats.Conn, subject string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	// A request in flight when the connection drops would wait for its
	// whole timeout (the answer cannot come): fail it as soon as the
	// connection is seen lost.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go watchConn(wctx, nc, cancel)
	msg, err := nc.RequestWithContext(wctx, subject, data)
	if err != nil {
		if errors.Is(context.Cause(wctx), errConnLost) {
			return errdefs.New(errdefs.Unavailable, "the berth bus (NATS) connection was lost while waiting for the answer on %s; the command may or may not have been applied", subject)
		}
		return unavailable(err)
	}
	return bus.DecodeReply(msg.Data, resp)
}

var errConnLost = errors.New("bus connection lost")

// watchConn cancels ctx with errConnLost once nc is no longer connected.
func watchConn(ctx context.Context, nc *nats.Conn, cancel context.CancelCauseFunc) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !nc.IsConnected() {
				cancel(errConnLost)
				return
			}
		}
	}
}

// errNoResponders is Call's error when nobody subscribes to the subject.
var errNoResponders = errdefs.New(errdefs.Unavailable, "berth supervisor is not answering on the bus (no responders)")

// IsNoResponders reports whether Call failed because nobody subscribes to
// the subject: the service is down, or reconnecting.
func IsNoResponders(err error) bool { return err == errNoResponders }

func unavailable(err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return errNoResponders
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return errdefs.New(errdefs.Unavailable, "berth supervisor did not answer in time")
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting):
		return errdefs.New(errdefs.Unavailable, "the berth bus (NATS) is unavailable: %v", err)
	}
	return errdefs.Wrap(errdefs.Unavailable, err)
}
