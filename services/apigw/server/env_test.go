package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"berth/pkg/bus"
)

const testNode = "testnode"

// testEnv is an in-process NATS server (JetStream on), a fake supervisor and
// shims on the bus, and berth-apigw serving on a unix socket.
type testEnv struct {
	t      *testing.T
	ns     *natsserver.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	sup    *fakeSupervisor
	srv    *Server
	sock   string
	client *http.Client
	reg    *prometheus.Registry
}

func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

type envOpts struct {
	noSupervisor bool
	noStream     bool
	maxBody      int64
	maxUpload    int64
	callTimeout  time.Duration
}

func newEnv(t *testing.T, opts ...envOpts) *testEnv {
	t.Helper()
	var o envOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	e := &testEnv{t: t, ns: startNATS(t)}
	nc, err := nats.Connect(e.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	e.js, _ = jetstream.New(nc)
	if !o.noStream {
		_, err = e.js.CreateStream(context.Background(), jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{bus.EventsAll}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !o.noSupervisor {
		e.sup = newFakeSupervisor(t, e.ns.ClientURL(), testNode)
	}
	e.reg = prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("APIGW_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.callTimeout == 0 {
		o.callTimeout = 5 * time.Second
	}
	e.srv = New(Config{Node: testNode, Logger: log, Registerer: e.reg, CallTimeout: o.callTimeout, MaxBodyBytes: o.maxBody, MaxUploadBytes: o.maxUpload})
	snc, err := nats.Connect(e.ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(snc.Close)
	e.srv.SetConn(snc)

	dir, err := os.MkdirTemp("", "apigw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e.sock = filepath.Join(dir, "api.sock")
	l, err := Listen("unix://"+e.sock, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: e.srv.Handler()}
	go hs.Serve(l)
	t.Cleanup(func() {
		e.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	})
	e.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.sock)
		},
	}}
	return e
}

// do sends a request and returns status, headers and body.
func (e *testEnv) do(method, path string, body io.Reader, hdr ...string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://docker"+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// doJSON sends a JSON body and decodes a JSON answer into out (if not nil).
func (e *testEnv) doJSON(method, path string, in, out any) int {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = strings.NewReader(string(data))
	}
	code, _, data := e.do(method, path, body, "Content-Type", "application/json")
	if out != nil && code < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return code
}

func errMessage(t *testing.T, data []byte) string {
	t.Helper()
	var eb errorBody
	if err := json.Unmarshal(data, &eb); err != nil {
		t.Fatalf("error body %q is not JSON: %v", data, err)
	}
	return eb.Message
}
