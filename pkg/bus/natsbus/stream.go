package natsbus

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// Transfers move a byte stream too large for one message (a tar of docker
// cp or export) between the supervisor and apigw. The side that holds the
// data (or takes it) serves a fresh inbox; the other side sends requests
// there, one chunk per request, so the stream goes no faster than its
// reader and nothing is buffered beyond one chunk. A transfer nobody
// drives for Idle is abandoned.

// ChunkSize is the most data one transfer message carries (well under
// NATS's default 1 MB payload limit).
const ChunkSize = 512 << 10

// Idle is how long a served transfer waits for its next request (a
// variable for tests).
var Idle = time.Minute

// transferCall is the time one answer of a transfer may take.
const transferCall = 2 * time.Minute

func errorHeader(err error) string { return string(bus.EncodeReply(nil, err)) }

func headerError(h nats.Header) error {
	v := h.Get(bus.HeaderError)
	if v == "" {
		return nil
	}
	if err := bus.DecodeReply([]byte(v), nil); err != nil {
		return err
	}
	return errdefs.New(errdefs.Unknown, "%s", v)
}

// server is the serving side of one transfer.
type server struct {
	mu    sync.Mutex // guards sub and timer until set up
	sub   *nats.Subscription
	once  sync.Once
	timer *time.Timer
	end   func(error)
}

func serve(nc *nats.Conn, end func(error), handle func(s *server, m *nats.Msg)) (string, error) {
	s := &server{end: end}
	inbox := nc.NewInbox()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = time.AfterFunc(Idle, func() {
		s.stop(errdefs.New(errdefs.Unavailable, "the transfer was abandoned: nothing asked for it in %s", Idle))
	})
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) {
		s.timer.Reset(Idle)
		if m.Header.Get(bus.HeaderCancel) != "" {
			s.stop(errdefs.New(errdefs.Unavailable, "the transfer was cancelled by the receiver"))
			_ = m.Respond(nil)
			return
		}
		handle(s, m)
	})
	if err != nil {
		s.timer.Stop()
		return "", errdefs.Wrap(errdefs.Unavailable, err)
	}
	s.sub = sub
	return inbox, nil
}

func (s *server) stop(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.timer.Stop()
		if s.sub != nil {
			_ = s.sub.Unsubscribe()
		}
		s.end(err)
	})
}

// ServeDownload offers r on a fresh inbox, returned: each request gets the
// next chunk, the last one with bus.HeaderEOF (or bus.HeaderError). r is
// closed when the transfer ends, whichever way.
func ServeDownload(nc *nats.Conn, r io.ReadCloser) (string, error) {
	buf := make([]byte, ChunkSize)
	return serve(nc, func(error) { r.Close() }, func(s *server, m *nats.Msg) {
		n, err := io.ReadFull(r, buf)
		reply := nats.NewMsg(m.Reply)
		reply.Data = buf[:n]
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			reply.Header.Set(bus.HeaderEOF, "1")
		default:
			reply.Header.Set(bus.HeaderError, errorHeader(err))
		}
		_ = m.RespondMsg(reply)
		if err != nil {
			s.stop(err)
		}
	})
}

// ServeUpload takes a stream on a fresh inbox, returned, into w: each
// request's data is written to w (answered once written, so the sender
// keeps pace with the consumer of w), and the request with bus.HeaderEOF
// closes w and is answered with the result done delivers (the consumer's
// error). An abandoned or cancelled transfer closes w with an error.
func ServeUpload(nc *nats.Conn, w *io.PipeWriter, done <-chan error) (string, error) {
	return serve(nc, func(err error) { w.CloseWithError(err) }, func(s *server, m *nats.Msg) {
		var err error
		if len(m.Data) > 0 {
			_, err = w.Write(m.Data)
		}
		if err == nil && m.Header.Get(bus.HeaderEOF) != "" {
			w.Close()
			err = <-done
			s.stop(io.EOF)
			_ = m.Respond(bus.EncodeReply(nil, err))
			return
		}
		if err != nil {
			// the consumer gave up (its error closed the pipe): its result
			// says why
			if res := <-done; res != nil {
				err = res
			}
			s.stop(err)
		}
		_ = m.Respond(bus.EncodeReply(nil, err))
	})
}

// Download reads a transfer served by ServeDownload, Window chunks asked
// for ahead. Closing the reader before the end cancels the transfer.
func Download(ctx context.Context, nc *nats.Conn, subject string) io.ReadCloser {
	return &downloader{ctx: ctx, nc: nc, subject: subject}
}

type downloader struct {
	ctx     context.Context
	nc      *nats.Conn
	subject string
	replies *windowed
	buf     []byte
	err     error // after buf: io.EOF or the transfer's error
}

func (d *downloader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.replies == nil {
			if d.replies, d.err = newWindowed(d.nc); d.err != nil {
				return 0, d.err
			}
			for i := 0; i < Window && d.err == nil; i++ {
				d.err = d.replies.send(nats.NewMsg(d.subject))
			}
			if d.err != nil {
				return 0, d.err
			}
		}
		m, err := d.replies.next(d.ctx)
		if err != nil {
			d.err = err
			return 0, err
		}
		d.buf = m.Data
		switch {
		case m.Header.Get(bus.HeaderEOF) != "":
			d.err = io.EOF
		case headerError(m.Header) != nil:
			d.err = headerError(m.Header)
		default:
			d.err = d.replies.send(nats.NewMsg(d.subject)) // keep Window asked for
		}
		if d.err != nil {
			d.replies.close()
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *downloader) Close() error {
	if d.err == nil {
		d.err = errors.New("closed")
		cancelTransfer(d.nc, d.subject)
	}
	if d.replies != nil {
		d.replies.close()
	}
	return nil
}

func cancelTransfer(nc *nats.Conn, subject string) {
	m := nats.NewMsg(subject)
	m.Header.Set(bus.HeaderCancel, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = nc.RequestMsgWithContext(ctx, m)
}

// Window is how many requests of a transfer are in flight at once: the
// transfer, the reading and the writing of chunks overlap.
const Window = 4

// windowed sends requests of a transfer without waiting for each answer;
// the answers come back in order on one inbox.
type windowed struct {
	nc      *nats.Conn
	inbox   string
	sub     *nats.Subscription
	replies chan *nats.Msg
}

func newWindowed(nc *nats.Conn) (*windowed, error) {
	w := &windowed{nc: nc, inbox: nc.NewInbox(), replies: make(chan *nats.Msg, 2*Window)}
	sub, err := nc.ChanSubscribe(w.inbox, w.replies)
	if err != nil {
		return nil, unavailable(err)
	}
	w.sub = sub
	return w, nil
}

func (w *windowed) send(m *nats.Msg) error {
	m.Reply = w.inbox
	if err := w.nc.PublishMsg(m); err != nil {
		return unavailable(err)
	}
	return nil
}

func (w *windowed) next(ctx context.Context) (*nats.Msg, error) {
	t := time.NewTimer(transferCall)
	defer t.Stop()
	select {
	case m := <-w.replies:
		if m.Header.Get("Status") == "503" {
			return nil, unavailable(nats.ErrNoResponders)
		}
		return m, nil
	case <-t.C:
		return nil, unavailable(nats.ErrTimeout)
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	}
}

func (w *windowed) close() { _ = w.sub.Unsubscribe() }

// Upload sends r to a transfer served by ServeUpload, Window chunks in
// flight, and returns the server's result. A read error of r cancels the
// transfer.
func Upload(ctx context.Context, nc *nats.Conn, subject string, r io.Reader) error {
	w, err := newWindowed(nc)
	if err != nil {
		return err
	}
	defer w.close()
	inflight := 0
	await := func() error {
		m, err := w.next(ctx)
		if err != nil {
			return err
		}
		inflight--
		return bus.DecodeReply(m.Data, nil)
	}
	buf := make([]byte, ChunkSize)
	for {
		n, rerr := io.ReadFull(r, buf)
		eof := errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)
		if rerr != nil && !eof {
			cancelTransfer(nc, subject)
			if mbe := (*http.MaxBytesError)(nil); errors.As(rerr, &mbe) {
				return rerr // the caller answers 413
			}
			return errdefs.New(errdefs.InvalidParameter, "reading the request body: %v", rerr)
		}
		for inflight >= Window {
			if err := await(); err != nil {
				return err
			}
		}
		m := nats.NewMsg(subject)
		m.Data = buf[:n] // PublishMsg copies it out
		if eof {
			m.Header.Set(bus.HeaderEOF, "1")
		}
		if err := w.send(m); err != nil {
			return err
		}
		inflight++
		if eof {
			// answers come in order: the last one is the result
			for inflight > 0 {
				if err := await(); err != nil {
					return err
				}
			}
			return nil
		}
	}
}
