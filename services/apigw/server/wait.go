package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// containerWait is POST /containers/{id}/wait. It subscribes to the node's
// die and destroy events first, flushes, and only then reads the record, so
// an exit between the two cannot be missed.
func (s *Server) containerWait(w http.ResponseWriter, r *http.Request) {
	cond := container.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "":
		cond = container.WaitConditionNotRunning
	case container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "invalid condition: %q", cond))
		return
	}
	nc, err := s.conn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ch := make(chan *nats.Msg, 256)
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}()
	for _, action := range []string{"die", "destroy"} {
		sub, err := nc.ChanSubscribe(bus.EventSubject(s.cfg.Node, "container", action), ch)
		if err != nil {
			s.fail(w, r, errdefs.Wrap(errdefs.Unavailable, err))
			return
		}
		subs = append(subs, sub)
	}
	if err := nc.FlushTimeout(s.cfg.CallTimeout); err != nil {
		s.metrics.busErrors.Inc()
		s.fail(w, r, errdefs.New(errdefs.Unavailable, "the berth bus (NATS) is unavailable: %v", err))
		return
	}
	c, err := s.inspect(r, chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}

	// Like dockerd: the header goes out at once, the body when the wait ends.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)

	exitCode := c.State.ExitCode
	finish := func(code int, errMsg string) {
		resp := container.WaitResponse{StatusCode: int64(code)}
		if errMsg != "" {
			resp.Error = &container.WaitExitError{Message: errMsg}
		}
		_ = json.NewEncoder(w).Encode(resp)
		flush(w)
	}
	if cond == container.WaitConditionNotRunning && !c.State.Running {
		finish(exitCode, "")
		return
	}
	ctx, cancel := s.doneCtx(r)
	defer cancel()
	// Events are not seen while the bus is away: a wait that lost it fails
	// (as a wait on a restarting dockerd does) rather than hang for ever.
	busCheck := time.NewTicker(250 * time.Millisecond)
	defer busCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-busCheck.C:
			if !nc.IsConnected() {
				s.metrics.busErrors.Inc()
				finish(-1, "the berth bus (NATS) was lost while waiting for the container; its state is unknown until the bus is back (see docker ps -a)")
				return
			}
		case msg := <-ch:
			var ev bus.Event
			if json.Unmarshal(msg.Data, &ev) != nil || ev.Actor.ID != c.ID {
				continue
			}
			if code, err := strconv.Atoi(ev.Actor.Attributes["exitCode"]); err == nil {
				exitCode = code
			}
			switch {
			case ev.Action == "destroy":
				finish(exitCode, "")
				return
			case ev.Action == "die" && cond != container.WaitConditionRemoved:
				finish(exitCode, "")
				return
			}
		}
	}
}
