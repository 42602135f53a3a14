package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// execCreate is POST /containers/{id}/exec.
func (s *Server) execCreate(w http.ResponseWriter, r *http.Request) {
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var cfg container.ExecOptions
	if len(bytes.TrimSpace(data)) > 0 {
		if err := dockerapi.DecodeJSON(data, &cfg); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if len(cfg.Cmd) == 0 {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "No exec command specified"))
		return
	}
	if _, err := detachKeys(cfg.DetachKeys); err != nil {
		s.fail(w, r, err)
		return
	}
	req := dockermsg.ExecCreateRequest{Meta: newKey(), ID: chi.URLParam(r, "id"), Config: &cfg}
	var resp dockermsg.ExecCreateResponse
	if err := s.call(r, bus.AreaContainers, bus.VerbExecCreate, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, container.ExecCreateResponse{ID: resp.ID})
}

// execID reads {id}: an exec ID is one subject token.
func execID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "id")
	if bus.Token(id) != nil {
		return "", errdefs.New(errdefs.NotFound, "No such exec instance: %s", id)
	}
	return id, nil
}

// execInspect is GET /exec/{id}/json.
func (s *Server) execInspect(w http.ResponseWriter, r *http.Request) {
	id, err := execID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp bus.ExecInspect
	if err := s.call(r, bus.AreaContainers, bus.VerbExecInspect, bus.IDRequest{ID: id}, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// execStart is POST /exec/{id}/start. Detached, it answers once the
// process runs. Otherwise apigw subscribes to the process's output before
// the supervisor starts it, then hijacks the connection as attach does;
// the stream ends at the shim's EOF, which comes once the supervisor has
// recorded the exit code, so that the client's inspect right after finds
// it. A process that could not start (or a container that stopped or was
// paused meanwhile) gets dockerd's treatment: the error in the stream,
// which is all the CLI shows, and an exit code (126, 127) in inspect.
func (s *Server) execStart(w http.ResponseWriter, r *http.Request) {
	id, err := execID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var opts container.ExecStartOptions
	if len(bytes.TrimSpace(data)) > 0 {
		if err := dockerapi.DecodeJSON(data, &opts); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	req := bus.ExecStartRequest{Meta: newKey(), ExecID: id, Detach: opts.Detach, ConsoleSize: opts.ConsoleSize}
	if opts.Detach {
		if err := s.call(r, bus.AreaContainers, bus.VerbExecStart, req, nil); err != nil {
			s.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	nc, err := s.conn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.fail(w, r, errdefs.New(errdefs.Unknown, "this connection cannot be hijacked"))
		return
	}
	// On one connection NATS keeps order: the subscription is in place on
	// the server before the start command it sends next.
	out := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(bus.ExecIOOut(s.cfg.Node, "*", id), out)
	if err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.Unavailable, err))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, 64<<20)
	var resp bus.ExecStartResponse
	startErr := s.call(r, bus.AreaContainers, bus.VerbExecStart, req, &resp)
	if errdefs.Is(startErr, errdefs.NotFound) {
		s.fail(w, r, startErr)
		return
	}
	tty := resp.Tty
	if startErr != nil {
		tty = opts.Tty
	}
	conn, brw, release, ok := s.hijackStream(w, r, hj, tty)
	if !ok {
		return
	}
	defer release()
	if startErr != nil {
		msg := []byte(startErr.Error() + "\r\n")
		if tty {
			_, _ = conn.Write(msg)
		} else {
			_ = frame(conn, streamStdout, msg)
		}
		return
	}

	// Should the shim vanish, its container's die or destroy ends the stream.
	sess := &attachSession{id: resp.ContainerID, ended: make(chan struct{})}
	for _, action := range []string{"die", "destroy"} {
		if es, err := nc.Subscribe(bus.EventSubject(s.cfg.Node, "container", action), sess.onEvent); err == nil {
			defer func() { _ = es.Unsubscribe() }()
		}
	}
	done := make(chan struct{})
	var stdinWG sync.WaitGroup
	if resp.AttachStdin {
		keys, _ := detachKeys(resp.DetachKeys)
		stdinWG.Add(1)
		go func() {
			defer stdinWG.Done()
			s.pumpStdin(nc, bus.ExecIOIn(s.cfg.Node, resp.ContainerID, id), true, stdinReader(brw.Reader, tty, keys), done, sess.end)
		}()
	}
	defer func() {
		close(done)
		conn.Close()
		stdinWG.Wait()
	}()
	s.pumpOutput(conn, out, tty, resp.AttachStdout, resp.AttachStderr, sess.ended)
}

// execResize is POST /exec/{id}/resize.
func (s *Server) execResize(w http.ResponseWriter, r *http.Request) {
	h, wd, err := resizeParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := execID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var e bus.ExecInspect
	if err := s.call(r, bus.AreaContainers, bus.VerbExecInspect, bus.IDRequest{ID: id}, &e); err != nil {
		s.fail(w, r, err)
		return
	}
	if !e.Running {
		// it has ended: nothing to resize (a client resizes right after
		// the start, which a short process may not outlive)
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := s.resizeShim(e.ContainerID, bus.ShimResizeRequest{Height: h, Width: wd, ExecID: id}); err != nil && !errdefs.Is(err, errdefs.NotFound) {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// resizeParams reads ?h= and ?w=.
func resizeParams(r *http.Request) (uint16, uint16, error) {
	q := r.URL.Query()
	h, err1 := strconv.ParseUint(q.Get("h"), 10, 16)
	wd, err2 := strconv.ParseUint(q.Get("w"), 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, errdefs.New(errdefs.InvalidParameter, "invalid resize parameters: h and w must be integers")
	}
	return uint16(h), uint16(wd), nil
}

// resizeShim asks the shim of container id to resize a terminal; a shim
// that is not there has nothing to resize.
func (s *Server) resizeShim(id string, req bus.ShimResizeRequest) error {
	nc, err := s.conn()
	if err != nil {
		return err
	}
	data, _ := json.Marshal(req)
	msg, err := nc.Request(bus.Shim(s.cfg.Node, id, bus.ShimResize), data, 5*time.Second)
	switch {
	case err == nil:
		return bus.DecodeReply(msg.Data, nil)
	case err == nats.ErrNoResponders:
		return nil
	}
	return errdefs.Wrap(errdefs.Unavailable, err)
}
