package server

import (
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

func newKey() bus.Meta { return bus.Meta{Key: uuid.NewString()} }

// checkJSON rejects a body sent with a content type other than JSON, like
// dockerd's httputils.CheckForJSON.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return nil
	}
	return errdefs.New(errdefs.InvalidParameter, "unsupported Content-Type header (%s): must be 'application/json'", ct)
}

// readBody reads a JSON body up to the server's limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkJSON(r); err != nil {
		return nil, err
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, &bodyTooLarge{limit: s.cfg.MaxBodyBytes, err: &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return nil, tooLarge(err, s.cfg.MaxBodyBytes)
	}
	return data, nil
}

func (s *Server) containerCreate(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if err := dockerapi.ValidateContainerName(name); err != nil {
		s.fail(w, r, err)
		return
	}
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := dockerapi.DecodeCreateBody(data)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := dockermsg.CreateRequest{
		Meta:             newKey(),
		Name:             name,
		Config:           body.Config,
		HostConfig:       body.HostConfig,
		NetworkingConfig: body.NetworkingConfig,
	}
	var resp dockermsg.CreateResponse
	if err := s.call(r, bus.AreaContainers, bus.VerbCreate, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	writeJSON(w, http.StatusCreated, container.CreateResponse{ID: resp.ID, Warnings: resp.Warnings})
}

// inspect asks the supervisor for one container's record.
func (s *Server) inspect(r *http.Request, ref string) (*dockermsg.Container, error) {
	var c dockermsg.Container
	if err := s.call(r, bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: ref}, &c); err != nil {
		return nil, err
	}
	if err := bus.Token(c.ID); err != nil {
		return nil, errdefs.New(errdefs.Unknown, "the supervisor returned a bad container ID %q", c.ID)
	}
	return &c, nil
}

func (s *Server) containerInspect(w http.ResponseWriter, r *http.Request) {
	c, err := s.inspect(r, chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, dockerapi.ContainerInspect(c))
}

func (s *Server) containerList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := dockerapi.ParseFilters(q.Get("filters"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	opts := dockerapi.ListOptions{All: dockerapi.BoolValue(q.Get("all")), Filters: f}
	if l, err := dockerapi.IntValue("limit", q.Get("limit")); err != nil {
		s.fail(w, r, err)
		return
	} else if l != nil {
		opts.Limit = *l
	}
	if err := dockerapi.ValidateListFilters(&opts); err != nil {
		s.fail(w, r, err)
		return
	}
	if f.Contains("ancestor") {
		opts.AncestorIDs = map[string]bool{}
		for _, ref := range f.Get("ancestor") {
			var im dockermsg.Image
			err := s.call(r, bus.AreaImages, bus.VerbImageInspect, bus.ImageRequest{Name: ref}, &im)
			switch {
			case err == nil:
				opts.AncestorIDs[im.ID] = true
			case errdefs.Is(err, errdefs.NotFound):
			default:
				s.fail(w, r, err)
				return
			}
		}
	}
	var records []dockermsg.Container
	if err := s.call(r, bus.AreaContainers, bus.VerbList, bus.ListRequest{All: opts.All || opts.Limit > 0}, &records); err != nil {
		s.fail(w, r, err)
		return
	}
	now := time.Now()
	out := make([]container.Summary, 0, len(records))
	for _, c := range dockerapi.FilterContainers(records, opts) {
		out = append(out, dockerapi.ContainerSummary(&c, now))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) containerPrune(w http.ResponseWriter, r *http.Request) {
	flt, err := dockerapi.FilterMap(r.URL.Query().Get("filters"), map[string]bool{"label": true, "label!": true, "until": true})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := bus.PruneRequest{Meta: newKey(), Filters: flt}
	var resp bus.PruneResponse
	if err := s.callTimeout(r, 2*s.cfg.CallTimeout, bus.AreaContainers, bus.VerbPrune, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Deleted == nil {
		resp.Deleted = []string{}
	}
	writeJSON(w, http.StatusOK, container.PruneReport{ContainersDeleted: resp.Deleted, SpaceReclaimed: resp.SpaceReclaimed})
}

func (s *Server) simple(w http.ResponseWriter, r *http.Request, verb string, req any, d time.Duration) {
	if err := s.callTimeout(r, d, bus.AreaContainers, verb, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) containerStart(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	err := s.call(r, bus.AreaContainers, bus.VerbStart, bus.IDRequest{Meta: newKey(), ID: id}, nil)
	if err != nil {
		if !errdefs.Is(err, errdefs.NotModified) && !errdefs.Is(err, errdefs.Unavailable) {
			// The container will not run: its attach streams get no EOF.
			s.endAttaches(id)
		}
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// stopParams reads ?t= (or ?timeout=) and how long to wait for the
// supervisor: the stop timeout plus a margin. The callers read ?signal=.
func (s *Server) stopParams(r *http.Request) (bus.StopRequest, time.Duration, error) {
	q := r.URL.Query()
	req := bus.StopRequest{Meta: newKey(), ID: chi.URLParam(r, "id")}
	tv := q.Get("t")
	if tv == "" {
		tv = q.Get("timeout")
	}
	t, err := dockerapi.IntValue("t", tv)
	if err != nil {
		return req, 0, err
	}
	req.Timeout = t
	d := s.cfg.CallTimeout
	switch {
	case t != nil && *t < 0:
		d = 24 * time.Hour
	case t != nil && time.Duration(*t)*time.Second+10*time.Second > d:
		d = time.Duration(*t)*time.Second + 10*time.Second
	}
	return req, d, nil
}

func (s *Server) containerStop(w http.ResponseWriter, r *http.Request) {
	req, d, err := s.stopParams(r)
	if err == nil {
		req.Signal, err = dockerapi.ParseSignal(r.URL.Query().Get("signal"))
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.simple(w, r, bus.VerbStop, req, d)
}

func (s *Server) containerRestart(w http.ResponseWriter, r *http.Request) {
	req, d, err := s.stopParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Signal, err = dockerapi.ParseSignal(r.URL.Query().Get("signal")); err != nil {
		// dockerd parses it in the restart, which names the container
		s.fail(w, r, errdefs.New(errdefs.KindOf(err), "Cannot restart container %s: %s", req.ID, err))
		return
	}
	s.simple(w, r, bus.VerbRestart, req, d+s.cfg.CallTimeout)
}

func (s *Server) containerKill(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	sig, err := dockerapi.ParseSignal(r.URL.Query().Get("signal"))
	if err != nil {
		// the supervisor names the container in its errors; this one too
		s.fail(w, r, errdefs.New(errdefs.KindOf(err), "cannot kill container: %s: %s", id, err))
		return
	}
	s.simple(w, r, bus.VerbKill, bus.KillRequest{Meta: newKey(), ID: id, Signal: sig}, s.cfg.CallTimeout)
}

func (s *Server) containerRename(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "Neither old nor new names may be empty"))
		return
	}
	if err := dockerapi.ValidateContainerName(name); err != nil {
		s.fail(w, r, err)
		return
	}
	s.simple(w, r, bus.VerbRename, bus.RenameRequest{Meta: newKey(), ID: chi.URLParam(r, "id"), NewName: name}, s.cfg.CallTimeout)
}

func (s *Server) containerRemove(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if dockerapi.BoolValue(q.Get("link")) {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "links are not supported by berth"))
		return
	}
	req := bus.RemoveRequest{
		Meta:          newKey(),
		ID:            chi.URLParam(r, "id"),
		Force:         dockerapi.BoolValue(q.Get("force")),
		RemoveVolumes: dockerapi.BoolValue(q.Get("v")),
	}
	s.simple(w, r, bus.VerbRemove, req, 2*s.cfg.CallTimeout)
}

func (s *Server) containerResize(w http.ResponseWriter, r *http.Request) {
	h, wd, err := resizeParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.inspect(r, chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !c.State.Running {
		s.fail(w, r, errdefs.New(errdefs.Conflict, "container %s is not running", c.ID))
		return
	}
	if err := s.resizeShim(c.ID, bus.ShimResizeRequest{Height: h, Width: wd}); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
