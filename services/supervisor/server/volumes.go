package server

import (
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

func (s *Server) volumeCommand(verb string, m *nats.Msg) (any, error) {
	vs := s.Volumes
	if vs == nil {
		return nil, errdefs.New(errdefs.NotImplemented, "volumes are not available")
	}
	switch verb {
	case bus.VerbVolumeCreate:
		req, err := decode[dockermsg.VolumeCreateRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return vs.Create(req)
	case bus.VerbVolumeList:
		req, err := decode[dockermsg.VolumeListRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return vs.List(req.Filters)
	case bus.VerbVolumeInspect, bus.VerbVolumeRemove:
		req, err := decode[dockermsg.VolumeRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if req.Name == "" {
			return nil, errdefs.New(errdefs.InvalidParameter, "missing volume name")
		}
		if verb == bus.VerbVolumeInspect {
			return vs.Inspect(req.Name)
		}
		return nil, vs.Remove(req.Name, req.Force)
	case bus.VerbVolumePrune:
		req, err := decode[dockermsg.VolumePruneRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return vs.Prune(req.Filters)
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown volume command %q", verb)
}
