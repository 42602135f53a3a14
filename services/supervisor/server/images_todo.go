package server

import (
	"context"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

func (s *Server) push(req *bus.ImagePushRequest) (any, error) {
	return nil, errdefs.New(errdefs.NotImplemented, "push")
}
func (s *Server) load(ctx context.Context, req *bus.ImageLoadRequest) (any, error) {
	return nil, errdefs.New(errdefs.NotImplemented, "load")
}
func (s *Server) save(ctx context.Context, req *bus.ImageSaveRequest) (any, error) {
	return nil, errdefs.New(errdefs.NotImplemented, "save")
}
func (s *Server) commit(data []byte) (any, error) {
	return nil, errdefs.New(errdefs.NotImplemented, "commit")
}
