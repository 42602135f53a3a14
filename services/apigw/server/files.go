package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/docker/docker/api/types/container"
	"github.com/go-chi/chi/v5"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// docker cp (HEAD, GET and PUT /containers/{id}/archive), export and diff.
// The tar flows over a transfer subject the supervisor names
// (natsbus.Download, Upload).

const pathStatHeader = "X-Docker-Container-Path-Stat"

func archiveRequest(r *http.Request) (dockermsg.ArchiveRequest, error) {
	q := r.URL.Query()
	req := dockermsg.ArchiveRequest{
		ID:                   chi.URLParam(r, "id"),
		Path:                 q.Get("path"),
		NoOverwriteDirNonDir: dockerapi.BoolValue(q.Get("noOverwriteDirNonDir")),
		CopyUIDGID:           dockerapi.BoolValue(q.Get("copyUIDGID")),
	}
	if req.Path == "" {
		return req, errdefs.New(errdefs.InvalidParameter, "bad parameter: path cannot be empty")
	}
	return req, nil
}

func setPathStat(w http.ResponseWriter, st *container.PathStat) {
	if st == nil {
		return
	}
	data, err := json.Marshal(st)
	if err == nil {
		w.Header().Set(pathStatHeader, base64.StdEncoding.EncodeToString(data))
	}
}

func (s *Server) containerArchiveHead(w http.ResponseWriter, r *http.Request) {
	req, err := archiveRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp dockermsg.ArchiveResponse
	if err := s.call(r, bus.AreaContainers, bus.VerbArchiveStat, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	setPathStat(w, resp.Stat)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) containerArchiveGet(w http.ResponseWriter, r *http.Request) {
	req, err := archiveRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.download(w, r, bus.VerbArchiveGet, req)
}

func (s *Server) containerExport(w http.ResponseWriter, r *http.Request) {
	s.download(w, r, bus.VerbExport, dockermsg.ArchiveRequest{ID: chi.URLParam(r, "id")})
}

// download asks the supervisor for a tar and streams it to the client.
func (s *Server) download(w http.ResponseWriter, r *http.Request, verb string, req dockermsg.ArchiveRequest) {
	nc, err := s.conn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp dockermsg.ArchiveResponse
	if err := s.call(r, bus.AreaContainers, verb, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	body := natsbus.Download(r.Context(), nc, resp.Stream)
	defer body.Close()
	setPathStat(w, resp.Stat)
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if _, err := io.CopyBuffer(flushWriter{w}, body, make([]byte, natsbus.ChunkSize)); err != nil {
		// too late for a status: the client sees a truncated tar
		s.log.Warn("streaming a container's files", "verb", verb, "id", req.ID, "err", err)
	}
}

// flushWriter sends every chunk on at once (the copy's buffer is a chunk).
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

func (s *Server) containerArchivePut(w http.ResponseWriter, r *http.Request) {
	req, err := archiveRequest(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	nc, err := s.conn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp dockermsg.ArchiveResponse
	if err := s.call(r, bus.AreaContainers, bus.VerbArchivePut, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := natsbus.Upload(r.Context(), nc, resp.Stream, s.uploadBody(w, r)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = tooLarge(mbe, mbe.Limit)
		}
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) containerChanges(w http.ResponseWriter, r *http.Request) {
	var changes []container.FilesystemChange
	if err := s.call(r, bus.AreaContainers, bus.VerbChanges, dockermsg.ArchiveRequest{ID: chi.URLParam(r, "id")}, &changes); err != nil {
		s.fail(w, r, err)
		return
	}
	if changes == nil {
		changes = []container.FilesystemChange{}
	}
	writeJSON(w, http.StatusOK, changes)
}
