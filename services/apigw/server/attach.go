package server

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/moby/term"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// Content types of attach and logs streams.
const (
	rawStream         = "application/vnd.docker.raw-stream"
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
)

// Stream numbers of the multiplexed framing.
const (
	streamStdout = 1
	streamStderr = 2
)

// frame writes one multiplexed frame, [stream,0,0,0,size BE] + data, in one write.
func frame(w io.Writer, stream byte, data []byte) error {
	buf := make([]byte, 8+len(data))
	buf[0] = stream
	binary.BigEndian.PutUint32(buf[4:8], uint32(len(data)))
	copy(buf[8:], data)
	_, err := w.Write(buf)
	return err
}

type hijacked struct {
	conn net.Conn
}

func (s *Server) track(h *hijacked, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.hijack[h] = struct{}{}
	} else {
		delete(s.hijack, h)
	}
}

// containerAttach is POST /containers/{id}/attach: a hijacked connection
// that carries the container's output (from bus.IOOut) and its stdin (to
// bus.IOIn).
func (s *Server) containerAttach(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stdin := dockerapi.BoolValue(q.Get("stdin"))
	stdout := dockerapi.BoolValue(q.Get("stdout"))
	stderr := dockerapi.BoolValue(q.Get("stderr"))
	keys, err := detachKeys(q.Get("detachKeys"))
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
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.fail(w, r, errdefs.New(errdefs.Unknown, "this connection cannot be hijacked"))
		return
	}
	tty := dockerapi.Tty(c)
	out := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(bus.IOOut(s.cfg.Node, c.ID), out)
	if err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.Unavailable, err))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, 64<<20)
	sess := s.watchAttach(c)
	defer s.unwatchAttach(sess)
	var esubs []*nats.Subscription
	defer func() {
		for _, es := range esubs {
			_ = es.Unsubscribe()
		}
	}()
	for _, action := range []string{"die", "destroy"} {
		es, err := nc.Subscribe(bus.EventSubject(s.cfg.Node, "container", action), sess.onEvent)
		if err != nil {
			s.fail(w, r, errdefs.Wrap(errdefs.Unavailable, err))
			return
		}
		esubs = append(esubs, es)
	}
	// The subscription must be live on the server before the client learns
	// the attach worked: it calls start right after.
	if err := nc.FlushTimeout(s.cfg.CallTimeout); err != nil {
		s.metrics.busErrors.Inc()
		s.fail(w, r, errdefs.New(errdefs.Unavailable, "the berth bus (NATS) is unavailable: %v", err))
		return
	}

	conn, brw, release, ok := s.hijackStream(w, r, hj, tty)
	if !ok {
		return
	}
	defer release()

	done := make(chan struct{})
	var stdinWG sync.WaitGroup
	if stdin {
		stdinWG.Add(1)
		go func() {
			defer stdinWG.Done()
			s.pumpStdin(nc, bus.IOIn(s.cfg.Node, c.ID), c.Config != nil && c.Config.StdinOnce, stdinReader(brw.Reader, tty, keys), done, sess.end)
		}()
	}
	defer func() {
		close(done)
		conn.Close()
		stdinWG.Wait()
	}()
	s.pumpOutput(conn, out, tty, stdout, stderr, sess.ended)
}

// hijackStream takes over the connection of an attach or exec start and
// writes Docker's answer: 101 UPGRADED when the client asked for an
// upgrade, else 200, with a raw stream for a tty and a multiplexed one
// otherwise. release closes the connection.
func (s *Server) hijackStream(w http.ResponseWriter, r *http.Request, hj http.Hijacker, tty bool) (net.Conn, *bufio.ReadWriter, func(), bool) {
	conn, brw, err := hj.Hijack()
	if err != nil {
		s.log.Warn("attach: hijack failed", "err", err)
		return nil, nil, nil, false
	}
	h := &hijacked{conn: conn}
	s.track(h, true)
	s.metrics.attachSessions.Inc()
	release := func() {
		s.metrics.attachSessions.Dec()
		s.track(h, false)
		conn.Close()
	}
	_ = conn.SetDeadline(time.Time{})

	ct := multiplexedStream
	if tty {
		ct = rawStream
	}
	var hdr strings.Builder
	if strings.EqualFold(r.Header.Get("Upgrade"), "tcp") {
		setStatus(w, http.StatusSwitchingProtocols)
		hdr.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: " + ct + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n")
	} else {
		setStatus(w, http.StatusOK)
		hdr.WriteString("HTTP/1.1 200 OK\r\nContent-Type: " + ct + "\r\n")
	}
	hdr.WriteString("Api-Version: " + dockerapi.APIVersion + "\r\n\r\n")
	if _, err := brw.WriteString(hdr.String()); err != nil {
		release()
		return nil, nil, nil, false
	}
	if err := brw.Flush(); err != nil {
		release()
		return nil, nil, nil, false
	}
	return conn, brw, release, true
}

// pumpOutput copies the container's output to the client until the shim
// says EOF, the session is ended (container removed, start failed), the
// client goes away or the server closes.
func (s *Server) pumpOutput(conn net.Conn, out <-chan *nats.Msg, tty, stdout, stderr bool, ended <-chan struct{}) {
	write := func(msg *nats.Msg) (more bool) {
		if len(msg.Data) > 0 {
			stream := byte(streamStdout)
			if msg.Header.Get(bus.HeaderStream) == "stderr" {
				stream = streamStderr
			}
			if (stream == streamStdout && stdout) || (stream == streamStderr && stderr) {
				var err error
				if tty {
					_, err = conn.Write(msg.Data)
				} else {
					err = frame(conn, stream, msg.Data)
				}
				if err != nil {
					return false
				}
			}
		}
		if msg.Header.Get(bus.HeaderEOF) == "1" {
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			return false
		}
		return true
	}
	for {
		select {
		case <-s.done:
			return
		case <-ended:
			// Whatever already arrived still goes out.
			for {
				select {
				case msg := <-out:
					if !write(msg) {
						return
					}
				default:
					return
				}
			}
		case msg := <-out:
			if !write(msg) {
				return
			}
		}
	}
}

// pumpStdin sends what the client writes to a process's stdin (subject),
// one NATS request per chunk. When the client closes its side, the
// process's stdin is closed too if closeOnEOF (a container created with
// StdinOnce, docker run -i, or an exec), like dockerd. The detach keys
// (see stdinReader) end the session by calling detach.
func (s *Server) pumpStdin(nc *nats.Conn, subject string, closeOnEOF bool, in io.Reader, done <-chan struct{}, detach func()) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			msg := nats.NewMsg(subject)
			msg.Data = append([]byte(nil), buf[:n]...)
			if !s.sendStdin(nc, msg, done) {
				return
			}
		}
		var esc term.EscapeError
		if errors.As(err, &esc) {
			s.log.Debug("attach: detached by the detach keys", "subject", subject)
			detach()
			return
		}
		if err != nil {
			if errors.Is(err, io.EOF) && closeOnEOF {
				msg := nats.NewMsg(subject)
				msg.Header.Set(bus.HeaderEOF, "1")
				s.sendStdin(nc, msg, done)
			}
			return
		}
	}
}

// sendStdin delivers one stdin message, retrying while nobody answers (the
// shim only starts when the client calls start, after attach). It gives up
// when the attach ends.
func (s *Server) sendStdin(nc *nats.Conn, msg *nats.Msg, done <-chan struct{}) bool {
	backoff := 10 * time.Millisecond
	for {
		_, err := nc.RequestMsg(msg, 10*time.Second)
		if err == nil {
			return true
		}
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
			s.log.Debug("attach: stdin request failed, retrying", "subject", msg.Subject, "err", err)
		}
		select {
		case <-done:
			return false
		case <-s.done:
			return false
		case <-time.After(backoff):
		}
		if backoff < 50*time.Millisecond {
			backoff += 10 * time.Millisecond
		}
	}
}

// attachSession lets other requests end an attach whose container will not
// send EOF: its start failed, or it was removed.
type attachSession struct {
	id, name string
	ended    chan struct{}
	once     sync.Once
	diedOnce sync.Once
}

func (a *attachSession) end() { a.once.Do(func() { close(a.ended) }) }

// onEvent ends the session when the container is destroyed, and shortly
// after it died if its shim never said EOF.
func (a *attachSession) onEvent(m *nats.Msg) {
	var ev bus.Event
	if json.Unmarshal(m.Data, &ev) != nil || ev.Actor.ID != a.id {
		return
	}
	switch ev.Action {
	case "destroy":
		a.end()
	case "die":
		a.diedOnce.Do(func() { time.AfterFunc(attachDieGrace, a.end) })
	}
}

// attachDieGrace is how long an attach waits for the shim's EOF after the
// container's die event.
const attachDieGrace = 2 * time.Second

func (s *Server) watchAttach(c *dockermsg.Container) *attachSession {
	a := &attachSession{id: c.ID, name: strings.TrimPrefix(c.Name, "/"), ended: make(chan struct{})}
	s.mu.Lock()
	s.attaches[a] = struct{}{}
	s.mu.Unlock()
	return a
}

func (s *Server) unwatchAttach(a *attachSession) {
	s.mu.Lock()
	delete(s.attaches, a)
	s.mu.Unlock()
}

// endAttaches ends the attach sessions of a container (by ID, ID prefix or name).
func (s *Server) endAttaches(ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a := range s.attaches {
		if a.id == ref || a.name == ref || (len(ref) >= 3 && strings.HasPrefix(a.id, ref)) {
			a.end()
		}
	}
}

// defaultDetachKeys are Docker's: ctrl-p ctrl-q.
var defaultDetachKeys = []byte{16, 17}

// detachKeys parses a detach key sequence ("ctrl-p,ctrl-q", "a,ctrl-x");
// empty is Docker's default.
func detachKeys(spec string) ([]byte, error) {
	if spec == "" {
		return defaultDetachKeys, nil
	}
	keys, err := term.ToBytes(spec)
	if err != nil || len(keys) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "Invalid detach keys (%s) provided", spec)
	}
	return keys, nil
}

// stdinReader is the client's stdin as the process gets it: with a tty,
// the detach key sequence is held back and, once complete, ends the stream
// with a term.EscapeError (as dockerd's attach; the docker CLI detects it
// on its side too).
func stdinReader(in io.Reader, tty bool, keys []byte) io.Reader {
	if !tty {
		return in
	}
	return term.NewEscapeProxy(in, keys)
}
