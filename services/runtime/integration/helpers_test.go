// Package integration runs the real berth-runtime binary, as root, against
// busybox bundles. Each area has its own file.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/busyboxfs"
	"berth/services/runtime/cli"
)

var binary string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("berth-runtime integration tests need root; skipping")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "berth-runtime-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "berth-runtime")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = ".."
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Println("build berth-runtime:", err)
		os.Exit(1)
	}
	// Created containers outlive the create command; adopt them so tests
	// can reap them and read their exit status.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: berth-runtime creates namespaces, cgroups and mounts")
	}
}

// env is one test's runtime root and bundles.
type env struct {
	t    *testing.T
	root string
}

func newEnv(t *testing.T) *env {
	needRoot(t)
	e := &env{t: t, root: t.TempDir()}
	t.Cleanup(func() {
		// Whatever a failing test left: force-delete it.
		ents, _ := os.ReadDir(e.root)
		for _, ent := range ents {
			r := e.rt("delete", "--force", ent.Name())
			_ = r
		}
	})
	return e
}

// bundle makes a busybox bundle running args with the default spec.
func (e *env) bundle(args []string, mutate func(*specs.Spec)) string {
	t := e.t
	t.Helper()
	dir := t.TempDir()
	// Reachable by a remapped root of a user namespace.
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 != 0o005 {
			_ = os.Chmod(d, st.Mode().Perm()|0o055)
		}
	}
	if err := busyboxfs.Build(filepath.Join(dir, "rootfs")); err != nil {
		t.Fatal(err)
	}
	s := cli.DefaultSpec()
	s.Process.Terminal = false
	s.Process.Args = args
	s.Root.Readonly = false
	if mutate != nil {
		mutate(s)
	}
	writeSpec(t, dir, s)
	return dir
}

func writeSpec(t *testing.T, dir string, s *specs.Spec) {
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// rt runs the binary with the env's root; stdio are files so that a
// container inheriting them does not hold the call open.
func (e *env) rt(args ...string) result {
	return e.rtIn(nil, args...)
}

func (e *env) rtIn(stdin []byte, args ...string) result {
	e.t.Helper()
	out, _ := os.CreateTemp(e.t.TempDir(), "out")
	errf, _ := os.CreateTemp(e.t.TempDir(), "err")
	defer out.Close()
	defer errf.Close()
	cmd := exec.Command(binary, append([]string{"--root", e.root}, args...)...)
	cmd.Stdout, cmd.Stderr = out, errf
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run %v: %v", args, err)
	}
	o, _ := os.ReadFile(out.Name())
	se, _ := os.ReadFile(errf.Name())
	return result{string(o), string(se), code}
}

// ok runs and requires exit 0.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.rt(args...)
	if r.code != 0 {
		e.t.Fatalf("berth-runtime %v: %v", args, r)
	}
	return r
}

// run runs a container to completion and returns its output.
func (e *env) run(bundle string) result {
	e.t.Helper()
	return e.rt("run", "--bundle", bundle, fmt.Sprintf("c%d", time.Now().UnixNano()))
}

// create creates id and returns the init pid.
func (e *env) create(id, bundle string, extra ...string) int {
	e.t.Helper()
	pidFile := filepath.Join(e.t.TempDir(), "pid")
	e.ok(append(append([]string{"create", "--bundle", bundle, "--pid-file", pidFile}, extra...), id)...)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		e.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

func (e *env) state(id string) specs.State {
	e.t.Helper()
	r := e.ok("state", id)
	var s specs.State
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		e.t.Fatalf("state JSON: %v: %s", err, r.stdout)
	}
	return s
}

// saved reads the runtime's own state file (for cgroup paths).
func (e *env) saved(id string) map[string]any {
	b, err := os.ReadFile(filepath.Join(e.root, id, "state.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func (e *env) cgroupPaths(id string) map[string]string {
	out := map[string]string{}
	for k, v := range e.saved(id)["cgroups"].(map[string]any) {
		out[k] = v.(string)
	}
	return out
}

// reap waits for an adopted init and returns its exit code. It reaps any
// other adopted orphan on the way (a pid namespace's init cannot finish
// exiting while a process of its namespace waits to be reaped by us), and
// gives up after 30s rather than hang.
func reap(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("wait %d: %v", pid, err)
		}
		if got == pid {
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
		if got > 0 {
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exit", pid)
		}
		time.Sleep(time.Millisecond)
	}
}

// outFile gives a container an output file (create passes its stdio).
func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("want %q in:\n%s", want, got)
	}
}
