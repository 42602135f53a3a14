// Package server is berth-apigw's HTTP side: the Docker Engine API router,
// its middleware and the handlers that turn requests into bus commands.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"berth/pkg/bus"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
)

// Defaults.
const (
	DefaultCallTimeout  = 30 * time.Second
	DefaultMaxBodyBytes = 4 << 20 // JSON bodies; image tarballs are streamed
	// DefaultMaxUploadBytes bounds the streamed bodies (docker import, load,
	// cp into a container), which pass through the bus's object store.
	DefaultMaxUploadBytes = 16 << 30
	// EngineVersion is what `docker version` shows as the server's version.
	EngineVersion = "28.5.2-berth"
)

// Config configures a Server.
type Config struct {
	Node           string
	Logger         *slog.Logger
	Registerer     prometheus.Registerer // nil: metrics are kept but not exported
	CallTimeout    time.Duration         // every bus command; 0: DefaultCallTimeout
	MaxBodyBytes   int64                 // JSON request bodies; 0: DefaultMaxBodyBytes
	MaxUploadBytes int64                 // streamed bodies; 0: DefaultMaxUploadBytes
	Version        string                // berth's own version, shown in Components
	GitCommit      string
}

// Server serves the Docker Engine API. It keeps no container state: every
// answer comes from the supervisor over the bus.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	router  http.Handler

	nc atomic.Pointer[nats.Conn]

	done     chan struct{} // closed by Close: streams end
	doneOnce sync.Once

	mu       sync.Mutex
	hijack   map[*hijacked]struct{}      // attach connections, closed by Close
	attaches map[*attachSession]struct{} // attach sessions, by container

	eventListeners atomic.Int64
}

// New builds a Server. Attach a bus connection with SetConn (requests fail
// with 503 until then).
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  NewMetrics(cfg.Registerer),
		done:     make(chan struct{}),
		hijack:   map[*hijacked]struct{}{},
		attaches: map[*attachSession]struct{}{},
	}
	s.router = s.routes()
	return s
}

// SetConn gives the server its bus connection.
func (s *Server) SetConn(nc *nats.Conn) { s.nc.Store(nc) }

// Close ends every stream (events, logs, wait, attach) so that an
// http.Server's Shutdown can finish.
func (s *Server) Close() {
	s.doneOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	for h := range s.hijack {
		h.conn.Close()
	}
	s.mu.Unlock()
}

// Handler is the whole API, version prefix included.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, rest := splitVersion(r)
		r = r.WithContext(context.WithValue(r.Context(), versionKey{}, v))
		u := *r.URL
		u.Path, u.RawPath = rest, ""
		r.URL = &u
		s.router.ServeHTTP(w, r)
	})
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.observe, s.negotiate)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, errdefs.New(errdefs.NotFound, "page not found"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, errdefs.New(errdefs.NotFound, "page not found"))
	})

	r.Get("/_ping", s.ping)
	r.Head("/_ping", s.ping)
	r.Get("/version", s.version)
	r.Get("/info", s.info)
	r.Get("/events", s.events)

	r.Post("/containers/create", s.containerCreate)
	r.Get("/containers/json", s.containerList)
	r.Post("/containers/prune", s.containerPrune)
	r.Get("/containers/{id}/json", s.containerInspect)
	r.Post("/containers/{id}/start", s.containerStart)
	r.Post("/containers/{id}/stop", s.containerStop)
	r.Post("/containers/{id}/kill", s.containerKill)
	r.Post("/containers/{id}/restart", s.containerRestart)
	r.Post("/containers/{id}/rename", s.containerRename)
	r.Post("/containers/{id}/wait", s.containerWait)
	r.Post("/containers/{id}/attach", s.containerAttach)
	r.Post("/containers/{id}/resize", s.containerResize)
	r.Get("/containers/{id}/logs", s.containerLogs)
	r.Post("/containers/{id}/pause", s.containerPause)
	r.Post("/containers/{id}/unpause", s.containerUnpause)
	r.Post("/containers/{id}/update", s.containerUpdate)
	r.Get("/containers/{id}/top", s.containerTop)
	r.Get("/containers/{id}/stats", s.containerStats)
	r.Delete("/containers/{id}", s.containerRemove)
	r.Post("/containers/{id}/exec", s.execCreate)
	r.Post("/exec/{id}/start", s.execStart)
	r.Post("/exec/{id}/resize", s.execResize)
	r.Get("/exec/{id}/json", s.execInspect)
	r.Head("/containers/{id}/archive", s.containerArchiveHead)
	r.Get("/containers/{id}/archive", s.containerArchiveGet)
	r.Put("/containers/{id}/archive", s.containerArchivePut)
	r.Get("/containers/{id}/export", s.containerExport)
	r.Get("/containers/{id}/changes", s.containerChanges)

	r.Post("/volumes/create", s.volumeCreate)
	r.Get("/volumes", s.volumeList)
	r.Post("/volumes/prune", s.volumePrune)
	r.Get("/volumes/{name}", s.volumeInspect)
	r.Delete("/volumes/{name}", s.volumeRemove)

	r.Get("/images/json", s.imageList)
	r.Post("/images/create", s.imageCreate)
	r.Post("/images/load", s.imageLoad)
	r.Get("/images/get", s.imageSaveMany)
	r.Post("/images/prune", s.imagePrune)
	r.Post("/commit", s.imageCommit)
	r.Post("/auth", s.auth)
	r.Get("/system/df", s.systemDF)
	r.Get("/images/*", s.imageGet)
	r.Post("/images/*", s.imagePost)
	r.Delete("/images/*", s.imageRemove)

	r.Get("/networks", s.networkList)
	r.Post("/networks/create", s.networkCreate)
	r.Post("/networks/prune", s.networkPrune)
	r.Get("/networks/{id}", s.networkInspect)
	r.Delete("/networks/{id}", s.networkRemove)
	r.Post("/networks/{id}/connect", func(w http.ResponseWriter, r *http.Request) { s.networkConnect(w, r, bus.VerbNetworkConnect) })
	r.Post("/networks/{id}/disconnect", func(w http.ResponseWriter, r *http.Request) { s.networkConnect(w, r, bus.VerbNetworkDisconnect) })
	return r
}

// conn returns the bus connection or an Unavailable error.
func (s *Server) conn() (*nats.Conn, error) {
	nc := s.nc.Load()
	if nc == nil || nc.IsClosed() {
		return nil, errdefs.New(errdefs.Unavailable, "berth-apigw is not connected to the berth bus (NATS) yet: is NATS (berth-supervisor) running?")
	}
	// While NATS reconnects, requests would sit in the client's buffer until
	// they time out: give a short reconnect a chance, then fail fast.
	for deadline := time.Now().Add(reconnectGrace); !nc.IsConnected(); {
		if time.Now().After(deadline) || nc.IsClosed() {
			return nil, errdefs.New(errdefs.Unavailable, "the berth bus (NATS) is unavailable: reconnecting to %s", strings.Join(nc.Servers(), ","))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nc, nil
}

// reconnectGrace is how long a request waits for a reconnecting bus.
const reconnectGrace = 2 * time.Second

func (s *Server) jetstream() (jetstream.JetStream, error) {
	nc, err := s.conn()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, errdefs.Wrap(errdefs.Unavailable, err)
	}
	return js, nil
}

// call sends one command to the supervisor with the default timeout. The
// request's cancellation is not passed on: a command the client gave up on
// still completes (or times out) on the bus.
func (s *Server) call(r *http.Request, area, verb string, req, resp any) error {
	return s.callTimeout(r, s.cfg.CallTimeout, area, verb, req, resp)
}

func (s *Server) callTimeout(r *http.Request, d time.Duration, area, verb string, req, resp any) error {
	nc, err := s.conn()
	if err != nil {
		s.metrics.busErrors.Inc()
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), d)
	defer cancel()
	err = natsbus.Call(ctx, nc, bus.Command(area, s.cfg.Node, verb), req, resp)
	if err != nil && errdefs.Is(err, errdefs.Unavailable) {
		s.metrics.busErrors.Inc()
		s.log.Warn("bus command failed", "area", area, "verb", verb, "err", err)
	}
	return err
}
