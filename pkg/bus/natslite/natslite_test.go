package natslite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const maxPayload = 4 << 20

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// natsServer runs a NATS server with three users: "full" (anything),
// "shim" (publishes on rep.> only, subscribes cmd.> and its inbox, answers
// requests) and "client" (anything but with a known password).
func natsServer(t *testing.T, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, MaxPayload: maxPayload,
		Users: []*server.User{
			{Username: "full", Password: "pw-full"},
			{Username: "shim", Password: "pw \"shim\"", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"rep.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"cmd.>", "_INBOX.shim.>"}},
				Response:  &server.ResponsePermission{MaxMsgs: 1},
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t *testing.T, url, user, pass string, mod ...func(*Options)) (*Conn, chan error) {
	t.Helper()
	errs := make(chan error, 100)
	o := Options{URL: url, Name: "test-" + user, User: user, Password: pass,
		ReconnectWait: 50 * time.Millisecond,
		OnError:       func(err error) { errs <- err }}
	for _, m := range mod {
		m(&o)
	}
	c, err := Connect(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, errs
}

// reference is a nats.go connection, the other side of the bus.
func reference(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo("full", "pw-full"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func recv(t *testing.T, ch <-chan *Msg) *Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func TestPubSubHeaders(t *testing.T) {
	s := natsServer(t, -1)
	c, _ := connect(t, s.ClientURL(), "full", "pw-full")
	got := make(chan *Msg, 10)
	if _, err := c.Subscribe("a.*", func(m *Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("a.b", nil, []byte("plain")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("a.c", Header{"Berth-Stream": {"stderr"}, "Multi": {"1", "2"}}, []byte("with\r\nheaders")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("a.d", Header{"Berth-Eof": {"1"}}, nil); err != nil {
		t.Fatal(err)
	}
	m := recv(t, got)
	if m.Subject != "a.b" || string(m.Data) != "plain" || m.Header != nil {
		t.Fatalf("%+v", m)
	}
	m = recv(t, got)
	if m.Subject != "a.c" || string(m.Data) != "with\r\nheaders" || m.Header.Get("Berth-Stream") != "stderr" || len(m.Header["Multi"]) != 2 {
		t.Fatalf("%+v", m)
	}
	m = recv(t, got)
	if m.Header.Get("Berth-Eof") != "1" || len(m.Data) != 0 {
		t.Fatalf("%+v", m)
	}

	// interoperability with nats.go, both ways
	ref := reference(t, s.ClientURL())
	rs, err := ref.SubscribeSync("x.>")
	if err != nil {
		t.Fatal(err)
	}
	ref.Flush()
	c.Publish("x.1", Header{"K": {"v"}}, []byte("to nats.go"))
	rm, err := rs.NextMsg(5 * time.Second)
	if err != nil || string(rm.Data) != "to nats.go" || rm.Header.Get("K") != "v" {
		t.Fatalf("%v %+v", err, rm)
	}
	ref.PublishMsg(&nats.Msg{Subject: "a.z", Header: nats.Header{"From": {"nats.go"}}, Data: []byte("hi")})
	m = recv(t, got)
	if m.Subject != "a.z" || m.Header.Get("From") != "nats.go" || string(m.Data) != "hi" {
		t.Fatalf("%+v", m)
	}

	if err := c.Publish("a.*", nil, nil); !errors.Is(err, ErrBadSubject) {
		t.Fatalf("wildcard publish: %v", err)
	}
	if err := c.Publish("a.b", Header{"Bad": {"x\r\ny"}}, nil); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("bad header: %v", err)
	}
}

func TestRequestReply(t *testing.T) {
	s := natsServer(t, -1)
	shim, errs := connect(t, s.ClientURL(), "shim", "pw \"shim\"", func(o *Options) { o.InboxPrefix = "_INBOX.shim.n1.c1" })
	ref := reference(t, s.ClientURL())

	// The shim answers requests (as it does on its command subject) …
	if _, err := shim.Subscribe("cmd.>", func(m *Msg) {
		m.Respond(append([]byte("re: "), m.Data...))
	}); err != nil {
		t.Fatal(err)
	}
	shim.Flush(5 * time.Second)
	for i := range 20 {
		rm, err := ref.Request("cmd.x", []byte{'a' + byte(i)}, 5*time.Second)
		if err != nil || string(rm.Data) != "re: "+string(rune('a'+i)) {
			t.Fatalf("%v %+v", err, rm)
		}
	}
	// … and asks (its exit report), concurrently.
	ref.Subscribe("rep.exit", func(m *nats.Msg) { m.Respond([]byte("ack " + string(m.Data))) })
	ref.Flush()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			body := strings.Repeat("x", i)
			m, err := shim.Request(ctx, "rep.exit", Header{"N": {body}}, []byte(body))
			if err != nil || string(m.Data) != "ack "+body {
				t.Errorf("request %d: %v %+v", i, err, m)
			}
		}()
	}
	wg.Wait()

	// No responders.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := shim.Request(ctx, "rep.nobody", nil, []byte("x")); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("no responders: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("no responders took the whole timeout")
	}
	// A timeout.
	ref.Subscribe("rep.slow", func(m *nats.Msg) {})
	ref.Flush()
	tctx, tcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer tcancel()
	if _, err := shim.Request(tctx, "rep.slow", nil, nil); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("unexpected async error %v", err)
	default:
	}
}

func TestPermissions(t *testing.T) {
	s := natsServer(t, -1)
	if _, err := Connect(Options{URL: s.ClientURL(), User: "shim", Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("bad password: %v", err)
	}
	if _, err := Connect(Options{URL: s.ClientURL()}); err == nil {
		t.Fatal("anonymous connection accepted")
	}
	shim, errs := connect(t, s.ClientURL(), "shim", "pw \"shim\"")
	if err := shim.Publish("forbidden.x", nil, []byte("x")); err != nil {
		t.Fatal(err) // asynchronous: the server answers -ERR
	}
	select {
	case err := <-errs:
		if !IsPermissionViolation(err) || !strings.Contains(err.Error(), "forbidden.x") {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation reported")
	}
	if _, err := shim.Subscribe("other.>", func(*Msg) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !IsPermissionViolation(err) || !strings.Contains(err.Error(), "Subscription") {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation reported")
	}
	if !IsPermissionViolation(shim.LastError()) {
		t.Fatal(shim.LastError())
	}
	// The connection survives a violation.
	if !shim.IsConnected() || shim.Flush(5*time.Second) != nil {
		t.Fatal("connection lost after a permissions violation")
	}
	// A request whose inbox the user may not subscribe to cannot be
	// answered: the violation is reported.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := shim.Request(ctx, "rep.x", nil, nil); err == nil {
		t.Fatal("request answered through a forbidden inbox")
	}
}

func TestReconnect(t *testing.T) {
	port := freePort(t)
	s := natsServer(t, port)
	var mu sync.Mutex
	var events []string
	note := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	c, _ := connect(t, s.ClientURL(), "full", "pw-full", func(o *Options) {
		o.OnDisconnect = func(error) { note("disconnect") }
		o.OnReconnect = func(string) { note("reconnect") }
	})
	got := make(chan *Msg, 10)
	c.Subscribe("cmd.1", func(m *Msg) { got <- m; m.Respond([]byte("ok")) })
	c.Flush(5 * time.Second)

	// A request in flight when the server goes fails at once.
	ref := reference(t, s.ClientURL())
	ref.Subscribe("rep.hang", func(*nats.Msg) {})
	ref.Flush()
	reqErr := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), "rep.hang", nil, nil)
		reqErr <- err
	}()
	time.Sleep(100 * time.Millisecond)
	s.Shutdown()
	select {
	case err := <-reqErr:
		if !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("request in flight: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request in flight not failed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Publish("a", nil, nil); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("publish while disconnected: %v", err)
	}
	// A subscription made while disconnected is sent on reconnect.
	got2 := make(chan *Msg, 10)
	c.Subscribe("cmd.2", func(m *Msg) { got2 <- m })
	time.Sleep(300 * time.Millisecond) // several failed attempts

	s2 := natsServer(t, port)
	deadline = time.Now().Add(10 * time.Second)
	for !c.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !c.IsConnected() {
		t.Fatal("not reconnected")
	}
	if err := c.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ref2 := reference(t, s2.ClientURL())
	rm, err := ref2.Request("cmd.1", []byte("again"), 5*time.Second)
	if err != nil || string(rm.Data) != "ok" {
		t.Fatalf("request after reconnect: %v", err)
	}
	if m := recv(t, got); string(m.Data) != "again" {
		t.Fatal(string(m.Data))
	}
	ref2.Publish("cmd.2", []byte("late"))
	if m := recv(t, got2); string(m.Data) != "late" {
		t.Fatal(string(m.Data))
	}
	// Requests work again (the inbox subscription came back).
	ref2.Subscribe("rep.x", func(m *nats.Msg) { m.Respond([]byte("back")) })
	ref2.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m, err := c.Request(ctx, "rep.x", nil, nil); err != nil || string(m.Data) != "back" {
		t.Fatalf("request after reconnect: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, ",") != "disconnect,reconnect" {
		t.Fatal(events)
	}
}

func TestBigPayload(t *testing.T) {
	s := natsServer(t, -1)
	c, _ := connect(t, s.ClientURL(), "full", "pw-full")
	if c.MaxPayload() != maxPayload {
		t.Fatal(c.MaxPayload())
	}
	got := make(chan *Msg, 10)
	c.Subscribe("big", func(m *Msg) { got <- m })
	c.Flush(5 * time.Second)
	hdr := Header{"H": {"v"}}
	h, _ := encodeHeader(hdr)
	big := make([]byte, maxPayload-len(h))
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, size := range []int{1, 32*1024 - 1, 32 * 1024, 100_000, len(big)} {
		if err := c.Publish("big", hdr, big[:size]); err != nil {
			t.Fatal(size, err)
		}
		m := recv(t, got)
		if !bytes.Equal(m.Data, big[:size]) || m.Header.Get("H") != "v" {
			t.Fatalf("payload of %d bytes corrupted (%d received)", size, len(m.Data))
		}
	}
	if err := c.Publish("big", hdr, append(big, 0)); !errors.Is(err, ErrMaxPayload) {
		t.Fatalf("over max_payload: %v", err)
	}
	if !c.IsConnected() {
		t.Fatal("disconnected")
	}
}

func TestDrain(t *testing.T) {
	s := natsServer(t, -1)
	c, _ := connect(t, s.ClientURL(), "full", "pw-full")
	release := make(chan struct{})
	c.Subscribe("cmd.shutdown", func(m *Msg) {
		<-release
		m.Respond([]byte("done"))
	})
	c.Flush(5 * time.Second)
	ref := reference(t, s.ClientURL())
	answer := make(chan error, 1)
	go func() {
		m, err := ref.Request("cmd.shutdown", nil, 5*time.Second)
		if err == nil && string(m.Data) != "done" {
			err = errors.New(string(m.Data))
		}
		answer <- err
	}()
	time.Sleep(100 * time.Millisecond)
	drained := make(chan error, 1)
	go func() { drained <- c.Drain(5 * time.Second) }()
	time.Sleep(100 * time.Millisecond)
	close(release) // the handler in flight answers during the drain
	if err := <-answer; err != nil {
		t.Fatal(err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("x", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestHeaderCodec(t *testing.T) {
	h := Header{"A": {"1"}, "b-c": {"x y", ""}}
	enc, err := encodeHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc) != "NATS/1.0\r\nA: 1\r\nb-c: x y\r\nb-c: \r\n\r\n" {
		t.Fatalf("%q", enc)
	}
	got, status, err := decodeHeader(enc)
	if err != nil || status != "" || got.Get("A") != "1" || len(got["b-c"]) != 2 {
		t.Fatalf("%v %q %v", err, status, got)
	}
	_, status, err = decodeHeader([]byte("NATS/1.0 503\r\n\r\n"))
	if err != nil || status != "503" {
		t.Fatal(err, status)
	}
	_, status, err = decodeHeader([]byte("NATS/1.0 408 Request Timeout\r\n\r\n"))
	if err != nil || status != "408" {
		t.Fatal(err, status)
	}
	for _, bad := range []string{"", "HTTP/1.0\r\n\r\n", "NATS/1.0\r\nnocolon\r\n\r\n", "NATS/1.0\r\nK: v"} {
		if _, _, err := decodeHeader([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseInfo(t *testing.T) {
	info := parseInfo(`{"server_id":"x","name":"\"max_payload\":1","headers":true,"max_payload":1048576,"proto":1}`)
	if info.maxPayload != 1048576 || !info.headers {
		t.Fatalf("%+v", info)
	}
	if info := parseInfo(`{"tls_required":true}`); !info.tlsRequired {
		t.Fatalf("%+v", info)
	}
	if info := parseInfo(`{"max_payload": 12}`); info.maxPayload != 12 || info.headers || info.tlsRequired {
		t.Fatalf("%+v", info)
	}
}

func TestParser(t *testing.T) {
	in := "INFO {\"max_payload\":100}\r\nPING\r\npong\r\n+OK\r\n-ERR 'Permissions Violation for Publish to \"x\"'\r\n" +
		"MSG a.b 1 5\r\nhello\r\nMSG a.b 2 r.1 0\r\n\r\nHMSG a 3 _I.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
	p := parser{maxPayload: 100}
	br := bufio.NewReaderSize(strings.NewReader(in), 16) // tiny reads
	var ops []op
	for {
		o, err := p.next(br)
		if err != nil {
			break
		}
		ops = append(ops, o)
	}
	if len(ops) != 8 {
		t.Fatalf("%d ops: %+v", len(ops), ops)
	}
	if ops[4].text != `Permissions Violation for Publish to "x"` {
		t.Fatal(ops[4].text)
	}
	if o := ops[5]; o.subject != "a.b" || o.sid != 1 || string(o.data) != "hello" || o.reply != "" {
		t.Fatalf("%+v", o)
	}
	if o := ops[6]; o.reply != "r.1" || len(o.data) != 0 {
		t.Fatalf("%+v", o)
	}
	if o := ops[7]; o.reply != "_I.x" || string(o.hdr) != "NATS/1.0\r\n\r\n" || string(o.data) != "hi" {
		t.Fatalf("%+v", o)
	}
	for _, bad := range []string{"MSG a 1 200\r\n", "MSG a 1 -1\r\n", "HMSG a 1 5 3\r\nxxx\r\n", "MSG a x 1\r\n", "MSG a 1 2\r\nabcd", "FOO\r\n"} {
		if _, err := p.next(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzParser feeds arbitrary server output to the parser and the header
// decoder: errors, never a panic or an unbounded allocation.
func FuzzParser(f *testing.F) {
	f.Add([]byte("MSG a.b 1 5\r\nhello\r\n"))
	f.Add([]byte("HMSG a 3 _I.x 22 24\r\nNATS/1.0 503\r\nK: v\r\n\r\nhi\r\n"))
	f.Add([]byte("INFO {\"max_payload\":100,\"headers\":true}\r\nPING\r\n-ERR 'x'\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := parser{maxPayload: 1 << 16}
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for range 1000 {
			o, err := p.next(br)
			if err != nil {
				break
			}
			if o.kind == opMsg && o.hdr != nil {
				decodeHeader(o.hdr)
			}
			if o.kind == opInfo {
				parseInfo(o.text)
			}
		}
		decodeHeader(data)
	})
}
