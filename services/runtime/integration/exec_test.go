package integration

import (
	"bytes"
	"encoding/json"
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

// The exec's init (C, see nsenter/execinit.c) applies what the create
// init does: the same process settings give the same results.
func TestExecProcessSettings(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sleep", "100"}, nil)
	// for HOME, when the process's env has none
	os.MkdirAll(filepath.Join(b, "rootfs", "etc"), 0o755)
	os.WriteFile(filepath.Join(b, "rootfs", "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nu:x:1234:1234::/home/u:/bin/sh\n"), 0o644)
	pid := e.create("eps", b)
	e.ok("start", "eps")
	defer func() {
		e.ok("delete", "--force", "eps")
		reap(t, pid)
	}()
	umask := uint32(0o027)
	adj := 123
	caps := []string{"CAP_CHOWN", "CAP_KILL"}
	p := specs.Process{
		Args: []string{"sh", "-c", `id; umask; ulimit -n; ulimit -Hn; grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs)' /proc/self/status; cat /proc/self/oom_score_adj; pwd; echo $FOO; echo $HOME`},
		Env:  []string{"PATH=/bin", "FOO=bar"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{2000, 2001}, Umask: &umask},
		Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps, Inheritable: caps,
			Ambient: []string{"CAP_KILL"}},
		Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}},
		NoNewPrivileges: true,
		OOMScoreAdj:     &adj,
	}
	proc := filepath.Join(t.TempDir(), "process.json")
	pj, _ := json.Marshal(p)
	os.WriteFile(proc, pj, 0o644)
	r := e.ok("exec", "--process", proc, "eps")
	for _, want := range []string{"uid=1000 gid=1001 groups=2000,2001", "0027", "\n321\n654\n",
		"CapInh:\t0000000000000021", "CapPrm:\t0000000000000020", "CapEff:\t0000000000000020", "CapBnd:\t0000000000000021", "CapAmb:\t0000000000000020",
		"NoNewPrivs:\t1", "\n123\n", "/tmp\nbar\n/\n"} {
		contains(t, r.stdout, want)
	}
	r = e.ok("exec", "--user", "1234:1234", "eps", "sh", "-c", "echo $HOME")
	if r.stdout != "/home/u\n" {
		t.Fatalf("HOME of uid 1234: %q", r.stdout)
	}
	// the failures, in one line each with the texts runc gives
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nosuchcommand"}, `exec: "nosuchcommand": executable file not found in $PATH`},
		{[]string{"/no/such"}, `exec: "/no/such": stat /no/such: no such file or directory`},
		{[]string{"/etc"}, `exec: "/etc": permission denied`},
		{[]string{"--cwd", "/nowhere", "eps", "true"}, `exec failed: unable to start container process: chdir to cwd ("/nowhere") set in config.json failed: no such file or directory`},
	} {
		args := append([]string{"exec"}, c.args...)
		if len(c.args) == 1 {
			args = []string{"exec", "eps", c.args[0]}
		}
		r := e.rt(args...)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: %v; want exit 1 and %q", args, r, c.want)
		}
	}
}

// An exec whose init fails at once must be reaped by the runtime: a zombie
// left in the container's pid namespace keeps its pid 1 from ever exiting,
// and delete --force then waits in vain. (The C init can fail before its
// parent has reported its pid; the constructor makes it wait.)
func TestExecFailuresLeaveNothing(t *testing.T) {
	e := newEnv(t)
	pid := e.create("efl", e.bundle([]string{"sleep", "100"}, nil))
	e.ok("start", "efl")
	for i := 0; i < 300; i++ { // without the fix: 2 zombies in one run of 200, none in another
		if r := e.rt("exec", "--cwd", "/nowhere", "efl", "true"); r.code != 1 {
			t.Fatalf("exec in a missing cwd: %v", r)
		}
	}
	ns, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		if l, _ := os.Readlink("/proc/" + d.Name() + "/ns/pid"); l == ns && d.Name() != strconv.Itoa(pid) {
			st, _ := os.ReadFile("/proc/" + d.Name() + "/stat")
			t.Errorf("left in the container's pid namespace: %s", st)
		}
	}
	e.ok("delete", "--force", "efl")
	reap(t, pid)
}
