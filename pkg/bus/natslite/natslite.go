// Package natslite is a small NATS client: the part of the NATS client
// protocol berth-shim uses, on the standard library alone. It exists for
// the same reason containerd's shim speaks ttrpc rather than gRPC: there is
// one shim per container, and nats.go (with net/http, crypto/tls, websocket
// and compression support) costs each of them megabytes of resident text.
//
// What it does: plain TCP to one or more nats:// URLs; CONNECT with user and
// password (verbose and pedantic off, headers and no_responders on);
// PUB/HPUB; SUB/UNSUB, each subscription with its own goroutine delivering
// messages in order; request/reply on one wildcard inbox subscription, with
// "no responders" (status 503) detected; Msg.Respond; Flush (PING/PONG);
// server PINGs answered and client PINGs (stale connection detection);
// reconnection for ever after a lost connection, with re-subscription;
// Drain and Close.
//
// What it does not: TLS (the shim talks to a bus on the loopback; a shim on
// a remote bus would need it), websocket, nkeys, JWT and token
// authentication, queue groups, JetStream, synchronous (channel)
// subscriptions, auto-unsubscribe after N messages, the cluster's
// connect_urls (only the URLs given are tried), and buffering while
// disconnected: Publish, Request and Respond then fail at once with
// ErrDisconnected (subscriptions made meanwhile are sent on reconnect).
package natslite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Errors.
var (
	ErrClosed          = errors.New("nats: connection closed")
	ErrDisconnected    = errors.New("nats: not connected (reconnecting)")
	ErrNoResponders    = errors.New("nats: no responders available for request")
	ErrConnectionLost  = errors.New("nats: connection lost while waiting for the answer")
	ErrTimeout         = errors.New("nats: timeout")
	ErrMaxPayload      = errors.New("nats: maximum payload exceeded")
	ErrBadSubject      = errors.New("nats: invalid subject")
	ErrBadHeader       = errors.New("nats: invalid header")
	ErrNoReply         = errors.New("nats: message has no reply subject")
	ErrStaleConnection = errors.New("nats: stale connection")
	ErrSlowConsumer    = errors.New("nats: slow consumer, messages dropped")
)

// ServerError is an -ERR the server sent, e.g. "Permissions Violation for
// Publish to \"x\"" (the quotes around the whole message removed).
type ServerError struct{ Msg string }

func (e *ServerError) Error() string { return "nats: " + e.Msg }

// IsPermissionViolation reports whether err is a server's permissions
// violation.
func IsPermissionViolation(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && strings.HasPrefix(strings.ToLower(se.Msg), "permissions violation")
}

// Options say how to connect.
type Options struct {
	// URL is one or more nats://host:port (or host:port), comma-separated,
	// tried in order.
	URL      string
	Name     string
	User     string
	Password string
	// InboxPrefix replaces "_INBOX" for the answers to Request.
	InboxPrefix string
	// ReconnectWait is the pause between two rounds of reconnection
	// attempts (default 250ms). Reconnection never gives up.
	ReconnectWait time.Duration
	// DialTimeout bounds one dial and handshake (default 2s).
	DialTimeout time.Duration
	// PingInterval: a client PING every so often; two unanswered mean a
	// stale connection, which is dropped and redialled (default 2 min).
	PingInterval time.Duration
	// PendingLimit bounds the bytes queued for one subscription's handler;
	// beyond it messages are dropped and ErrSlowConsumer reported
	// (default 64 MiB).
	PendingLimit int

	// Callbacks, each optional, called from the client's goroutines.
	OnDisconnect func(err error)
	OnReconnect  func(url string)
	// OnError gets asynchronous errors: the server's -ERR that do not close
	// the connection (permissions violations), slow consumers.
	OnError func(err error)
}

// Header is a message's headers. Keys are kept as given (NATS headers are
// case-sensitive).
type Header map[string][]string

// Get returns the first value of key.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Add appends a value to key.
func (h Header) Add(key, value string) { h[key] = append(h[key], value) }

// Msg is a message received (or to send).
type Msg struct {
	Subject string
	Reply   string
	Header  Header
	Data    []byte
	// Status is the status code of a message with headers whose first line
	// carries one ("503" for no responders), else "".
	Status string

	conn *Conn
}

// Respond publishes data to the message's reply subject.
func (m *Msg) Respond(data []byte) error {
	if m.Reply == "" {
		return ErrNoReply
	}
	if m.conn == nil {
		return ErrClosed
	}
	return m.conn.Publish(m.Reply, nil, data)
}

// Handler handles the messages of a subscription.
type Handler func(*Msg)

// Subscription is one SUB.
type Subscription struct {
	c       *Conn
	sid     uint64
	subject string
	handler Handler

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*Msg
	pending int  // bytes in queue
	busy    bool // handler running
	closed  bool
	dropped bool // ErrSlowConsumer reported since the queue last emptied
}

type state int

const (
	stateConnected state = iota
	stateReconnecting
	stateClosed
)

// Conn is a connection to NATS that reconnects by itself.
type Conn struct {
	opts Options
	urls []string

	mu         sync.Mutex // guards everything below and writes to bw
	st         state
	nc         net.Conn
	bw         *bufio.Writer
	url        string
	maxPayload int
	gen        uint64 // connection generation: a reader of an older one stops
	pongs      []chan error
	pingsOut   int
	subs       map[uint64]*Subscription
	nextSID    uint64
	lastErr    error

	respPrefix string // <inbox>.<nuid>.
	respSub    *Subscription
	respNext   uint64
	resps      map[string]chan *Msg

	flushc chan struct{} // kicks the flusher
	done   chan struct{} // closed by Close
}

// Connect dials the first URL that answers. A failure of the first
// connection is returned; after that, a lost connection is redialled for
// ever.
func Connect(o Options) (*Conn, error) {
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 2 * time.Minute
	}
	if o.PendingLimit <= 0 {
		o.PendingLimit = 64 << 20
	}
	if o.InboxPrefix == "" {
		o.InboxPrefix = "_INBOX"
	}
	c := &Conn{
		opts:   o,
		subs:   map[uint64]*Subscription{},
		resps:  map[string]chan *Msg{},
		flushc: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	for _, u := range strings.Split(o.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.urls = append(c.urls, u)
		}
	}
	if len(c.urls) == 0 {
		return nil, errors.New("nats: no server URL")
	}
	var errs []error
	for _, u := range c.urls {
		nc, br, info, err := c.dial(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		c.install(u, nc, info)
		gen := c.gen
		c.mu.Unlock()
		go c.readLoop(gen, nc, br)
		go c.flusher()
		go c.pinger()
		return c, nil
	}
	return nil, errors.Join(errs...)
}

// serverInfo is what Conn needs of the server's INFO.
type serverInfo struct {
	maxPayload  int
	headers     bool
	tlsRequired bool
}

// dial connects to u and completes the handshake: INFO, CONNECT, PING,
// then PONG (or -ERR, e.g. an authorization violation).
func (c *Conn) dial(u string) (net.Conn, *bufio.Reader, serverInfo, error) {
	var info serverInfo
	addr, err := hostPort(u)
	if err != nil {
		return nil, nil, info, err
	}
	nc, err := dialTCP(addr, c.opts.DialTimeout)
	if err != nil {
		return nil, nil, info, fmt.Errorf("nats: dial %s: %w", u, err)
	}
	fail := func(err error) (net.Conn, *bufio.Reader, serverInfo, error) {
		nc.Close()
		return nil, nil, info, fmt.Errorf("nats: %s: %w", u, err)
	}
	nc.SetDeadline(time.Now().Add(c.opts.DialTimeout))
	br := bufio.NewReaderSize(nc, 32*1024)
	line, err := readLine(br)
	if err != nil {
		return fail(err)
	}
	verb, rest := splitVerb(line)
	if verb != "INFO" {
		return fail(fmt.Errorf("expected INFO, got %.40q", line))
	}
	info = parseInfo(rest)
	if info.maxPayload <= 0 {
		info.maxPayload = 1 << 20
	}
	if !info.headers {
		return fail(errors.New("the server does not support headers"))
	}
	if info.tlsRequired {
		return fail(errors.New("the server requires TLS, which this client does not speak"))
	}
	var b strings.Builder
	b.WriteString(`CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"lang":"go","version":"natslite-1","protocol":1,"headers":true,"no_responders":true`)
	if c.opts.Name != "" {
		b.WriteString(`,"name":`)
		writeJSONString(&b, c.opts.Name)
	}
	if c.opts.User != "" {
		b.WriteString(`,"user":`)
		writeJSONString(&b, c.opts.User)
		b.WriteString(`,"pass":`)
		writeJSONString(&b, c.opts.Password)
	}
	b.WriteString("}\r\nPING\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		return fail(err)
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return fail(err)
		}
		verb, rest := splitVerb(line)
		switch verb {
		case "PONG":
			nc.SetDeadline(time.Time{})
			return nc, br, info, nil
		case "-ERR":
			return fail(&ServerError{Msg: unquoteErr(rest)})
		case "PING":
			if _, err := io.WriteString(nc, "PONG\r\n"); err != nil {
				return fail(err)
			}
		case "+OK", "INFO":
		default:
			return fail(fmt.Errorf("unexpected %.40q during the handshake", line))
		}
	}
}

func hostPort(u string) (string, error) {
	if i := strings.Index(u, "://"); i >= 0 {
		if scheme := strings.ToLower(u[:i]); scheme != "nats" {
			return "", fmt.Errorf("nats: unsupported URL scheme %q (only nats://, no TLS)", scheme)
		}
		u = u[i+3:]
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 { // user info in URLs: not supported, ignored
		u = u[i+1:]
	}
	u = strings.TrimRight(u, "/")
	if _, _, err := net.SplitHostPort(u); err != nil {
		u = net.JoinHostPort(u, "4222")
	}
	return u, nil
}

// install makes nc the current connection. c.mu held.
func (c *Conn) install(u string, nc net.Conn, info serverInfo) {
	c.gen++
	c.nc, c.url, c.maxPayload = nc, u, info.maxPayload
	c.bw = bufio.NewWriterSize(nc, 32*1024)
	c.st = stateConnected
	c.pingsOut = 0
}

// IsConnected reports whether the connection is up.
func (c *Conn) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st == stateConnected
}

// ConnectedURL is the URL of the current connection ("" when down).
func (c *Conn) ConnectedURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != stateConnected {
		return ""
	}
	return c.url
}

// MaxPayload is the server's limit on a message (headers and data).
func (c *Conn) MaxPayload() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxPayload
}

// LastError is the last asynchronous error (see Options.OnError).
func (c *Conn) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// writable checks the state before a write. c.mu held.
func (c *Conn) writable() error {
	switch c.st {
	case stateClosed:
		return ErrClosed
	case stateReconnecting:
		return ErrDisconnected
	}
	return nil
}

// kick wakes the flusher.
func (c *Conn) kick() {
	select {
	case c.flushc <- struct{}{}:
	default:
	}
}

// flusher writes out what Publish buffered, soon after it was buffered:
// messages published in a burst leave in one write.
func (c *Conn) flusher() {
	for {
		select {
		case <-c.done:
			return
		case <-c.flushc:
		}
		c.mu.Lock()
		if c.st == stateConnected && c.bw.Buffered() > 0 {
			if err := c.bw.Flush(); err != nil {
				c.nc.Close() // the reader sees it and reconnects
			}
		}
		c.mu.Unlock()
	}
}

// Publish sends data (and header, if not empty) to subject.
func (c *Conn) Publish(subject string, header Header, data []byte) error {
	return c.publish(subject, "", header, data)
}

func (c *Conn) publish(subject, reply string, header Header, data []byte) error {
	if !validSubject(subject, false) || (reply != "" && !validSubject(reply, false)) {
		return ErrBadSubject
	}
	var hdr []byte
	if len(header) > 0 {
		var err error
		if hdr, err = encodeHeader(header); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	if len(hdr)+len(data) > c.maxPayload {
		return ErrMaxPayload
	}
	w := c.bw
	var num [20]byte
	if hdr != nil {
		w.WriteString("HPUB ")
	} else {
		w.WriteString("PUB ")
	}
	w.WriteString(subject)
	w.WriteByte(' ')
	if reply != "" {
		w.WriteString(reply)
		w.WriteByte(' ')
	}
	if hdr != nil {
		w.Write(strconv.AppendInt(num[:0], int64(len(hdr)), 10))
		w.WriteByte(' ')
	}
	w.Write(strconv.AppendInt(num[:0], int64(len(hdr)+len(data)), 10))
	w.WriteString("\r\n")
	w.Write(hdr)
	w.Write(data)
	_, err := w.WriteString("\r\n")
	if err != nil {
		c.nc.Close()
		return ErrDisconnected
	}
	c.kick()
	return nil
}

// Subscribe calls handler, on a goroutine of the subscription's own, for
// each message on subject (wildcards allowed), in order.
func (c *Conn) Subscribe(subject string, handler Handler) (*Subscription, error) {
	if !validSubject(subject, true) {
		return nil, ErrBadSubject
	}
	s := &Subscription{c: c, subject: subject, handler: handler}
	s.cond = sync.NewCond(&s.mu)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == stateClosed {
		return nil, ErrClosed
	}
	c.nextSID++
	s.sid = c.nextSID
	c.subs[s.sid] = s
	if c.st == stateConnected { // else sent on reconnect
		c.writeSub(s)
		c.kick()
	}
	go s.deliver()
	return s, nil
}

// writeSub writes SUB for s. c.mu held.
func (c *Conn) writeSub(s *Subscription) {
	c.bw.WriteString("SUB " + s.subject + " " + strconv.FormatUint(s.sid, 10) + "\r\n")
}

// Subject is what s listens to.
func (s *Subscription) Subject() string { return s.subject }

// Unsubscribe stops the subscription; a message being handled is finished,
// the queued ones are dropped.
func (s *Subscription) Unsubscribe() error {
	c := s.c
	c.mu.Lock()
	_, ok := c.subs[s.sid]
	delete(c.subs, s.sid)
	if ok && c.st == stateConnected {
		c.bw.WriteString("UNSUB " + strconv.FormatUint(s.sid, 10) + "\r\n")
		c.kick()
	}
	c.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// enqueue hands m to the subscription's goroutine.
func (s *Subscription) enqueue(m *Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	size := len(m.Data) + len(m.Subject) + 64
	if s.pending+size > s.c.opts.PendingLimit && len(s.queue) > 0 {
		if !s.dropped {
			s.dropped = true
			go s.c.asyncErr(fmt.Errorf("%w on %s", ErrSlowConsumer, s.subject))
		}
		return
	}
	s.queue = append(s.queue, m)
	s.pending += size
	s.cond.Signal()
}

func (s *Subscription) deliver() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for len(s.queue) == 0 && !s.closed {
			s.cond.Wait()
		}
		if s.closed {
			return
		}
		m := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if len(s.queue) == 0 {
			s.queue, s.dropped = nil, false
		}
		s.pending -= len(m.Data) + len(m.Subject) + 64
		s.busy = true
		s.mu.Unlock()
		s.handler(m)
		s.mu.Lock()
		s.busy = false
		s.cond.Broadcast()
	}
}

// waitIdle waits until s has nothing queued or running, or until deadline.
func (s *Subscription) waitIdle(deadline time.Time) bool {
	t := time.AfterFunc(time.Until(deadline), func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for (len(s.queue) > 0 || s.busy) && !s.closed && time.Now().Before(deadline) {
		s.cond.Wait()
	}
	return len(s.queue) == 0 && !s.busy
}

func (c *Conn) asyncErr(err error) {
	c.mu.Lock()
	c.lastErr = err
	c.mu.Unlock()
	if c.opts.OnError != nil {
		c.opts.OnError(err)
	}
}

// Flush sends what is buffered and waits until the server has processed
// it (a PING answered by PONG), or until timeout.
func (c *Conn) Flush(timeout time.Duration) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if err := c.writable(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.pongs = append(c.pongs, ch)
	c.bw.WriteString("PING\r\n")
	if err := c.bw.Flush(); err != nil {
		c.nc.Close()
	}
	c.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-t.C:
		c.mu.Lock()
		for i, p := range c.pongs {
			if p == ch {
				c.pongs[i] = nil // the PONG still comes; nobody waits
			}
		}
		c.mu.Unlock()
		return ErrTimeout
	}
}

// Request publishes data to subject with a reply subject in this
// connection's inbox and waits for the first answer. No subscriber on
// subject gives ErrNoResponders, a connection lost meanwhile
// ErrConnectionLost, the end of ctx its error.
func (c *Conn) Request(ctx context.Context, subject string, header Header, data []byte) (*Msg, error) {
	ch := make(chan *Msg, 1)
	c.mu.Lock()
	if err := c.writable(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if c.respSub == nil {
		c.respPrefix = c.opts.InboxPrefix + "." + nuid() + "."
		s := &Subscription{c: c, subject: c.respPrefix + "*", sid: c.nextSID + 1}
		s.cond = sync.NewCond(&s.mu)
		c.nextSID++
		c.subs[s.sid] = s // handled inline by the reader, never queued
		c.respSub = s
		c.writeSub(s)
	}
	c.respNext++
	token := strconv.FormatUint(c.respNext, 36)
	c.resps[token] = ch
	reply := c.respPrefix + token
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.resps, token)
		c.mu.Unlock()
	}()
	if err := c.publish(subject, reply, header, data); err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if m == nil {
			return nil, ErrConnectionLost
		}
		if m.Status == "503" && len(m.Data) == 0 {
			return nil, ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
		}
		return nil, ctx.Err()
	case <-c.done:
		return nil, ErrClosed
	}
}

// Drain unsubscribes everything, lets the handlers finish what they have
// received (and send their answers), flushes and closes, within timeout.
func (c *Conn) Drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	if c.st == stateClosed {
		c.mu.Unlock()
		return ErrClosed
	}
	var subs []*Subscription
	for sid, s := range c.subs {
		if s == c.respSub {
			continue
		}
		subs = append(subs, s)
		delete(c.subs, sid)
		if c.st == stateConnected {
			c.bw.WriteString("UNSUB " + strconv.FormatUint(sid, 10) + "\r\n")
		}
	}
	c.mu.Unlock()
	// Once the server has the UNSUBs, nothing more arrives.
	c.Flush(time.Until(deadline))
	ok := true
	for _, s := range subs {
		if !s.waitIdle(deadline) {
			ok = false
		}
		s.Unsubscribe()
	}
	c.Flush(max(time.Until(deadline), time.Millisecond))
	c.Close()
	if !ok {
		return ErrTimeout
	}
	return nil
}

// Close closes the connection at once; Flush first to be sure what was
// published has left.
func (c *Conn) Close() {
	c.mu.Lock()
	if c.st == stateClosed {
		c.mu.Unlock()
		return
	}
	c.st = stateClosed
	if c.nc != nil {
		c.bw.Flush()
		c.nc.Close()
	}
	c.failWaiters(ErrClosed)
	subs := c.subs
	c.subs = map[uint64]*Subscription{}
	close(c.done)
	c.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.closed = true
		s.queue = nil
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// failWaiters ends Flush and Request calls that wait for this connection.
// c.mu held.
func (c *Conn) failWaiters(err error) {
	for _, p := range c.pongs {
		if p != nil {
			p <- err
		}
	}
	c.pongs = nil
	for tok, ch := range c.resps {
		select {
		case ch <- nil:
		default:
		}
		delete(c.resps, tok)
	}
}

// pinger sends a PING every PingInterval; a connection with two PINGs
// unanswered is stale and dropped.
func (c *Conn) pinger() {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.st == stateConnected {
			c.pingsOut++
			if c.pingsOut > 2 {
				c.lastErr = ErrStaleConnection
				c.nc.Close()
			} else {
				c.pongs = append(c.pongs, nil)
				c.bw.WriteString("PING\r\n")
				c.kick()
			}
		}
		c.mu.Unlock()
	}
}

// readLoop reads connection gen until it fails, then reconnects.
func (c *Conn) readLoop(gen uint64, nc net.Conn, br *bufio.Reader) {
	err := c.read(br)
	c.mu.Lock()
	if c.st == stateClosed || c.gen != gen {
		c.mu.Unlock()
		return
	}
	c.st = stateReconnecting
	nc.Close()
	c.failWaiters(ErrConnectionLost)
	c.mu.Unlock()
	if c.opts.OnDisconnect != nil {
		c.opts.OnDisconnect(err)
	}
	c.reconnect()
}

// reconnect dials the URLs in turn, for ever, until one answers (or Close).
func (c *Conn) reconnect() {
	for i := 0; ; i++ {
		select {
		case <-c.done:
			return
		case <-time.After(c.opts.ReconnectWait):
		}
		u := c.urls[i%len(c.urls)]
		nc, br, info, err := c.dial(u)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.st == stateClosed {
			c.mu.Unlock()
			nc.Close()
			return
		}
		c.install(u, nc, info)
		gen := c.gen
		for _, s := range c.subs {
			c.writeSub(s)
		}
		err = c.bw.Flush()
		c.mu.Unlock()
		if err != nil {
			nc.Close()
		}
		go c.readLoop(gen, nc, br)
		if c.opts.OnReconnect != nil {
			c.opts.OnReconnect(u)
		}
		return
	}
}

// read dispatches what the server sends until an error.
func (c *Conn) read(br *bufio.Reader) error {
	p := parser{maxPayload: c.MaxPayload()}
	for {
		op, err := p.next(br)
		if err != nil {
			return err
		}
		switch op.kind {
		case opMsg:
			c.dispatch(op)
		case opPing:
			c.mu.Lock()
			if c.st == stateConnected {
				c.bw.WriteString("PONG\r\n")
				c.kick()
			}
			c.mu.Unlock()
		case opPong:
			c.mu.Lock()
			c.pingsOut = 0
			if len(c.pongs) > 0 {
				if ch := c.pongs[0]; ch != nil {
					ch <- nil
				}
				c.pongs = c.pongs[1:]
			}
			c.mu.Unlock()
		case opErr:
			err := &ServerError{Msg: op.text}
			c.asyncErr(err)
			if IsPermissionViolation(err) || strings.HasPrefix(strings.ToLower(op.text), "maximum subscriptions exceeded") {
				continue // the connection stays
			}
			// Any other -ERR (stale connection, authorization, maximum
			// payload…) comes with the server closing the connection:
			// reconnect (nats.go would give up on some of them; a shim
			// must outlive anything the bus does).
			return err
		case opInfo:
			if info := parseInfo(op.text); info.maxPayload > 0 {
				c.mu.Lock()
				c.maxPayload = info.maxPayload
				c.mu.Unlock()
				p.maxPayload = info.maxPayload
			}
		case opOK:
		}
	}
}

func (c *Conn) dispatch(op op) {
	m := &Msg{Subject: op.subject, Reply: op.reply, Data: op.data, conn: c}
	if op.hdr != nil {
		h, status, err := decodeHeader(op.hdr)
		if err != nil {
			c.asyncErr(err)
			return
		}
		m.Header, m.Status = h, status
	}
	c.mu.Lock()
	s := c.subs[op.sid]
	if s != nil && s == c.respSub {
		tok := strings.TrimPrefix(m.Subject, c.respPrefix)
		if ch := c.resps[tok]; ch != nil {
			select {
			case ch <- m:
			default: // a second answer: only the first counts
			}
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if s != nil {
		s.enqueue(m)
	}
}

// nuid returns 22 random base-62 characters (about 131 bits).
func nuid() string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [22]byte
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b[:])
}

// validSubject: non-empty dot-separated tokens without white space; with
// wild, "*" tokens and a final ">" are allowed.
func validSubject(s string, wild bool) bool {
	if s == "" {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
		if !wild && (tok == "*" || tok == ">") {
			return false
		}
	}
	return true
}

// writeJSONString writes s as a JSON string.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '"' || ch == '\\':
			b.WriteByte('\\')
			b.WriteByte(ch)
		case ch < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		default:
			b.WriteByte(ch)
		}
	}
	b.WriteByte('"')
}
