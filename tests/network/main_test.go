// Package network tests berth's container networking through the docker
// CLI on a real stack: the default bridge, published ports, user-defined
// networks with name resolution and isolation, host, none and container:
// modes, Docker's errors, and that nothing is left behind (veths,
// addresses, namespaces, iptables rules), after a supervisor SIGKILL too.
package network

import (
	"context"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/tests/stack"
)

var (
	sharedOnce  sync.Once
	sharedStack *stack.Stack
	cleanups    []func()
)

type onceT struct{ testing.TB }

func (o *onceT) Cleanup(f func()) { cleanups = append(cleanups, f) }

// shared is one stack with busybox for the tests that kill no daemon.
func shared(t *testing.T) *stack.Stack {
	t.Helper()
	stack.RequireRoot(t)
	sharedOnce.Do(func() {
		sharedStack = stack.Start(&onceT{TB: t})
		sharedStack.ImportBusybox()
	})
	if sharedStack == nil {
		t.Fatal("the shared stack failed to start")
	}
	return sharedStack.Bind(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// eventually retries f for up to d.
func eventually(d time.Duration, f func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// apiStatus does one raw API request on the stack's socket.
func apiStatus(t *testing.T, s *stack.Stack, method, path, body string) int {
	t.Helper()
	sock := strings.TrimPrefix(s.Host, "unix://")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequest(method, "http://berth"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
