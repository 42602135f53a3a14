package faults

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShimKilled: SIGKILL a container's shim; the container is reported
// dead with a clear reason and exit code 137, its process does not
// survive, its mount, runtime state and cgroups are gone, and another
// container is not affected.
func TestShimKilled(t *testing.T) {
	s := newStack(t)
	victim := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	other := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	pid := mustInspect(t, s, victim).State.Pid
	if len(cgroups(victim)) == 0 {
		t.Log("no cgroup found for the container (nothing to check there)")
	}
	if err := unix.Kill(shimPid(t, s, victim), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c := waitState(t, s, victim, "exited", 15*time.Second)
	if c.State.ExitCode != 137 {
		t.Errorf("exit code %d, want 137", c.State.ExitCode)
	}
	if !strings.Contains(c.State.Error, "shim") {
		t.Errorf("State.Error %q does not say why", c.State.Error)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("the container's process %d survived its shim", pid)
	}
	if mounted(s, victim) {
		t.Error("rootfs still mounted")
	}
	if cg := cgroups(victim); len(cg) > 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	if o := mustInspect(t, s, other); o.State.Status != "running" || !alive(o.State.Pid) {
		t.Errorf("the other container: %+v", o.State)
	}
	if p := checkReality(t, s, 5*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
	// the dead container restarts and is removed normally
	s.MustDocker("start", victim)
	waitState(t, s, victim, "running", 10*time.Second)
	s.MustDocker("rm", "-f", victim, other)
}

// TestShimKilledWhileSupervisorDown: the shim dies while the supervisor is
// away too; the restarted supervisor settles the container the same way.
func TestShimKilledWhileSupervisorDown(t *testing.T) {
	s := newStack(t)
	victim := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	pid := mustInspect(t, s, victim).State.Pid
	s.KillSupervisor(syscall.SIGKILL)
	if err := unix.Kill(shimPid(t, s, victim), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	s.StartSupervisor()
	c := waitState(t, s, victim, "exited", 15*time.Second)
	if c.State.ExitCode != 137 || !strings.Contains(c.State.Error, "shim") {
		t.Errorf("state %+v", c.State)
	}
	if alive(pid) {
		t.Errorf("the container's process %d survived", pid)
	}
	if cg := cgroups(victim); len(cg) > 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	if p := checkReality(t, s, 5*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
}

// TestDeadShimExitReport: the container exits while the supervisor is away,
// then its shim is killed before it could deliver the report; the restarted
// supervisor takes the exit report the shim left on disk (exit.json), with
// the true exit code and time.
func TestDeadShimExitReport(t *testing.T) {
	s := newStack(t)
	id := s.MustDocker("run", "-d", "busybox", "sh", "-c", "sleep 1; exit 9")
	spid := shimPid(t, s, id)
	s.KillSupervisor(syscall.SIGKILL)
	exitFile := filepath.Join(s.ExecRoot, "shims", id, "exit.json")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(exitFile); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(exitFile); err != nil {
		t.Fatalf("the shim wrote no exit report: %v", err)
	}
	exitedBy := time.Now()
	if err := unix.Kill(spid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	s.StartSupervisor()
	c := waitState(t, s, id, "exited", 15*time.Second)
	if c.State.ExitCode != 9 || c.State.Error != "" {
		t.Errorf("state %+v, want exit 9 and no error", c.State)
	}
	if c.State.FinishedAt.After(exitedBy) {
		t.Errorf("finished at %v, after the report was written (%v)", c.State.FinishedAt, exitedBy)
	}
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
}
