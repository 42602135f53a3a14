package faults

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/natsbus"
	"berth/tests/stack"
)

// newExtStack is newStack with the bus on an external nats-server
// configured from deploy/nats.conf (auth callout for the shims).
func newExtStack(t *testing.T) *stack.Stack {
	t.Helper()
	return withBusybox(t, stack.StartExternal(t))
}

// TestExtBusAuth: an external NATS server configured from deploy/nats.conf
// refuses strangers, and a shim's credentials (its own user, admitted by
// the supervisor's auth callout) serve only its own container: publishing
// another container's exit report or output, reading its stdin or commands
// is refused by the server, as with the embedded one.
func TestExtBusAuth(t *testing.T) {
	s := newExtStack(t)
	refusesStrangers(t, s)
	shimIsolation(t, s)
	// the issuer's seed, made by berth-supervisor callout-key, is root's alone
	if m, err := statMode(s.NATS.CalloutKey()); err != nil || m != 0o600 {
		t.Errorf("%s: mode %o, %v", s.NATS.CalloutKey(), m, err)
	}
}

// TestForgedExitReportRefused: an exit report for a running container is
// not applied, even when the bus lets it through (sent with that
// container's own shim credentials, as a process that stole them could):
// the supervisor sees the container's init process alive in its cgroup,
// refuses the report and logs it. The container keeps running with its
// rootfs mounted; its real exit later is recorded.
func TestForgedExitReportRefused(t *testing.T) {
	s := newExtStack(t)
	id := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	pid := mustInspect(t, s, id).State.Pid
	sc := shimConfig(t, s, id)
	var pe permErrors
	nc := connectAs(t, s, sc.NATSUser, sc.NATSPassword, &pe, nats.CustomInboxPrefix(bus.ShimInboxPrefix(s.Node, id)))
	ctx, cancel := contextTimeout(5 * time.Second)
	defer cancel()
	forged := bus.ExitReport{ID: id, ExitCode: 99, ExitedAt: time.Now().UTC()}
	err := natsbus.Call(ctx, nc, bus.Report(s.Node, id, bus.ReportExit), forged, nil)
	if err == nil || !strings.Contains(err.Error(), "still runs") {
		t.Fatalf("forged exit report: %v, want a refusal", err)
	}
	pe.none(t)
	time.Sleep(300 * time.Millisecond)
	c := mustInspect(t, s, id)
	if c.State.Status != "running" || c.State.Pid != pid || c.State.ExitCode != 0 {
		t.Fatalf("after a forged exit report: %+v", c.State)
	}
	if !alive(pid) || !mounted(s, id) {
		t.Fatalf("after a forged exit report: process alive %v, rootfs mounted %v", alive(pid), mounted(s, id))
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/bin/sh", pid)); err != nil {
		t.Errorf("the container's file system after the forgery: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(filepath.Dir(s.Root), "supervisor.log"))
	if !strings.Contains(string(log), "REFUSED an exit report") {
		t.Error("the supervisor did not log the refused report")
	}
	if resp, err := http.Get("http://" + s.SupervisorMetrics + "/metrics"); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "\nberth_supervisor_exit_reports_refused_total 1\n") {
			t.Error("berth_supervisor_exit_reports_refused_total is not 1")
		}
	}
	// the genuine exit goes through
	s.MustDocker("kill", id)
	if c := waitState(t, s, id, "exited", 10*time.Second); c.State.ExitCode != 137 {
		t.Errorf("exit code %d after docker kill, want 137", c.State.ExitCode)
	}
}

// TestExtBusOutage: the external NATS server killed for a while, then
// started again. Running containers keep running; the API answers 503 with
// a clear message meanwhile, at once; the exit of a container that ended
// while the bus was away is recorded with its true code and time once it is
// back; a container whose shim is killed meanwhile is settled by the
// supervisor alone; and the events stream lost nothing: every event listed
// before the outage is listed after it, with each die of the outage once.
func TestExtBusOutage(t *testing.T) {
	s := newExtStack(t)
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	before := s.MustDocker("run", "-d", "--name", "before", "busybox", "true")
	waitState(t, s, before, "exited", 10*time.Second)
	runner := s.MustDocker("run", "-d", "--name", "runner", "busybox", "sleep", "300")
	during := s.MustDocker("run", "-d", "--name", "during", "busybox", "sh", "-c", "sleep 2; exit 7")
	orphan := s.MustDocker("run", "-d", "--name", "orphan", "busybox", "sleep", "300")
	runnerPid, duringPid := mustInspect(t, s, runner).State.Pid, mustInspect(t, s, during).State.Pid
	events := func(until string) []string {
		out := s.MustDocker("events", "--since", since, "--until", until, "--format", "{{.TimeNano}} {{.Actor.Attributes.name}} {{.Action}}")
		return strings.Split(out, "\n")
	}
	time.Sleep(1100 * time.Millisecond) // --until is in whole seconds
	eventsBefore := events(strconv.FormatInt(time.Now().Unix(), 10))

	s.NATS.Stop(syscall.SIGKILL)
	stoppedAt := time.Now()
	for _, p := range []string{"/containers/json", "/containers/" + runner + "/json", "/info"} {
		code, body, took := apiGet(t, s, p)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "NATS") {
			t.Errorf("GET %s with the bus away: %d %s", p, code, body)
		}
		if took > 5*time.Second {
			t.Errorf("GET %s took %v", p, took)
		}
	}
	if _, errOut, code := s.Docker("ps"); code == 0 || !strings.Contains(errOut, "NATS") {
		t.Errorf("docker ps with the bus away: %d %q", code, errOut)
	}
	for deadline := time.Now().Add(10 * time.Second); alive(duringPid); {
		if time.Now().After(deadline) {
			t.Fatal("the container did not exit during the outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// the supervisor sees a shim die without the bus
	if err := syscall.Kill(shimPid(t, s, orphan), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !mountGone(s, orphan); {
		if time.Now().After(deadline) {
			t.Fatal("the container of a killed shim was not settled during the outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// its shim keeps the report until the bus takes it
	if _, err := os.Stat(filepath.Join(s.ExecRoot, "shims", during, bus.ShimExitFile)); err != nil {
		t.Errorf("no pending exit report during the outage: %v", err)
	}
	time.Sleep(time.Second)
	if !alive(runnerPid) || !alive(shimPid(t, s, runner)) {
		t.Fatal("a running container or its shim died with the bus")
	}
	s.NATS.Start()
	restartedAt := time.Now()
	waitAPI(t, s)

	c := waitState(t, s, during, "exited", 20*time.Second)
	if c.State.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", c.State.ExitCode)
	}
	if c.State.FinishedAt.Before(stoppedAt) || c.State.FinishedAt.After(restartedAt) {
		t.Errorf("finished at %v; the bus was away from %v to %v", c.State.FinishedAt, stoppedAt, restartedAt)
	}
	if c := mustInspect(t, s, runner); c.State.Status != "running" || c.State.Pid != runnerPid {
		t.Errorf("runner after the outage: %+v", c.State)
	}
	// the bus works for new containers, their shims admitted again
	if out := s.MustDocker("run", "--rm", "busybox", "echo", "hi"); out != "hi" {
		t.Errorf("docker run after the outage: %q", out)
	}
	time.Sleep(1100 * time.Millisecond)
	eventsAfter := events(strconv.FormatInt(time.Now().Unix(), 10))
	for _, e := range eventsBefore {
		if !slices.Contains(eventsAfter, e) {
			t.Errorf("event %q, listed before the outage, is gone after it", e)
		}
	}
	for _, name := range []string{"during", "orphan"} {
		var dies int
		for _, e := range eventsAfter {
			if strings.HasSuffix(e, " "+name+" die") {
				dies++
			}
		}
		if dies != 1 {
			t.Errorf("%d die events for %s, which ended during the outage:\n%s", dies, name, strings.Join(eventsAfter, "\n"))
		}
	}
	if c := mustInspect(t, s, orphan); c.State.Status != "exited" || c.State.ExitCode != 137 {
		t.Errorf("the container of the killed shim: %+v", c.State)
	}
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
}

func mountGone(s *stack.Stack, id string) bool { return !mounted(s, id) }

// waitAPI waits until the API answers again (the supervisor back on the bus).
func waitAPI(t *testing.T, s *stack.Stack) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, errOut, code := s.Docker("ps")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API does not answer 30s after the bus came back: %s", errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestExtBusSupervisorStartsFirst: a supervisor (re)started while its
// external bus is away waits for it instead of exiting, then restores its
// containers as after any restart.
func TestExtBusSupervisorStartsFirst(t *testing.T) {
	s := newExtStack(t)
	id := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	pid := mustInspect(t, s, id).State.Pid
	s.KillSupervisor(syscall.SIGKILL)
	s.NATS.Stop(syscall.SIGTERM)
	started := make(chan struct{})
	time.AfterFunc(3*time.Second, func() { s.NATS.Start(); close(started) })
	s.StartSupervisor() // ready (its metrics listener up) only once it is on the bus
	select {
	case <-started:
	default:
		t.Fatal("the supervisor came up before its bus")
	}
	log, _ := os.ReadFile(filepath.Join(filepath.Dir(s.Root), "supervisor.log"))
	if !strings.Contains(string(log), "the bus is not reachable yet") {
		t.Error("the supervisor did not say it was waiting for the bus")
	}
	waitAPI(t, s)
	if c := mustInspect(t, s, id); c.State.Status != "running" || c.State.Pid != pid || !alive(pid) {
		t.Errorf("after the restart: %+v", c.State)
	}
	// its shim is admitted again and answers
	s.MustDocker("kill", id)
	if c := waitState(t, s, id, "exited", 10*time.Second); c.State.ExitCode != 137 {
		t.Errorf("exit code %d after docker kill, want 137", c.State.ExitCode)
	}
}
