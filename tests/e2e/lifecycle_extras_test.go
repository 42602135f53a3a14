package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

func TestInitIsPID1(t *testing.T) {
	s := shared(t)
	out := s.MustDocker("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm")
	if !strings.Contains(out, "    1 docker-init") {
		t.Fatalf("with --init PID 1 is not docker-init:\n%s", out)
	}
	out = s.MustDocker("run", "--rm", "busybox", "ps", "-o", "pid,comm")
	if !strings.Contains(out, "    1 ps") {
		t.Fatalf("without --init PID 1 is not the command:\n%s", out)
	}
	// the command's exit code (and a signal's 128+n) goes through
	if _, _, code := s.Docker("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("--init exit code %d, want 7", code)
	}
	if _, _, code := s.Docker("run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"); code != 137 {
		t.Fatalf("--init exit code of a killed command %d, want 137", code)
	}
	// the init is read-only in the container
	if _, eout, code := s.Docker("run", "--rm", "--init", "busybox", "sh", "-c", "echo x > /sbin/docker-init"); code == 0 {
		t.Fatalf("the init could be overwritten from the container (%s)", eout)
	}
}

func TestInitForwardsSignals(t *testing.T) {
	s := shared(t)
	// sleep as PID 1 ignores SIGTERM (no handler): docker stop waits for
	// the timeout and kills; under the init it gets the signal and dies
	with, without := uniq("init"), uniq("noinit")
	t.Cleanup(func() { s.Docker("rm", "-f", with, without) })
	s.MustDocker("run", "-d", "--init", "--name", with, "busybox", "sleep", "300")
	s.MustDocker("run", "-d", "--name", without, "busybox", "sleep", "300")
	start := time.Now()
	s.MustDocker("stop", "-t", "10", with)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("docker stop of an --init container took %s: SIGTERM was not forwarded", d)
	}
	if code := s.MustDocker("inspect", "-f", "{{.State.ExitCode}}", with); code != "143" {
		t.Fatalf("--init container stopped with %s, want 143 (SIGTERM)", code)
	}
	start = time.Now()
	s.MustDocker("stop", "-t", "1", without)
	if d := time.Since(start); d < time.Second {
		t.Fatalf("docker stop without --init took %s: the test proves nothing", d)
	}
	if code := s.MustDocker("inspect", "-f", "{{.State.ExitCode}}", without); code != "137" {
		t.Fatalf("container without --init stopped with %s, want 137", code)
	}
}

func TestInitReapsZombies(t *testing.T) {
	s := shared(t)
	// the subshell's sleep is orphaned: it goes to PID 1, which must reap
	// it; `exec sleep` as PID 1 never would
	script := "(sleep 0.2 &); exec sleep 300"
	zombies := func(extra ...string) string {
		name := uniq("zombie")
		t.Cleanup(func() { s.Docker("rm", "-f", name) })
		s.MustDocker(append(append([]string{"run", "-d", "--name", name}, extra...), "busybox", "sh", "-c", script)...)
		time.Sleep(time.Second)
		var z []string
		for _, l := range strings.Split(s.MustDocker("exec", name, "ps", "-o", "stat,comm"), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "Z") {
				z = append(z, l)
			}
		}
		return strings.Join(z, ";")
	}
	if z := zombies(); z == "" {
		t.Fatal("without --init no zombie is left: the test proves nothing")
	}
	if z := zombies("--init"); z != "" {
		t.Fatalf("with --init zombies are left: %s", z)
	}
}

func TestStopSignalAndTimeout(t *testing.T) {
	s := shared(t)
	sig, slow := uniq("stopsig"), uniq("stoptime")
	t.Cleanup(func() { s.Docker("rm", "-f", sig, slow) })
	s.MustDocker("run", "-d", "--name", sig, "--stop-signal", "SIGUSR1", "busybox", "sh", "-c",
		`trap "echo got-usr1; exit 9" USR1; trap "echo got-term; exit 8" TERM; echo ready; while true; do sleep 0.1; done`)
	waitFor(t, 10*time.Second, "the trap script", func() bool { out, _, _ := s.Docker("logs", sig); return out == "ready" })
	if got := s.MustDocker("inspect", "-f", "{{.Config.StopSignal}}", sig); got != "SIGUSR1" {
		t.Fatalf("Config.StopSignal %q", got)
	}
	s.MustDocker("stop", sig)
	if code := s.MustDocker("inspect", "-f", "{{.State.ExitCode}}", sig); code != "9" {
		t.Fatalf("stop with --stop-signal: exit %s, want 9", code)
	}
	if out, _, _ := s.Docker("logs", sig); out != "ready\ngot-usr1" {
		t.Fatalf("logs %q", out)
	}
	// --stop-timeout: a process that ignores the stop signal is killed after it
	s.MustDocker("run", "-d", "--name", slow, "--stop-timeout", "2", "busybox", "sh", "-c", `trap "" TERM; echo ready; while true; do sleep 0.1; done`)
	waitFor(t, 10*time.Second, "the trap script", func() bool { out, _, _ := s.Docker("logs", slow); return out == "ready" })
	if got := s.MustDocker("inspect", "-f", "{{.Config.StopTimeout}}", slow); got != "2" {
		t.Fatalf("Config.StopTimeout %q", got)
	}
	start := time.Now()
	s.MustDocker("stop", slow)
	if d := time.Since(start); d < 2*time.Second || d > 6*time.Second {
		t.Fatalf("docker stop with --stop-timeout 2 took %s", d)
	}
	if code := s.MustDocker("inspect", "-f", "{{.State.ExitCode}}", slow); code != "137" {
		t.Fatalf("exit %s, want 137", code)
	}
	// docker stop -t overrides it
	s.MustDocker("start", slow)
	waitFor(t, 10*time.Second, "the restarted script", func() bool { out, _, _ := s.Docker("logs", slow); return out == "ready\nready" })
	start = time.Now()
	s.MustDocker("stop", "-t", "0", slow)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("docker stop -t 0 took %s", d)
	}
}

type healthState struct {
	Status        string
	FailingStreak int
	Log           []struct {
		ExitCode int
		Output   string
		Start    time.Time
		End      time.Time
	}
}

func health(t *testing.T, s *stack.Stack, name string) healthState {
	t.Helper()
	var h healthState
	out := s.MustDocker("inspect", "-f", "{{json .State.Health}}", name)
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("State.Health %q: %v", out, err)
	}
	return h
}

func waitHealth(t *testing.T, s *stack.Stack, name, want string) healthState {
	t.Helper()
	var h healthState
	waitFor(t, 20*time.Second, name+" "+want, func() bool { h = health(t, s, name); return h.Status == want })
	return h
}

func TestHealthcheck(t *testing.T) {
	s := shared(t)
	name := uniq("health")
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	s.MustDocker("run", "-d", "--name", name, "--health-cmd", "cat /tmp/ok && echo fine", "--health-interval", "200ms",
		"--health-retries", "2", "--health-timeout", "5s", "busybox", "sleep", "300")
	if h := health(t, s, name); h.Status != "starting" {
		t.Fatalf("health right after the start: %+v, want starting", h)
	}
	if st := s.MustDocker("ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.HasSuffix(st, "(health: starting)") {
		t.Fatalf("docker ps status %q", st)
	}
	h := waitHealth(t, s, name, "unhealthy")
	if h.FailingStreak < 2 || len(h.Log) == 0 || h.Log[len(h.Log)-1].ExitCode != 1 || !strings.Contains(h.Log[len(h.Log)-1].Output, "No such file") {
		t.Fatalf("unhealthy state %+v", h)
	}
	if st := s.MustDocker("ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.HasSuffix(st, "(unhealthy)") {
		t.Fatalf("docker ps status %q", st)
	}
	s.MustDocker("exec", name, "touch", "/tmp/ok")
	h = waitHealth(t, s, name, "healthy")
	last := h.Log[len(h.Log)-1]
	if h.FailingStreak != 0 || last.ExitCode != 0 || last.Output != "fine\n" || last.End.Before(last.Start) || len(h.Log) > 5 {
		t.Fatalf("healthy state %+v", h)
	}
	if st := s.MustDocker("ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.HasSuffix(st, "(healthy)") {
		t.Fatalf("docker ps status %q", st)
	}
	if got := s.MustDocker("ps", "-q", "--no-trunc", "--filter", "health=healthy", "--filter", "name="+name); got != s.MustDocker("inspect", "-f", "{{.Id}}", name) {
		t.Fatalf("ps --filter health=healthy: %q", got)
	}
	time.Sleep(time.Second)
	if h := health(t, s, name); len(h.Log) != 5 {
		t.Fatalf("the log keeps %d results, want the last 5", len(h.Log))
	}
	// a stopped container's health is unhealthy, as dockerd's
	s.MustDocker("stop", "-t", "0", name)
	if h := health(t, s, name); h.Status != "unhealthy" {
		t.Fatalf("health after stop: %+v", h)
	}
	until := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)
	out := s.MustDocker("events", "--since", since, "--until", until, "--filter", "container="+name, "--filter", "event=health_status", "--format", "{{.Action}}")
	if out != "health_status: unhealthy\nhealth_status: healthy" {
		t.Fatalf("health events:\n%s", out)
	}
	// operators see the probes
	resp, err := http.Get("http://" + s.SupervisorMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`berth_supervisor_health_checks_total{result="failure"}`, `berth_supervisor_health_checks_total{result="success"}`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("supervisor metrics lack %s", m)
		}
	}
	// the probes run as execs, with dockerd's exec events
	out = s.MustDocker("events", "--since", since, "--until", until, "--filter", "container="+name, "--filter", "event=exec_die", "--format", "{{.Action}}")
	if !strings.HasPrefix(out, "exec_die") {
		t.Fatalf("no exec_die event for the probes: %q", out)
	}
}

func TestHealthcheckTimeoutAndStartPeriod(t *testing.T) {
	s := shared(t)
	slow, grace := uniq("hslow"), uniq("hgrace")
	t.Cleanup(func() { s.Docker("rm", "-f", slow, grace) })
	s.MustDocker("run", "-d", "--name", slow, "--health-cmd", "sleep 5", "--health-interval", "100ms",
		"--health-timeout", "300ms", "--health-retries", "1", "busybox", "sleep", "300")
	h := waitHealth(t, s, slow, "unhealthy")
	last := h.Log[len(h.Log)-1]
	if last.ExitCode != -1 || last.Output != "Health check exceeded timeout (300ms)" || last.End.Sub(last.Start) > 3*time.Second {
		t.Fatalf("timed-out probe %+v", last)
	}
	// failures in the start period do not count
	s.MustDocker("run", "-d", "--name", grace, "--health-cmd", "false", "--health-interval", "100ms", "--health-retries", "1",
		"--health-start-period", "3s", "--health-start-interval", "100ms", "busybox", "sleep", "300")
	time.Sleep(1500 * time.Millisecond)
	h = health(t, s, grace)
	if h.Status != "starting" || h.FailingStreak != 0 || len(h.Log) == 0 {
		t.Fatalf("in the start period: %+v, want starting with failed probes not counted", h)
	}
	waitHealth(t, s, grace, "unhealthy")
}

func TestHealthcheckFromImage(t *testing.T) {
	s := shared(t)
	img := "berth-health:" + uniq("t")
	s.ImportBusyboxAs(img, `CMD ["sleep", "300"]`, "HEALTHCHECK --interval=100ms --retries=1 CMD test -f /tmp/ok")
	t.Cleanup(func() { s.Docker("rmi", "-f", img) })
	if got := s.MustDocker("image", "inspect", "-f", "{{json .Config.Healthcheck}}", img); got != `{"Test":["CMD-SHELL","test -f /tmp/ok"],"Interval":100000000,"Retries":1}` {
		t.Fatalf("image healthcheck %s", got)
	}
	name, off, mixed := uniq("himg"), uniq("hoff"), uniq("hmix")
	t.Cleanup(func() { s.Docker("rm", "-f", name, off, mixed) })
	s.MustDocker("run", "-d", "--name", name, img)
	waitHealth(t, s, name, "unhealthy")
	s.MustDocker("exec", name, "touch", "/tmp/ok")
	waitHealth(t, s, name, "healthy")
	// --no-healthcheck turns the image's off
	s.MustDocker("run", "-d", "--name", off, "--no-healthcheck", img)
	time.Sleep(500 * time.Millisecond)
	if got := s.MustDocker("inspect", "-f", "{{json .State.Health}}", off); got != "null" {
		t.Fatalf("--no-healthcheck: State.Health %s", got)
	}
	// a container's own field wins, the rest comes from the image
	s.MustDocker("run", "-d", "--name", mixed, "--health-retries", "7", img)
	if got := s.MustDocker("inspect", "-f", "{{json .Config.Healthcheck}}", mixed); got != `{"Test":["CMD-SHELL","test -f /tmp/ok"],"Interval":100000000,"Retries":7}` {
		t.Fatalf("merged healthcheck %s", got)
	}
}

func TestHealthcheckBadValues(t *testing.T) {
	s := shared(t)
	_, eout, code := s.Docker("run", "--rm", "--health-cmd", "true", "--health-interval", "500us", "busybox", "true")
	if code != 125 || !strings.Contains(eout, "Interval in Healthcheck cannot be less than 1ms") {
		t.Fatalf("exit %d stderr %q", code, eout)
	}
	_, eout, code = s.Docker("import", "-c", "HEALTHCHECK --interval=soon CMD true", "-", "x:y")
	if code == 0 || !strings.Contains(eout, "HEALTHCHECK") {
		t.Fatalf("import with a bad HEALTHCHECK: exit %d stderr %q", code, eout)
	}
}
