package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestHooksOrderAndState(t *testing.T) {
	e := newEnv(t)
	logDir := t.TempDir()
	log := filepath.Join(logDir, "log")
	hook := func(name string) specs.Hook {
		// appends "<name> <state json>" to the log
		return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `printf '%s ' ` + name + ` >> ` + log + `; cat >> ` + log + `; echo >> ` + log}}
	}
	b := e.bundle([]string{"sh", "-c", "cat /started; echo user-program >> /started"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			//lint:ignore SA1019 prestart hooks are deprecated but still in the spec, and runc runs them
			Prestart:        []specs.Hook{hook("prestart")},
			CreateRuntime:   []specs.Hook{hook("createRuntime")},
			CreateContainer: []specs.Hook{hook("createContainer")},
			// runs inside the container's root: its own sh, a file in the rootfs
			StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "cat > /started"}}},
			Poststart:      []specs.Hook{hook("poststart")},
			Poststop:       []specs.Hook{hook("poststop")},
		}
		s.Annotations = map[string]string{"a": "b"}
	})
	pidFile := filepath.Join(t.TempDir(), "pid")
	e.ok("create", "--bundle", b, "--pid-file", pidFile, "hk")
	pid := e.state("hk").Pid
	e.ok("start", "hk")
	reap(t, pid)
	e.ok("delete", "hk")
	lines := strings.Split(strings.TrimSpace(readFile(t, log)), "\n")
	var names []string
	for _, l := range lines {
		name, js, _ := strings.Cut(l, " ")
		names = append(names, name)
		var st specs.State
		if err := json.Unmarshal([]byte(js), &st); err != nil {
			t.Fatalf("%s: state on stdin %q: %v", name, js, err)
		}
		if st.ID != "hk" || st.Bundle != b || st.Annotations["a"] != "b" {
			t.Fatalf("%s: state %+v", name, st)
		}
		if name != "poststop" && st.Pid != pid {
			t.Fatalf("%s: pid %d want %d", name, st.Pid, pid)
		}
	}
	if got := strings.Join(names, ","); got != "prestart,createRuntime,createContainer,poststart,poststop" {
		t.Fatalf("hook order %s", got)
	}
	started := readFile(t, filepath.Join(b, "rootfs", "started"))
	if !strings.Contains(started, `"status":"running"`) || !strings.HasSuffix(started, "user-program\n") {
		t.Fatalf("startContainer: %q", started)
	}
}

func TestHookTimeoutAndFailure(t *testing.T) {
	e := newEnv(t)
	one := 1
	b := e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Timeout: &one}}}
	})
	start := time.Now()
	r := e.rt("create", "--bundle", b, "ht")
	if r.code != 1 || !strings.Contains(r.stderr, "timed out") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("timeout: %v", r)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout not enforced")
	}
	assertNothingLeft(t, e, "ht")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo boom >&2; exit 2"}}}}
	})
	r = e.rt("create", "--bundle", b, "hf")
	if r.code != 1 || !strings.Contains(r.stderr, "boom") {
		t.Fatalf("failing hook: %v", r)
	}
	assertNothingLeft(t, e, "hf")
	_ = os.Remove
}
