package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"berth/pkg/bus"
	"berth/pkg/bus/natslite"
	"berth/pkg/errdefs"
)

// The shim speaks to the bus with bus/natslite, not nats.go: see that
// package for why and for what it leaves out (TLS among others: the shim
// dials the node's own NATS server on the loopback). The rest of berth uses
// bus/natsbus, and the contract on the wire is the same.

// connect dials the bus as the shim's own user; the connection then
// reconnects by itself, for ever, every 250ms.
func (d *daemon) connect() (*natslite.Conn, error) {
	cfg := &d.cfg
	log := d.log
	nc, err := natslite.Connect(natslite.Options{
		URL: cfg.NATSURL, Name: "berth-shim-" + cfg.ID,
		User: cfg.NATSUser, Password: cfg.NATSPassword,
		InboxPrefix:  bus.ShimInboxPrefix(cfg.Node, cfg.ID),
		OnDisconnect: func(err error) { log.Warn("bus disconnected", "err", err) },
		OnReconnect:  func(url string) { log.Info("bus reconnected", "url", url) },
		OnError:      func(err error) { log.Warn("bus error", "err", err) },
	})
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, err)
	}
	return nc, nil
}

// call sends req to subject and decodes the answer into resp (which may be
// nil), as natsbus.Call does: errors the far side returned keep their
// errdefs kind; a bus that is away, a connection lost while waiting or a
// supervisor that does not answer become errdefs.Unavailable.
func (d *daemon) call(ctx context.Context, subject string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg, err := d.nc.Request(ctx, subject, nil, data)
	if err != nil {
		switch {
		case errors.Is(err, natslite.ErrConnectionLost):
			return errdefs.New(errdefs.Unavailable, "the berth bus (NATS) connection was lost while waiting for the answer on %s; the command may or may not have been applied", subject)
		case errors.Is(err, natslite.ErrNoResponders):
			return errdefs.New(errdefs.Unavailable, "berth supervisor is not answering on the bus (no responders)")
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, natslite.ErrTimeout):
			return errdefs.New(errdefs.Unavailable, "berth supervisor did not answer in time")
		case errors.Is(err, natslite.ErrClosed), errors.Is(err, natslite.ErrDisconnected):
			return errdefs.New(errdefs.Unavailable, "the berth bus (NATS) is unavailable: %v", err)
		}
		return errdefs.Wrap(errdefs.Unavailable, err)
	}
	return bus.DecodeReply(msg.Data, resp)
}
