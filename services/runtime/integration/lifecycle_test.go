package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sleep", "100"}, nil)
	pid := e.create("life", b)
	s := e.state("life")
	if s.Status != "created" || s.Pid != pid || s.ID != "life" || s.Bundle != b {
		t.Fatalf("state after create: %+v", s)
	}
	// exec fifo parks the init before the user's program
	if cmd, _ := os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); strings.Contains(string(cmd), "sleep") {
		t.Fatalf("user program started before start: %q", cmd)
	}
	e.ok("start", "life")
	if s := e.state("life"); s.Status != "running" {
		t.Fatalf("status after start %q", s.Status)
	}
	// start returns once the init is released; it execs right after
	var cmd []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cmd, _ = os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); strings.Contains(string(cmd), "sleep") {
			break
		}
	}
	if !strings.Contains(string(cmd), "sleep") {
		t.Fatalf("pid %d is not the user program: %q", pid, cmd)
	}
	r := e.rt("start", "life")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot start an already running container") {
		t.Fatalf("second start: %v", r)
	}
	r = e.rt("delete", "life")
	if r.code != 1 || !strings.Contains(r.stderr, "not stopped") {
		t.Fatalf("delete running: %v", r)
	}
	e.ok("pause", "life")
	if s := e.state("life"); s.Status != "paused" {
		t.Fatalf("status after pause %q", s.Status)
	}
	e.ok("resume", "life")
	e.ok("kill", "life", "KILL")
	if code := reap(t, pid); code != 128+9 {
		t.Fatalf("exit code %d", code)
	}
	if s := e.state("life"); s.Status != "stopped" {
		t.Fatalf("status after kill %q", s.Status)
	}
	r = e.rt("start", "life")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot start a container that has stopped") {
		t.Fatalf("start stopped: %v", r)
	}
	r = e.rt("kill", "life")
	if r.code != 1 || !strings.Contains(r.stderr, "container not running") {
		t.Fatalf("kill stopped: %v", r)
	}
	e.ok("delete", "life")
	if _, err := os.Stat(filepath.Join(e.root, "life")); !os.IsNotExist(err) {
		t.Fatal("state dir left behind")
	}
	r = e.rt("state", "life")
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("state after delete: %v", r)
	}
}

func TestDeleteCreatedAndForce(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sleep", "100"}, nil)
	pid := e.create("dc", b)
	e.ok("delete", "dc") // a created container may be deleted (its init is killed)
	reap(t, pid)
	pid = e.create("df", b)
	e.ok("start", "df")
	e.ok("pause", "df") // a paused container too
	e.ok("delete", "--force", "df")
	reap(t, pid)
	if _, err := os.Stat(filepath.Join(e.root, "df")); !os.IsNotExist(err) {
		t.Fatal("state dir left behind")
	}
}

func TestRunExitCodes(t *testing.T) {
	e := newEnv(t)
	r := e.run(e.bundle([]string{"sh", "-c", "echo out; echo err >&2; exit 3"}, nil))
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("run: %v", r)
	}
	// (not pid 1 of a pid namespace, which cannot be killed from inside)
	r = e.run(e.bundle([]string{"sh", "-c", "kill -9 $$"}, func(s *specs.Spec) {
		s.Linux.Namespaces = s.Linux.Namespaces[1:]
	}))
	if r.code != 137 {
		t.Fatalf("killed: %v", r)
	}
	if ents, _ := os.ReadDir(e.root); len(ents) != 0 {
		t.Fatalf("run left %d containers", len(ents))
	}
}

func TestListPsKillAll(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sh", "-c", "sleep 100 & sleep 100 & wait"}, nil)
	pid := e.create("lp", b)
	e.ok("start", "lp")
	r := e.ok("list")
	if !strings.HasPrefix(r.stdout, "ID") || !strings.Contains(r.stdout, "lp") {
		t.Fatalf("list: %s", r.stdout)
	}
	var l []map[string]any
	if err := json.Unmarshal([]byte(e.ok("list", "--format", "json").stdout), &l); err != nil || len(l) != 1 || l[0]["id"] != "lp" {
		t.Fatalf("list json: %v %v", l, err)
	}
	var pids []int
	for i := 0; i < 100 && len(pids) < 3; i++ { // the shell forks its children asynchronously
		pids = nil
		_ = json.Unmarshal([]byte(e.ok("ps", "--format", "json", "lp").stdout), &pids)
	}
	if len(pids) != 3 {
		t.Fatalf("ps: %v", pids)
	}
	if _, err := exec.LookPath("ps"); err == nil {
		r = e.ok("ps", "lp")
		if !strings.Contains(r.stdout, "PID") || strings.Count(r.stdout, "\n") != 4 {
			t.Fatalf("ps table: %s", r.stdout)
		}
	}
	e.ok("kill", "--all", "lp", "9")
	reap(t, pid)
	e.ok("delete", "lp")
}

func TestFeaturesAndSpec(t *testing.T) {
	e := newEnv(t)
	var f map[string]any
	if err := json.Unmarshal([]byte(e.ok("features").stdout), &f); err != nil || f["ociVersionMax"] == nil {
		t.Fatalf("features: %v %v", f, err)
	}
	dir := t.TempDir()
	e.ok("spec", "--bundle", dir)
	var s map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "config.json"))), &s); err != nil || s["ociVersion"] == nil {
		t.Fatalf("spec: %v", err)
	}
	if r := e.rt("spec", "--bundle", dir); r.code != 1 {
		t.Fatalf("spec over an existing config: %v", r)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestGlobalFlagsRunDetachExecArgs: --log-format text and --debug write
// runc-style lines to --log, --systemd-cgroup is accepted with a warning,
// run --detach returns with the container running, exec takes its command
// after "--".
func TestGlobalFlagsRunDetachExecArgs(t *testing.T) {
	e := newEnv(t)
	log := filepath.Join(t.TempDir(), "log")
	if r := e.rt("--log", log, "--log-format", "text", "state", "nosuch"); r.code != 1 || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("state of a missing container: %v", r)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "level=error msg=") || !strings.Contains(string(b), "nosuch") || strings.HasPrefix(string(b), "{") {
		t.Fatalf("text log: %q", b)
	}
	if r := e.rt("--log", log, "--systemd-cgroup", "list"); r.code != 0 {
		t.Fatalf("--systemd-cgroup: %v", r)
	}
	if b, _ = os.ReadFile(log); !strings.Contains(string(b), "level=warning") || !strings.Contains(string(b), "systemd") {
		t.Fatalf("no systemd-cgroup warning in the log: %q", b)
	}
	bundle := e.bundle([]string{"sleep", "100"}, nil)
	if r := e.rt("--debug", "--log", log, "run", "--detach", "--bundle", bundle, "det"); r.code != 0 {
		t.Fatalf("run --detach: %v", r)
	}
	if b, _ = os.ReadFile(log); !strings.Contains(string(b), "level=debug") || !strings.Contains(string(b), "init ready") {
		t.Fatalf("--debug wrote no phase timings: %q", b)
	}
	st := e.state("det")
	if st.Status != "running" {
		t.Fatalf("after run --detach: %+v", st)
	}
	if r := e.ok("exec", "det", "--", "sh", "-c", "echo in-$((1+1))"); r.stdout != "in-2\n" {
		t.Fatalf("exec -- args: %v", r)
	}
	e.ok("delete", "--force", "det")
	reap(t, st.Pid)
}

// start's C path (package faststart) leaves to Go what it cannot finish:
// here an init that died while the container was created.
func TestStartAfterInitDied(t *testing.T) {
	e := newEnv(t)
	pid := e.create("gone", e.bundle([]string{"true"}, nil))
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	reap(t, pid)
	r := e.rt("start", "gone")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot start a container that has stopped") {
		t.Fatalf("start after the init died: %v", r)
	}
	e.ok("delete", "gone")
}
