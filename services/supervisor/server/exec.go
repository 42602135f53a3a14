package server

import (
	"context"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// execCommand handles the exec commands (docker exec).
func (s *Server) execCommand(ctx context.Context, verb string, m *nats.Msg) (any, error) {
	cm := s.Containers
	switch verb {
	case bus.VerbExecCreate:
		req, err := decode[dockermsg.ExecCreateRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return cm.ExecCreate(req)
	case bus.VerbExecStart:
		req, err := decode[bus.ExecStartRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return cm.ExecStart(ctx, req)
	case bus.VerbExecInspect:
		req, err := decode[bus.IDRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return cm.ExecInspect(req.ID)
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown exec command %q", verb)
}

// execExitReport takes a shim's report that an exec process ended.
func (s *Server) execExitReport(id string, m *nats.Msg) {
	var rep bus.ExecExitReport
	if err := bus.Decode(m.Data, &rep); err != nil {
		s.respond(m, bus.EncodeReply(nil, err))
		return
	}
	announce := s.Containers.HandleExecExit(id, rep)
	s.respond(m, bus.EncodeReply(nil, nil))
	announce()
}
