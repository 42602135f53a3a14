package server

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
	"berth/pkg/jsonlog"
)

const (
	logBatchEntries = 256
	logBatchBytes   = 256 << 10
	logFlushEvery   = 50 * time.Millisecond
)

// logs answers a LogsRequest at once (ack or 404) and streams LogChunks to
// its inbox in the background, ending with EOF.
func (s *Server) logs(req *bus.LogsRequest) (any, error) {
	if req.ID == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "missing container ID or name")
	}
	if req.Inbox == "" || strings.ContainsAny(req.Inbox, "*> \t\r\n") || strings.HasPrefix(req.Inbox, "berth.") {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid logs inbox %q", req.Inbox)
	}
	id, path, maxFiles, err := s.Containers.LogInfo(req.ID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sub, err := s.Conn.Subscribe(req.Inbox+".cancel", func(*nats.Msg) { cancel() })
	if err != nil {
		cancel()
		return nil, errdefs.Wrap(errdefs.Unavailable, err)
	}
	s.spawn(func() {
		defer cancel()
		defer func() { _ = sub.Unsubscribe() }()
		s.streamLogs(ctx, req, id, path, maxFiles)
	})
	return struct{}{}, nil
}

func (s *Server) streamLogs(ctx context.Context, req *bus.LogsRequest, id, path string, maxFiles int) {
	var mu sync.Mutex
	var batch []bus.LogEntry
	size := 0
	send := func(c bus.LogChunk) {
		data, err := json.Marshal(c)
		if err == nil {
			err = s.Conn.Publish(req.Inbox, data)
		}
		if err != nil {
			s.busError("publishing logs", err)
		}
	}
	flushLocked := func() {
		if len(batch) == 0 {
			return
		}
		send(bus.LogChunk{Entries: batch})
		batch, size = nil, 0
	}
	done := make(chan struct{})
	if req.Follow {
		go func() {
			t := time.NewTicker(logFlushEvery)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					mu.Lock()
					flushLocked()
					mu.Unlock()
				}
			}
		}()
	}
	opts := jsonlog.ReadOptions{
		Tail:     req.Tail,
		Since:    req.Since,
		Until:    req.Until,
		Follow:   req.Follow,
		Stdout:   req.Stdout,
		Stderr:   req.Stderr,
		MaxFiles: maxFiles,
		Stopped:  func() bool { return !s.Containers.Running(id) },
	}
	err := jsonlog.Read(ctx, path, opts, func(e bus.LogEntry) error {
		mu.Lock()
		defer mu.Unlock()
		batch = append(batch, e)
		size += len(e.Log) + 64
		if len(batch) >= logBatchEntries || size >= logBatchBytes {
			flushLocked()
		}
		return nil
	})
	close(done)
	mu.Lock()
	flushLocked()
	mu.Unlock()
	end := bus.LogChunk{EOF: true}
	if err != nil && ctx.Err() == nil {
		end.Error = err.Error()
	}
	send(end)
}
