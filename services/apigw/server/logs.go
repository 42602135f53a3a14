package server

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	timetypes "github.com/docker/docker/api/types/time"
	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// logsIdle ends a non-follow logs stream whose supervisor went silent.
const logsIdle = 30 * time.Second

// parseTime reads since/until as the docker CLI sends them ("1700000000.5")
// or RFC 3339. Empty and "0" are the zero time.
func parseTime(name, v string) (time.Time, error) {
	if v == "" || v == "0" {
		return time.Time{}, nil
	}
	ts, err := timetypes.GetTimestamp(v, time.Now())
	if err != nil {
		return time.Time{}, errdefs.New(errdefs.InvalidParameter, "invalid value for %s: %v", name, err)
	}
	sec, nsec, err := timetypes.ParseTimestamps(ts, 0)
	if err != nil {
		return time.Time{}, errdefs.New(errdefs.InvalidParameter, "invalid value for %s: %v", name, err)
	}
	return time.Unix(sec, nsec), nil
}

// containerLogs is GET /containers/{id}/logs: the supervisor reads the log
// and publishes bus.LogChunk messages to a fresh inbox.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stdout, stderr := dockerapi.BoolValue(q.Get("stdout")), dockerapi.BoolValue(q.Get("stderr"))
	if !stdout && !stderr {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "You must choose at least one stream"))
		return
	}
	follow := dockerapi.BoolValue(q.Get("follow"))
	timestamps := dockerapi.BoolValue(q.Get("timestamps"))
	details := dockerapi.BoolValue(q.Get("details"))
	tail, err := dockerapi.ParseTail(q.Get("tail"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
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
	c, err := s.inspect(r, chi.URLParam(r, "id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	nc, err := s.conn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.Unavailable, err))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, 64<<20)
	req := bus.LogsRequest{
		ID: c.ID, Inbox: inbox, Follow: follow, Tail: tail,
		Since: since, Until: until, Stdout: stdout, Stderr: stderr,
	}
	if err := s.call(r, bus.AreaContainers, bus.VerbLogs, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	tty := dockerapi.Tty(c)
	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	flush(w)

	ctx, cancel := s.doneCtx(r)
	defer cancel()
	idle := time.NewTimer(logsIdle)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = nc.Publish(inbox+".cancel", nil)
			return
		case <-idle.C:
			if !follow {
				s.log.Warn("logs: the supervisor went silent, ending the stream", "id", c.ID)
				_ = nc.Publish(inbox+".cancel", nil)
				return
			}
			idle.Reset(logsIdle)
		case msg := <-ch:
			idle.Reset(logsIdle)
			var chunk bus.LogChunk
			if err := json.Unmarshal(msg.Data, &chunk); err != nil {
				s.log.Warn("logs: bad chunk on the bus", "err", err)
				continue
			}
			for _, e := range chunk.Entries {
				if !writeLogEntry(w, e, tty, timestamps, details, stdout, stderr) {
					_ = nc.Publish(inbox+".cancel", nil)
					return
				}
			}
			flush(w)
			if chunk.Error != "" {
				s.log.Warn("logs: supervisor reported an error", "id", c.ID, "err", chunk.Error)
			}
			if chunk.EOF || chunk.Error != "" {
				return
			}
		}
	}
}

func writeLogEntry(w http.ResponseWriter, e bus.LogEntry, tty, timestamps, details, stdout, stderr bool) bool {
	stream := byte(streamStdout)
	if e.Stream == "stderr" {
		stream = streamStderr
	}
	if (stream == streamStdout && !stdout) || (stream == streamStderr && !stderr) {
		return true
	}
	data := []byte(e.Log)
	if details {
		// dockerd's: the record's attrs, key-sorted and query-escaped, then
		// a space (a space alone when it has none)
		keys := slices.Sorted(maps.Keys(e.Attrs))
		var prefix []byte
		for i, k := range keys {
			if i > 0 {
				prefix = append(prefix, ',')
			}
			prefix = append(prefix, url.QueryEscape(k)+"="+url.QueryEscape(e.Attrs[k])...)
		}
		data = append(append(prefix, ' '), data...)
	}
	if timestamps {
		data = append([]byte(e.Time.UTC().Format(dockerapi.TimestampFormat)+" "), data...)
	}
	var err error
	if tty {
		_, err = w.Write(data)
	} else {
		err = frame(w, stream, data)
	}
	return err == nil
}
