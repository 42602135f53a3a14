package faults

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/tests/stack"
)

func apiGet(t *testing.T, s *stack.Stack, path string) (int, string, time.Duration) {
	t.Helper()
	sock := strings.TrimPrefix(s.Host, "unix://")
	cl := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	t0 := time.Now()
	resp, err := cl.Get("http://berth" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(t0)
}

// TestBusDown: with the bus away (the supervisor and its embedded NATS
// killed) the API answers 503 with a clear message at once; exits seen
// meanwhile are delivered later and no event of the JetStream stream is
// lost across the restart of the embedded server.
func TestBusDown(t *testing.T) {
	s := newStack(t)
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	before := s.MustDocker("run", "-d", "--name", "before", "busybox", "true")
	waitState(t, s, before, "exited", 10*time.Second)
	during := s.MustDocker("run", "-d", "--name", "during", "busybox", "sh", "-c", "sleep 1; exit 5")

	s.KillSupervisor(syscall.SIGKILL)
	for _, p := range []string{"/containers/json", "/containers/" + during + "/json", "/info"} {
		code, body, took := apiGet(t, s, p)
		if code != http.StatusServiceUnavailable {
			t.Errorf("GET %s with the bus away: %d %s", p, code, body)
		}
		if !strings.Contains(body, "bus") && !strings.Contains(body, "NATS") {
			t.Errorf("GET %s: unclear message %q", p, body)
		}
		if took > 5*time.Second {
			t.Errorf("GET %s took %v", p, took)
		}
	}
	_, errOut, code := s.Docker("ps")
	if code == 0 || !strings.Contains(errOut, "NATS") {
		t.Errorf("docker ps with the bus away: %d %q", code, errOut)
	}
	time.Sleep(1500 * time.Millisecond) // "during" exits while the bus is away
	s.StartSupervisor()
	c := waitState(t, s, during, "exited", 15*time.Second)
	if c.State.ExitCode != 5 {
		t.Errorf("exit code %d, want 5", c.State.ExitCode)
	}
	// every event, from before the outage and after, is in the stream
	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond)
	out := s.MustDocker("events", "--since", since, "--until", until, "--format", "{{.Actor.Attributes.name}} {{.Action}}")
	for _, want := range []string{"before create", "before start", "before die", "during create", "during start", "during die"} {
		if !strings.Contains(out, want) {
			t.Errorf("event %q missing from:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "during die"); n != 1 {
		t.Errorf("%d die events for the container that exited during the outage", n)
	}
}
