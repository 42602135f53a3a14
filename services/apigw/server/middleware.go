package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

type versionKey struct{}

// splitVersion takes the /v1.xx prefix off the request's path.
func splitVersion(r *http.Request) (version, rest string) {
	return dockerapi.SplitVersionPrefix(r.URL.Path)
}

// apiVersion is the version the request is served with.
func apiVersion(r *http.Request) string {
	v, _ := r.Context().Value(versionKey{}).(string)
	if v == "" {
		return dockerapi.APIVersion
	}
	return v
}

// negotiate rejects versions outside [MinAPIVersion, APIVersion] like dockerd.
func (s *Server) negotiate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := r.Context().Value(versionKey{}).(string)
		if _, err := dockerapi.NegotiateVersion(v); err != nil {
			s.fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status and size of an answer; it passes Flush and
// Hijack through for the streaming endpoints.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	return h.Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setStatus records the status of a hijacked answer for logs and metrics.
func setStatus(w http.ResponseWriter, code int) {
	if sw, ok := w.(*statusWriter); ok && sw.status == 0 {
		sw.status = code
	}
}

// observe logs every request and counts it by route pattern.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h := sw.Header()
		h.Set("Api-Version", dockerapi.APIVersion)
		h.Set("Server", "Docker/"+EngineVersion+" (linux)")
		h.Set("Docker-Experimental", "false")
		h.Set("Ostype", "linux")
		next.ServeHTTP(sw, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(d.Seconds())
		lvl := slogLevelFor(sw.status)
		s.log.Log(r.Context(), lvl, "request", "method", r.Method, "path", r.URL.Path,
			"route", route, "version", apiVersion(r), "status", sw.status,
			"bytes", sw.bytes, "duration_ms", float64(d.Microseconds())/1000)
	})
}

// errorBody is Docker's error answer.
type errorBody struct {
	Message string `json:"message"`
}

// fail answers err with Docker's status and JSON shape.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := httpStatus(err)
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	if status >= 500 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, errorBody{Message: err.Error()})
}

func httpStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return errdefs.HTTPStatus(errdefs.KindOf(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// tooLarge turns a body read error into a 413 error with a clear message.
func tooLarge(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &bodyTooLarge{limit: limit, err: mbe}
	}
	return errdefs.New(errdefs.InvalidParameter, "reading request body: %v", err)
}

type bodyTooLarge struct {
	limit int64
	err   *http.MaxBytesError
}

func (e *bodyTooLarge) Error() string {
	return fmt.Sprintf("request body too large: the limit is %d bytes", e.limit)
}
func (e *bodyTooLarge) Unwrap() error { return e.err }

// doneCtx is a context that ends with the request or with the server.
func (s *Server) doneCtx(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
