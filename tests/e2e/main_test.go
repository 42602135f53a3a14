// Package e2e drives a real berth stack (supervisor, embedded NATS, apigw,
// shims, berth-runtime) with the stock docker CLI and raw API calls.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth/tests/stack"
)

var (
	sharedOnce  sync.Once
	sharedStack *stack.Stack
)

// shared returns one stack, with busybox imported, for the tests that do not
// kill daemons; starting a stack per test would triple the suite's time.
func shared(t *testing.T) *stack.Stack {
	t.Helper()
	stack.RequireRoot(t)
	sharedOnce.Do(func() {
		st := &onceT{TB: t}
		sharedStack = stack.Start(st)
		sharedStack.ImportBusybox()
	})
	if sharedStack == nil {
		t.Fatal("the shared stack failed to start (see the first test's log)")
	}
	return sharedStack.Bind(t)
}

// onceT lets the shared stack outlive the test that started it: its cleanups
// run at the end of TestMain instead.
type onceT struct {
	testing.TB
}

var cleanups []func()

func (o *onceT) Cleanup(f func()) { cleanups = append(cleanups, f) }

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// api is an HTTP client on the stack's unix socket.
func api(s *stack.Stack) *http.Client {
	sock := strings.TrimPrefix(s.Host, "unix://")
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// call does one raw API request and returns status and decoded message.
func call(t *testing.T, s *stack.Stack, method, path, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://berth"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := api(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var msg struct{ Message string }
	if json.Unmarshal(data, &msg) == nil && msg.Message != "" {
		return resp.StatusCode, msg.Message
	}
	return resp.StatusCode, string(data)
}

// sharedScript is the acceptance script every developer has beside the project.
func sharedScript(t *testing.T) string {
	root, err := stack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(root), "shared", "acceptance", "docker-cli.sh")
	if env := os.Getenv("BERTH_ACCEPTANCE_SCRIPT"); env != "" {
		p = env // a worktree away from shared/
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared acceptance script not found at %s", p)
	}
	return p
}
