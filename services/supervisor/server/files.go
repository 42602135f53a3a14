package server

import (
	"io"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
)

// fileCommand answers docker cp (archive-stat, -get, -put), export and
// diff. Contents move on a transfer subject (natsbus.ServeDownload,
// ServeUpload) named in the answer.
func (s *Server) fileCommand(verb string, m *nats.Msg) (any, error) {
	req, err := decode[dockermsg.ArchiveRequest](m.Data)
	if err != nil {
		return nil, err
	}
	if err := needID(req.ID); err != nil {
		return nil, err
	}
	if req.Path == "" && (verb == bus.VerbArchiveStat || verb == bus.VerbArchiveGet || verb == bus.VerbArchivePut) {
		return nil, errdefs.New(errdefs.InvalidParameter, "bad parameter: path cannot be empty")
	}
	cm := s.Containers
	switch verb {
	case bus.VerbChanges:
		return cm.Changes(req.ID)
	case bus.VerbArchiveStat:
		st, err := cm.ArchiveStat(req.ID, req.Path)
		if err != nil {
			return nil, err
		}
		return dockermsg.ArchiveResponse{Stat: st}, nil
	case bus.VerbArchiveGet, bus.VerbExport:
		resp := dockermsg.ArchiveResponse{}
		var r io.ReadCloser
		if verb == bus.VerbExport {
			r, err = cm.Export(req.ID)
		} else {
			resp.Stat, r, err = cm.ArchiveGet(req.ID, req.Path)
		}
		if err != nil {
			return nil, err
		}
		if resp.Stream, err = natsbus.ServeDownload(s.Conn, r); err != nil {
			r.Close()
			return nil, err
		}
		return resp, nil
	case bus.VerbArchivePut:
		extract, err := cm.ArchivePut(req.ID, req.Path, req.NoOverwriteDirNonDir, req.CopyUIDGID)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := extract(pr)
			if err == nil {
				_, _ = io.Copy(io.Discard, pr) // what follows the archive's end
			}
			pr.CloseWithError(err)
			done <- err
		}()
		stream, err := natsbus.ServeUpload(s.Conn, pw, done)
		if err != nil {
			pw.CloseWithError(err)
			return nil, err
		}
		return dockermsg.ArchiveResponse{Stream: stream}, nil
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown container command %q", verb)
}
