package containers

import (
	"context"
	"time"

	"berth/pkg/bus/natsbus"
)

// callShim is natsbus.Call to the shim of id that waits, within ctx, for a
// shim that lives but has no subscription yet: it is reconnecting (after an
// outage of an external bus, shims are admitted again only once the
// supervisor is back, a moment after it).
func (m *Manager) callShim(ctx context.Context, id, verb string, req, resp any) error {
	for {
		err := natsbus.Call(ctx, m.cfg.Conn, m.shimSubject(id, verb), req, resp)
		if !natsbus.IsNoResponders(err) || !m.shimAlive(id) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
