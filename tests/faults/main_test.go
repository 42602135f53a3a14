// Package faults kills real berth processes (supervisor, apigw, shims, the
// bus) and plays hostile bus clients against a real stack, and checks that
// berth survives: containers keep running, exits are recorded with their
// true codes, nobody gets on the bus without credentials.
package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/tests/stack"
)

// newStack starts a stack of its own (these tests kill its daemons) with
// busybox imported.
func newStack(t *testing.T) *stack.Stack {
	t.Helper()
	return withBusybox(t, stack.Start(t))
}

func withBusybox(t *testing.T, s *stack.Stack) *stack.Stack {
	t.Helper()
	dumpLogsOnFailure(t, s)
	s.ImportBusybox()
	return s
}

// inspect is the container's record as `docker inspect` shows it.
type inspect struct {
	ID    string
	Name  string
	State struct {
		Status     string
		Running    bool
		Pid        int
		ExitCode   int
		Error      string
		StartedAt  time.Time
		FinishedAt time.Time
		OOMKilled  bool
	}
	RestartCount int
}

func inspectOf(t *testing.T, s *stack.Stack, ref string) (inspect, bool) {
	t.Helper()
	out, _, code := s.Docker("inspect", ref)
	if code != 0 {
		return inspect{}, false
	}
	var v []inspect
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		t.Fatalf("inspect %s: %v: %s", ref, err, out)
	}
	return v[0], true
}

func mustInspect(t *testing.T, s *stack.Stack, ref string) inspect {
	t.Helper()
	c, ok := inspectOf(t, s, ref)
	if !ok {
		t.Fatalf("no container %s", ref)
	}
	return c
}

// waitState waits until the container's status is want.
func waitState(t *testing.T, s *stack.Stack, ref, want string, d time.Duration) inspect {
	t.Helper()
	deadline := time.Now().Add(d)
	var c inspect
	for time.Now().Before(deadline) {
		c = mustInspect(t, s, ref)
		if c.State.Status == want {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s is %q after %v, want %q (state %+v)", ref, c.State.Status, d, want, c.State)
	return c
}

// waitGone waits until the container no longer exists.
func waitGone(t *testing.T, s *stack.Stack, ref string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, ok := inspectOf(t, s, ref); !ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s still exists after %v", ref, d)
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	if pid <= 0 || unix.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// shimPid is the pid of the shim of id.
func shimPid(t *testing.T, s *stack.Stack, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.ExecRoot, "shims", id, bus.ShimPidFile))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// shimConfig reads the shim.json of id.
func shimConfig(t *testing.T, s *stack.Stack, id string) bus.ShimConfig {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.ExecRoot, "shims", id, bus.ShimConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var sc bus.ShimConfig
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

// mounted reports whether the rootfs of id is mounted.
func mounted(s *stack.Stack, id string) bool {
	p := filepath.Join(s.ExecRoot, "bundles", id, "rootfs")
	for _, m := range stack.Mounts(filepath.Dir(s.Root)) {
		if m == p {
			return true
		}
	}
	return false
}

// cgroups lists the cgroup directories of id that still exist.
func cgroups(id string) []string {
	a, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "berth", id))
	b, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "berth", id))
	return append(a, b...)
}
