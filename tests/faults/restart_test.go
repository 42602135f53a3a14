package faults

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// TestRestartPolicies: on-failure:N, always, unless-stopped and no, with
// back-off, RestartCount and restart events; docker stop suspends the policy
// until the supervisor restarts (unless-stopped: for good);
// the policies hold across a supervisor restart (SIGKILL).
func TestRestartPolicies(t *testing.T) {
	s := newStack(t)
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)

	failing := s.MustDocker("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
	never := s.MustDocker("run", "-d", "--restart", "no", "busybox", "sh", "-c", "exit 3")
	okExit := s.MustDocker("run", "-d", "--restart", "on-failure", "busybox", "true")
	always := s.MustDocker("run", "-d", "--restart", "always", "busybox", "sleep", "300")
	unless := s.MustDocker("run", "-d", "--restart", "unless-stopped", "busybox", "sleep", "300")

	waitFor(t, 15*time.Second, "on-failure:2 to give up", func() bool {
		c := mustInspect(t, s, failing)
		return c.RestartCount == 2 && c.State.Status == "exited"
	})
	time.Sleep(time.Second)
	if c := mustInspect(t, s, failing); c.RestartCount != 2 || c.State.Status != "exited" || c.State.ExitCode != 3 {
		t.Errorf("on-failure:2: count %d, %+v", c.RestartCount, c.State)
	}
	for _, id := range []string{never, okExit} {
		if c := mustInspect(t, s, id); c.RestartCount != 0 || c.State.Status != "exited" {
			t.Errorf("%s restarted: count %d, %+v", id[:12], c.RestartCount, c.State)
		}
	}

	// always: the container's process dies, the policy brings it back
	pid := mustInspect(t, s, always).State.Pid
	unix.Kill(pid, syscall.SIGKILL)
	waitFor(t, 15*time.Second, "always to restart", func() bool {
		c := mustInspect(t, s, always)
		return c.RestartCount == 1 && c.State.Status == "running" && c.State.Pid != pid
	})

	// and still after a supervisor crash, for a death while it is away
	pid = mustInspect(t, s, always).State.Pid
	s.KillSupervisor(syscall.SIGKILL)
	unix.Kill(pid, syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	s.StartSupervisor()
	waitFor(t, 20*time.Second, "always to restart after a supervisor restart", func() bool {
		c := mustInspect(t, s, always)
		return c.RestartCount == 2 && c.State.Status == "running" && c.State.Pid != pid && alive(c.State.Pid)
	})

	// docker stop suspends the policy until the supervisor restarts, as
	// dockerd's restart does: always comes back then, unless-stopped stays
	// stopped
	s.MustDocker("stop", "-t", "1", always, unless)
	time.Sleep(1500 * time.Millisecond)
	for _, id := range []string{unless, always} {
		if c := mustInspect(t, s, id); c.State.Status != "exited" {
			t.Errorf("%s restarted after docker stop: %+v", id[:12], c.State)
		}
	}
	s.KillSupervisor(syscall.SIGKILL)
	s.StartSupervisor()
	waitState(t, s, always, "running", 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if c := mustInspect(t, s, unless); c.State.Status != "exited" {
		t.Errorf("unless-stopped restarted after docker stop and a supervisor restart: %+v", c.State)
	}
	// a manual start brings the policy back
	s.MustDocker("start", unless)
	waitState(t, s, unless, "running", 10*time.Second)

	until := strconv.FormatInt(time.Now().Add(time.Second).Unix(), 10)
	time.Sleep(1100 * time.Millisecond)
	out := s.MustDocker("events", "--since", since, "--until", until, "--filter", "event=restart", "--format", "{{.Actor.ID}}")
	if n := strings.Count(out, failing); n != 2 {
		t.Errorf("%d restart events for on-failure:2, want 2:\n%s", n, out)
	}
	if n := strings.Count(out, always); n != 3 {
		t.Errorf("%d restart events for always, want 3", n)
	}
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
}

// TestRestartBackoff: a container that keeps failing is restarted with a
// doubling delay, not in a tight loop.
func TestRestartBackoff(t *testing.T) {
	s := newStack(t)
	id := s.MustDocker("run", "-d", "--restart", "always", "busybox", "sh", "-c", "exit 1")
	time.Sleep(3 * time.Second)
	n := mustInspect(t, s, id).RestartCount
	// 100+200+400+800+1600 ms: at most 5 or 6 restarts in 3 s (each start
	// takes time too); a loop without back-off would make dozens
	if n < 2 || n > 6 {
		t.Errorf("%d restarts in 3 s", n)
	}
	s.MustDocker("stop", id)
	n = mustInspect(t, s, id).RestartCount
	time.Sleep(2 * time.Second)
	if c := mustInspect(t, s, id); c.RestartCount != n || c.State.Status != "exited" {
		t.Errorf("the policy went on after docker stop: %d → %d, %s", n, c.RestartCount, c.State.Status)
	}
	s.MustDocker("rm", "-f", id)
}
