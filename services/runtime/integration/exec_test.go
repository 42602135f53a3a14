package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExec(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) { s.Hostname = "exec-box" })
	pid := e.create("ex", b)
	e.ok("start", "ex")
	r := e.ok("exec", "ex", "sh", "-c", "hostname; echo $$; for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup | grep pids")
	for _, n := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup"} {
		want, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/" + n)
		contains(t, r.stdout, want)
	}
	contains(t, r.stdout, "exec-box")
	if f := strings.Fields(r.stdout); len(f) < 2 || f[1] == "1" {
		t.Fatalf("exec'd process should not be pid 1: %s", r.stdout)
	}
	// exit codes, env, cwd, user
	r = e.rt("exec", "--env", "X=y", "--cwd", "/tmp", "--user", "1000:1000", "ex", "sh", "-c", "echo $X; pwd; id -u; id -g; exit 7")
	if r.code != 7 || r.stdout != "y\n/tmp\n1000\n1000\n" {
		t.Fatalf("exec: %v", r)
	}
	// --process and --detach with a pid file
	proc := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(proc, []byte(`{"args":["sleep","50"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}`), 0o644)
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	e.ok("exec", "--process", proc, "--detach", "--pid-file", pidFile, "ex")
	epid, _ := strconv.Atoi(readFile(t, pidFile))
	cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(epid) + "/cmdline")
	if !strings.HasPrefix(string(cmd), "sleep\x0050") {
		t.Fatalf("detached exec pid %d runs %q", epid, cmd)
	}
	r = e.ok("ps", "--format", "json", "ex")
	contains(t, r.stdout, strconv.Itoa(epid))
	// the exec'd process is in every cgroup of the init
	cgInit := readFile(t, "/proc/"+strconv.Itoa(pid)+"/cgroup")
	if cgExec := readFile(t, "/proc/"+strconv.Itoa(epid)+"/cgroup"); cgExec != cgInit || !strings.Contains(cgInit, "/berth/ex") {
		t.Fatalf("exec cgroups:\n%s\ninit cgroups:\n%s", cgExec, cgInit)
	}
	// a failing exec: exit 1, message, nothing started
	r = e.rt("exec", "ex", "/no/such")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("bad exec: %v", r)
	}
	// as a shim does: kill, reap what we adopted, delete
	e.ok("kill", "--all", "ex", "KILL")
	reap(t, epid)
	reap(t, pid)
	e.ok("delete", "ex")
	r = e.rt("exec", "ex", "true")
	if r.code != 1 {
		t.Fatalf("exec into deleted: %v", r)
	}
}

func TestExecStoppedAndPaused(t *testing.T) {
	e := newEnv(t)
	pid := e.create("es", e.bundle([]string{"sh", "-c", "sleep 100"}, nil))
	e.ok("start", "es")
	e.ok("pause", "es")
	if r := e.rt("exec", "es", "true"); r.code != 1 || !strings.Contains(r.stderr, "paused") {
		t.Fatalf("exec paused: %v", r)
	}
	e.ok("resume", "es")
	e.ok("kill", "es", "KILL")
	reap(t, pid)
	if r := e.rt("exec", "es", "true"); r.code != 1 || !strings.Contains(r.stderr, "stopped") {
		t.Fatalf("exec stopped: %v", r)
	}
	e.ok("delete", "es")
}

func TestExecTTY(t *testing.T) {
	e := newEnv(t)
	pid := e.create("etty", e.bundle([]string{"sleep", "100"}, nil))
	e.ok("start", "etty")
	sock, masters := consoleSocket(t)
	r := e.rt("exec", "--tty", "--console-socket", sock, "--detach", "etty", "sh", "-c", "tty; echo in-tty")
	if r.code != 0 {
		t.Fatal(r)
	}
	master := <-masters
	if master == nil {
		t.Fatal("no pty master")
	}
	defer master.Close()
	var out bytes.Buffer
	buf := make([]byte, 256)
	for !strings.Contains(out.String(), "in-tty") {
		n, err := master.Read(buf)
		if err != nil {
			break
		}
		out.Write(buf[:n])
	}
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "in-tty") {
		t.Fatalf("tty output %q", out.String())
	}
	e.ok("kill", "--all", "etty", "KILL")
	reap(t, pid)
	e.ok("delete", "etty")
}
