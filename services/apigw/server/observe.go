package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/go-chi/chi/v5"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// StatsInterval is how often a stats stream samples (Docker's collector
// runs once a second).
const StatsInterval = time.Second

func (s *Server) containerPause(w http.ResponseWriter, r *http.Request) {
	s.simple(w, r, bus.VerbPause, bus.IDRequest{Meta: newKey(), ID: chi.URLParam(r, "id")}, s.cfg.CallTimeout)
}

func (s *Server) containerUnpause(w http.ResponseWriter, r *http.Request) {
	s.simple(w, r, bus.VerbUnpause, bus.IDRequest{Meta: newKey(), ID: chi.URLParam(r, "id")}, s.cfg.CallTimeout)
}

// containerUpdate is POST /containers/{id}/update.
func (s *Server) containerUpdate(w http.ResponseWriter, r *http.Request) {
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var upd container.UpdateConfig
	if len(data) > 0 {
		if err := json.Unmarshal(data, &upd); err != nil {
			s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "%v", err))
			return
		}
	}
	var resp dockermsg.UpdateResponse
	req := dockermsg.UpdateRequest{Meta: newKey(), ID: chi.URLParam(r, "id"), Update: &upd}
	if err := s.call(r, bus.AreaContainers, bus.VerbUpdate, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Warnings == nil {
		resp.Warnings = []string{}
	}
	writeJSON(w, http.StatusOK, container.UpdateResponse{Warnings: resp.Warnings})
}

// containerTop is GET /containers/{id}/top?ps_args=.
func (s *Server) containerTop(w http.ResponseWriter, r *http.Request) {
	var resp bus.TopResponse
	req := bus.TopRequest{ID: chi.URLParam(r, "id"), PsArgs: r.URL.Query().Get("ps_args")}
	if err := s.call(r, bus.AreaContainers, bus.VerbTop, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, container.TopResponse{Titles: resp.Titles, Processes: resp.Processes})
}

func (s *Server) sampleStats(r *http.Request, id string) (*container.StatsResponse, error) {
	var st container.StatsResponse
	if err := s.call(r, bus.AreaContainers, bus.VerbStats, bus.IDRequest{ID: id}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// containerStats is GET /containers/{id}/stats: with stream (the default)
// a sample a second, each with the previous one's CPU figures as
// precpu_stats (from which clients compute the CPU %); without, one sample
// taken a second after a first, so that it has them too; with one-shot, a
// single sample at once.
func (s *Server) containerStats(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream := q.Get("stream") == "" || dockerapi.BoolValue(q.Get("stream"))
	oneShot := dockerapi.BoolValue(q.Get("one-shot"))
	if oneShot && stream {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "cannot have stream=true and one-shot=true"))
		return
	}
	id := chi.URLParam(r, "id")
	cur, err := s.sampleStats(r, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if oneShot || (!stream && cur.Read.IsZero()) { // a stopped container: its name and ID only
		_ = enc.Encode(cur)
		return
	}
	tick := time.NewTicker(StatsInterval)
	defer tick.Stop()
	var prev *container.StatsResponse
	for {
		if prev != nil {
			cur.PreCPUStats, cur.PreRead = prev.CPUStats, prev.Read
		}
		if stream || prev != nil {
			if err := enc.Encode(cur); err != nil {
				return
			}
			flush(w)
			if !stream {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-tick.C:
		}
		prev = cur
		if cur, err = s.sampleStats(r, id); err != nil {
			return // removed meanwhile: the stream ends
		}
	}
}
