package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/nats-io/nats.go/jetstream"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// eventsDrainIdle ends a stream whose until has passed once nothing more
// arrives for this long.
const eventsDrainIdle = 500 * time.Millisecond

// events is GET /events: an ordered JetStream consumer on the node's events,
// from since (or new events only), until until (or for ever).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := parseTime("since", q.Get("since"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	until, err := parseTime("until", q.Get("until"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := dockerapi.ParseFilters(q.Get("filters"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := dockerapi.ValidateEventFilters(f); err != nil {
		s.fail(w, r, err)
		return
	}
	js, err := s.jetstream()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.doneCtx(r)
	defer cancel()

	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.EventsNode(s.cfg.Node)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if !since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &since
	}
	cctx, ccancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	cons, err := js.OrderedConsumer(cctx, bus.EventsStream, cfg)
	ccancel()
	if err != nil {
		s.metrics.busErrors.Inc()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s.fail(w, r, errdefs.New(errdefs.Unavailable, "events are not available yet: the supervisor has not created the %s stream", bus.EventsStream))
			return
		}
		s.fail(w, r, errdefs.New(errdefs.Unavailable, "events are not available: %v", err))
		return
	}
	it, err := cons.Messages()
	if err != nil {
		s.fail(w, r, errdefs.New(errdefs.Unavailable, "events are not available: %v", err))
		return
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	go func() {
		defer close(msgs)
		for {
			m, err := it.Next()
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	s.eventListeners.Add(1)
	defer s.eventListeners.Add(-1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush(w)

	// Until: once it has passed, drain what is stored and stop.
	var deadline <-chan time.Time
	if !until.IsZero() {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		deadline = t.C
	}
	var drain <-chan time.Time
	var drainTimer *time.Timer
	startDrain := func() {
		if drainTimer == nil {
			drainTimer = time.NewTimer(eventsDrainIdle)
		} else {
			drainTimer.Reset(eventsDrainIdle)
		}
		drain = drainTimer.C
	}
	defer func() {
		if drainTimer != nil {
			drainTimer.Stop()
		}
	}()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			deadline = nil
			startDrain()
		case <-drain:
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			var ev bus.Event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				s.log.Warn("events: bad event on the bus", "subject", m.Subject(), "err", err)
				continue
			}
			msg := dockerapi.EventMessage(&ev)
			if !until.IsZero() && eventTime(&msg).After(until) {
				return
			}
			if !since.IsZero() && eventTime(&msg).Before(since) {
				continue
			}
			if dockerapi.MatchEvent(f, &msg) {
				if err := enc.Encode(msg); err != nil {
					return
				}
				flush(w)
			}
			if drain != nil {
				if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
					return
				}
				startDrain()
			}
		}
	}
}

func eventTime(m *events.Message) time.Time {
	if m.TimeNano != 0 {
		return time.Unix(0, m.TimeNano)
	}
	return time.Unix(m.Time, 0)
}
