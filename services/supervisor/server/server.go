// Package server answers the supervisor's bus commands (containers, images,
// system), consumes the shims' reports and publishes events.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/image"
	"berth/pkg/registry"
	"berth/services/supervisor/containers"
	"berth/services/supervisor/metrics"
	"berth/services/supervisor/network"
	"berth/services/supervisor/volumes"
)

// IdempotencyTTL is how long a command's answer is kept for retries with
// the same key.
const IdempotencyTTL = 10 * time.Minute

// Server handles the bus side of the supervisor.
type Server struct {
	Node       string
	Conn       *nats.Conn
	JS         jetstream.JetStream // may be nil (no JetStream): events go out on core NATS only
	Containers *containers.Manager
	Images     *image.Store
	Registry   *registry.Client
	Volumes    *volumes.Store
	Metrics    *metrics.Metrics
	Log        *slog.Logger
	Info       func() bus.Info
	Networks   *network.Manager // nil: no bridge networking

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	subs   []*nats.Subscription
	idem   idempotency
}

// Start subscribes to the commands and reports of the node.
func (s *Server) Start() error {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.idem.entries = map[string]*idemEntry{}
	group := bus.QueueGroup(s.Node)
	sub, err := s.Conn.QueueSubscribe(bus.ReportsAll(s.Node), group, func(m *nats.Msg) { s.spawn(func() { s.handleReport(m) }) })
	if err != nil {
		return err
	}
	s.subs = append(s.subs, sub)
	for _, subj := range bus.CommandsAll(s.Node) {
		sub, err := s.Conn.QueueSubscribe(subj, group, func(m *nats.Msg) { s.spawn(func() { s.handleCommand(m) }) })
		if err != nil {
			return err
		}
		s.subs = append(s.subs, sub)
	}
	return s.Conn.Flush()
}

func (s *Server) spawn(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

// Stop unsubscribes and waits (up to d) for the handlers in flight.
func (s *Server) Stop(d time.Duration) {
	for _, sub := range s.subs {
		_ = sub.Drain()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
	s.cancel()
}

// PublishEvent publishes an event through JetStream (stored in the events
// stream and seen by core subscribers), or core NATS when JetStream fails.
func (s *Server) PublishEvent(typ, action, id string, attrs map[string]string) {
	now := time.Now()
	if attrs == nil {
		attrs = map[string]string{}
	}
	ev := bus.Event{Type: typ, Action: action, Actor: bus.Actor{ID: id, Attributes: attrs}, Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()}
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	// One message ID per event: when the bus goes away under a publish, the
	// request and the fallback below are both sent once it is back, and the
	// stream keeps one of them.
	msg := &nats.Msg{Subject: bus.EventSubject(s.Node, typ, action), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, s.Node+"-"+strconv.FormatInt(now.UnixNano(), 36)+"-"+strconv.FormatUint(eventSeq.Add(1), 36))
	if s.JS != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = s.JS.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			return
		}
		s.busError("publishing event through JetStream", err)
	}
	if err := s.Conn.PublishMsg(msg); err != nil {
		s.busError("publishing event", err)
	}
}

var eventSeq atomic.Uint64

func (s *Server) busError(what string, err error) {
	if s.Metrics != nil {
		s.Metrics.BusErrors.Inc()
	}
	s.Log.Warn(what, "err", err)
}

func (s *Server) respond(m *nats.Msg, data []byte) {
	if m.Reply == "" {
		return
	}
	if err := m.Respond(data); err != nil {
		s.busError("replying", err)
	}
}

// stateChanging lists the commands subject to idempotency keys.
var stateChanging = map[string]bool{
	"containers.create": true, "containers.start": true, "containers.stop": true, "containers.kill": true,
	"containers.restart": true, "containers.remove": true, "containers.rename": true, "containers.prune": true,
	"images.tag": true, "images.remove": true, "images.import": true,
	"containers.exec_create": true, "containers.exec_start": true,
	"images.load": true, "images.prune": true, "images.commit": true,
	"volumes.create": true, "volumes.remove": true, "volumes.prune": true,
	"networks.create": true, "networks.remove": true, "networks.connect": true, "networks.disconnect": true, "networks.prune": true,
	"containers.pause": true, "containers.unpause": true, "containers.update": true,
}

func (s *Server) handleCommand(m *nats.Msg) {
	parts := strings.Split(m.Subject, ".")
	if len(parts) != 5 {
		s.respond(m, bus.EncodeReply(nil, errdefs.New(errdefs.InvalidParameter, "bad command subject %q", m.Subject)))
		return
	}
	verb := parts[2] + "." + parts[4]
	t0 := time.Now()
	run := func() (reply []byte) {
		defer func() {
			// a bug met by one command (hostile input, say) must not take
			// the supervisor and every container's bookkeeping down with it
			if p := recover(); p != nil {
				s.Log.Error("command panicked", "verb", verb, "panic", p, "stack", string(debug.Stack()))
				reply = bus.EncodeReply(nil, errdefs.New(errdefs.Unknown, "internal error in berth-supervisor handling %s: %v", verb, p))
			}
		}()
		v, err := s.dispatch(parts[2], parts[4], m)
		return bus.EncodeReply(v, err)
	}
	var reply []byte
	var meta bus.Meta
	if stateChanging[verb] && json.Unmarshal(m.Data, &meta) == nil && meta.Key != "" {
		reply = s.idem.do(verb+"."+meta.Key, run)
	} else {
		reply = run()
	}
	outcome := "ok"
	var r bus.Reply
	if json.Unmarshal(reply, &r) == nil && r.Error != nil {
		outcome = string(r.Error.Kind)
		if outcome == "" {
			outcome = "error"
		}
		s.Log.Debug("command failed", "verb", verb, "err", r.Error.Message)
	}
	if s.Metrics != nil {
		s.Metrics.Commands.WithLabelValues(verb, outcome).Inc()
		s.Metrics.Duration.WithLabelValues(verb).Observe(time.Since(t0).Seconds())
	}
	s.respond(m, reply)
	if verb == "containers.create" && r.Error == nil {
		// what the start will need on disk, made while the client goes on
		// (docker run: attach, wait, then start)
		var cr dockermsg.CreateResponse
		if json.Unmarshal(r.Data, &cr) == nil && cr.ID != "" {
			s.Containers.Prepare(cr.ID)
		}
	}
}

func (s *Server) dispatch(area, verb string, m *nats.Msg) (any, error) {
	ctx := s.ctx
	switch area {
	case bus.AreaContainers:
		return s.containerCommand(ctx, verb, m)
	case bus.AreaImages:
		return s.imageCommand(ctx, verb, m)
	case bus.AreaVolumes:
		return s.volumeCommand(verb, m)
	case bus.AreaNetworks:
		return s.networkCommand(verb, m)
	case bus.AreaSystem:
		switch verb {
		case bus.VerbPing:
			return "OK", nil
		case bus.VerbInfo:
			info := s.Info()
			return info, nil
		}
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown command %s.%s", area, verb)
}

func decode[T any](data []byte) (*T, error) {
	var v T
	if err := bus.Decode(data, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

func needID(id string) error {
	if id == "" {
		return errdefs.New(errdefs.InvalidParameter, "missing container ID or name")
	}
	return nil
}

func (s *Server) containerCommand(ctx context.Context, verb string, m *nats.Msg) (any, error) {
	cm := s.Containers
	switch verb {
	case bus.VerbCreate:
		req, err := decode[dockermsg.CreateRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return cm.Create(req)
	case bus.VerbStart:
		req, err := decode[bus.IDRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return nil, cm.Start(ctx, req.ID)
	case bus.VerbStop, bus.VerbRestart:
		req, err := decode[bus.StopRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		if verb == bus.VerbStop {
			return nil, cm.Stop(ctx, req)
		}
		return nil, cm.Restart(ctx, req)
	case bus.VerbKill:
		req, err := decode[bus.KillRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return nil, cm.Kill(ctx, req)
	case bus.VerbRemove:
		req, err := decode[bus.RemoveRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return nil, cm.Remove(ctx, req.ID, req.Force, req.RemoveVolumes)
	case bus.VerbRename:
		req, err := decode[bus.RenameRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return nil, cm.Rename(req.ID, req.NewName)
	case bus.VerbInspect:
		req, err := decode[bus.IDRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return cm.Inspect(req.ID)
	case bus.VerbList:
		req, err := decode[bus.ListRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return cm.List(req.All), nil
	case bus.VerbPrune:
		req, err := decode[bus.PruneRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return cm.Prune(ctx, req.Filters)
	case bus.VerbLogs:
		req, err := decode[bus.LogsRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.logs(req)
	case bus.VerbExecCreate, bus.VerbExecStart, bus.VerbExecInspect:
		return s.execCommand(ctx, verb, m)
	case bus.VerbArchiveStat, bus.VerbArchiveGet, bus.VerbArchivePut, bus.VerbExport, bus.VerbChanges:
		return s.fileCommand(verb, m)
	case bus.VerbPause, bus.VerbUnpause:
		req, err := decode[bus.IDRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		if verb == bus.VerbPause {
			return nil, cm.Pause(ctx, req.ID)
		}
		return nil, cm.Unpause(ctx, req.ID)
	case bus.VerbUpdate:
		req, err := decode[dockermsg.UpdateRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return cm.Update(ctx, req)
	case bus.VerbTop:
		req, err := decode[bus.TopRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return cm.Top(ctx, req)
	case bus.VerbStats:
		req, err := decode[bus.IDRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if err := needID(req.ID); err != nil {
			return nil, err
		}
		return cm.Stats(req.ID)
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown container command %q", verb)
}

func (s *Server) imageCommand(ctx context.Context, verb string, m *nats.Msg) (any, error) {
	switch verb {
	case bus.VerbImageList:
		return s.Images.List(), nil
	case bus.VerbImageInspect:
		req, err := decode[bus.ImageRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.Images.Get(req.Name)
	case bus.VerbImageTag:
		req, err := decode[bus.ImageTagRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if req.Source == "" {
			return nil, errdefs.New(errdefs.InvalidParameter, "missing source image")
		}
		_, err = s.Images.Tag(req.Source, req.Repo, req.Tag)
		return nil, err
	case bus.VerbImageRemove:
		req, err := decode[bus.ImageRemoveRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if req.Name == "" {
			return nil, errdefs.New(errdefs.InvalidParameter, "missing image name")
		}
		return s.Images.Remove(req.Name, req.Force)
	case bus.VerbImageImport:
		req, err := decode[bus.ImageImportRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.importImage(ctx, req)
	}
	return s.moreImageCommand(ctx, verb, m)
}

func (s *Server) importImage(ctx context.Context, req *bus.ImageImportRequest) (*bus.ImageImportResponse, error) {
	var id string
	err := s.readUpload(ctx, req.Object, func(r io.Reader) error {
		img, err := s.Images.Import(r, image.ImportOptions{Repo: req.Repo, Tag: req.Tag, Changes: req.Changes, Message: req.Message})
		if err == nil {
			id = img.ID
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &bus.ImageImportResponse{ID: id}, nil
}

// readUpload hands the upload object to fn and deletes it afterwards.
func (s *Server) readUpload(ctx context.Context, object string, fn func(io.Reader) error) error {
	if object == "" {
		return errdefs.New(errdefs.InvalidParameter, "missing upload object")
	}
	if s.JS == nil {
		return errdefs.New(errdefs.Unavailable, "JetStream is not available on the bus: cannot read the uploaded image")
	}
	obs, err := s.JS.ObjectStore(ctx, bus.UploadsBucket)
	if err != nil {
		return errdefs.New(errdefs.Unavailable, "object store %s: %v", bus.UploadsBucket, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := obs.Delete(dctx, object); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.busError("deleting upload", err)
		}
	}()
	obj, err := obs.Get(ctx, object)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return errdefs.New(errdefs.InvalidParameter, "upload %q not found", object)
		}
		return errdefs.New(errdefs.Unavailable, "reading upload %q: %v", object, err)
	}
	defer obj.Close()
	return fn(obj)
}

func (s *Server) handleReport(m *nats.Msg) {
	// berth.v1.reports.<node>.<id>.<kind>
	parts := strings.Split(m.Subject, ".")
	if len(parts) != 6 {
		s.respond(m, bus.EncodeReply(nil, errdefs.New(errdefs.InvalidParameter, "bad report subject %q", m.Subject)))
		return
	}
	id, kind := parts[4], parts[5]
	switch kind {
	case bus.ReportExit:
		var rep bus.ExitReport
		if err := bus.Decode(m.Data, &rep); err != nil {
			s.respond(m, bus.EncodeReply(nil, err))
			return
		}
		if rep.ID == "" {
			rep.ID = id
		}
		if rep.ID != id {
			s.respond(m, bus.EncodeReply(nil, errdefs.New(errdefs.InvalidParameter, "exit report for %s on the subject of %s", rep.ID, id)))
			return
		}
		err := s.Containers.HandleExit(rep)
		if errdefs.Is(err, errdefs.Conflict) && s.Metrics != nil {
			s.Metrics.RefusedExits.Inc()
		}
		s.respond(m, bus.EncodeReply(nil, err))
	case bus.ReportOOM:
		s.Containers.HandleOOM(id)
		s.respond(m, bus.EncodeReply(nil, nil))
	case bus.ReportExecExit:
		s.execExitReport(id, m)
	default:
		s.respond(m, bus.EncodeReply(nil, errdefs.New(errdefs.NotImplemented, "unknown report %q", kind)))
	}
}

type idemEntry struct {
	done  chan struct{}
	reply []byte
	at    time.Time
}

type idempotency struct {
	mu      sync.Mutex
	entries map[string]*idemEntry
	swept   time.Time
}

// do runs fn once per key within IdempotencyTTL; a concurrent duplicate
// waits for the first and gets its answer.
func (s *idempotency) do(key string, fn func() []byte) []byte {
	now := time.Now()
	s.mu.Lock()
	if now.Sub(s.swept) > time.Minute {
		for k, e := range s.entries {
			select {
			case <-e.done:
				if now.Sub(e.at) > IdempotencyTTL {
					delete(s.entries, k)
				}
			default:
			}
		}
		s.swept = now
	}
	if e, ok := s.entries[key]; ok && now.Sub(e.at) < IdempotencyTTL {
		s.mu.Unlock()
		<-e.done
		return e.reply
	}
	e := &idemEntry{done: make(chan struct{}), at: now}
	s.entries[key] = e
	s.mu.Unlock()
	defer close(e.done)
	e.reply = fn()
	return e.reply
}
