package faults

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

// allIDs lists the full IDs `docker ps -a` shows.
func allIDs(t *testing.T, s *stack.Stack) []string {
	t.Helper()
	out := s.MustDocker("ps", "-aq", "--no-trunc")
	if out == "" {
		return nil
	}
	return strings.Fields(out)
}

// checkReality checks that what berth records matches what runs: a running
// container's process lives and its rootfs is mounted; a stopped one has no
// process, mount, runtime state or live shim; no directory, bundle or shim
// outlives its container. It retries for a while (exits settle
// asynchronously) and returns the problems of the last attempt.
func checkReality(t *testing.T, s *stack.Stack, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		probs := realityProblems(t, s)
		if len(probs) == 0 || time.Now().After(deadline) {
			return probs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func realityProblems(t *testing.T, s *stack.Stack) []string {
	var probs []string
	ids := allIDs(t, s)
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
		c, ok := inspectOf(t, s, id)
		if !ok {
			continue // removed meanwhile
		}
		switch c.State.Status {
		case "running", "paused", "restarting":
			if !alive(c.State.Pid) {
				probs = append(probs, id[:12]+": recorded running but pid "+itoa(c.State.Pid)+" is gone")
			}
			if !mounted(s, id) {
				probs = append(probs, id[:12]+": running without a mounted rootfs")
			}
		default:
			if c.State.Pid != 0 && alive(c.State.Pid) {
				probs = append(probs, id[:12]+": recorded "+c.State.Status+" but pid "+itoa(c.State.Pid)+" lives")
			}
			if mounted(s, id) {
				probs = append(probs, id[:12]+": "+c.State.Status+" with a mounted rootfs")
			}
			if _, err := os.Stat(filepath.Join(s.ExecRoot, "runtime", id)); err == nil {
				probs = append(probs, id[:12]+": "+c.State.Status+" with runtime state left")
			}
			if b, err := os.ReadFile(filepath.Join(s.ExecRoot, "shims", id, "shim.pid")); err == nil {
				if pid := atoi(strings.TrimSpace(string(b))); alive(pid) {
					probs = append(probs, id[:12]+": "+c.State.Status+" with a live shim")
				}
			}
		}
	}
	// no shim runs for a container that is not running (found by command
	// line: its state directory may be gone)
	running := map[string]bool{}
	for _, id := range ids {
		if c, ok := inspectOf(t, s, id); ok && c.State.Status == "running" {
			running[id] = true
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid := atoi(p.Name())
		if pid <= 1 {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), "berth-shim") || !strings.Contains(string(cmd), s.ExecRoot+"/shims/") || !alive(pid) {
			continue
		}
		rest := string(cmd)[strings.Index(string(cmd), s.ExecRoot+"/shims/")+len(s.ExecRoot+"/shims/"):]
		id, _, _ := strings.Cut(rest, "/")
		if !running[id] {
			probs = append(probs, "shim "+itoa(pid)+" runs for "+id+", which is not a running container")
		}
	}
	for _, dir := range []string{filepath.Join(s.Root, "containers"), filepath.Join(s.ExecRoot, "shims"), filepath.Join(s.ExecRoot, "bundles")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if len(e.Name()) == 64 && !known[e.Name()] {
				probs = append(probs, e.Name()[:12]+": "+dir+" entry without a container")
			}
		}
	}
	return probs
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
