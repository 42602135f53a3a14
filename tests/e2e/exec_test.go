package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

// runSleeper starts a container that runs until removed.
func runSleeper(t *testing.T, s *stack.Stack, extra ...string) string {
	t.Helper()
	name := uniq("exec")
	args := append(append([]string{"run", "-d", "--name", name}, extra...), "busybox", "sleep", "3000")
	s.MustDocker(args...)
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	return name
}

func TestExecOutputAndExitCodes(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	cases := []struct {
		name      string
		args      []string
		out, eout string
		code      int
	}{
		{"echo", []string{"exec", name, "echo", "hi"}, "hi", "", 0},
		{"streams-and-code", []string{"exec", name, "sh", "-c", "echo out; echo err >&2; exit 3"}, "out", "err", 3},
		{"env", []string{"exec", "-e", "A=b", "-e", "HOSTNAME=h2", name, "sh", "-c", "echo $A $HOSTNAME"}, "b h2", "", 0},
		{"workdir", []string{"exec", "-w", "/tmp", name, "pwd"}, "/tmp", "", 0},
		{"workdir-default", []string{"exec", name, "pwd"}, "/", "", 0},
		{"user", []string{"exec", "-u", "nobody", name, "sh", "-c", "id -u; echo $HOME"}, "65534\n/nonexistent", "", 0},
		{"user-uid-gid", []string{"exec", "-u", "1234:5678", name, "sh", "-c", "echo $(id -u):$(id -g)"}, "1234:5678", "", 0},
		{"no-tty", []string{"exec", name, "sh", "-c", "test -t 1 || echo notty"}, "notty", "", 0},
		{"tty-term", []string{"exec", "-t", name, "sh", "-c", "test -t 1 && echo $TERM"}, "xterm\r", "", 0},
		{"killed", []string{"exec", name, "sh", "-c", "kill -9 $$"}, "", "", 137},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, eout, code := s.Docker(c.args...)
			if code != c.code || out != c.out || eout != c.eout {
				t.Fatalf("docker %s: exit %d stdout %q stderr %q; want exit %d stdout %q stderr %q",
					strings.Join(c.args, " "), code, out, eout, c.code, c.out, c.eout)
			}
		})
	}
}

func TestExecCommandNotFound(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	// dockerd's texts (20.10 with runc 1.1, as measured), and its exit
	// code 126 for every exec that could not start (moby#45795)
	for _, c := range []struct{ args, msg string }{
		{"nosuchcommand", `OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcommand": executable file not found in $PATH: unknown`},
		{"/no/such/file", `OCI runtime exec failed: exec failed: unable to start container process: exec: "/no/such/file": stat /no/such/file: no such file or directory: unknown`},
		{"/etc/passwd", `OCI runtime exec failed: exec failed: unable to start container process: exec: "/etc/passwd": permission denied: unknown`},
		{"-w /nowhere true", `OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd ("/nowhere") set in config.json failed: no such file or directory: unknown`},
	} {
		f := strings.Fields(c.args)
		args := append([]string{"exec"}, f[:len(f)-1]...)
		args = append(args, name, f[len(f)-1])
		out, eout, code := s.Docker(args...)
		// the stream's line ends in "\r\n", as dockerd writes it
		if code != 126 || strings.TrimSuffix(out, "\r") != c.msg {
			t.Errorf("docker %v: exit %d stdout %q stderr %q; want exit 126 and %q", args, code, out, eout, c.msg)
		}
	}
}

func TestExecStdinAndDetach(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	// -i: the client's stdin, closed at its end (cat exits)
	out, eout, code := s.DockerIn([]byte("line one\nline two\n"), "exec", "-i", name, "cat")
	if code != 0 || out != "line one\nline two" {
		t.Fatalf("exec -i cat: exit %d out %q err %q", code, out, eout)
	}
	// without -i the process's stdin is empty
	out, _, _ = s.DockerIn([]byte("ignored\n"), "exec", name, "cat")
	if out != "" {
		t.Fatalf("exec without -i read stdin: %q", out)
	}
	// -d: returns at once, the process goes on
	start := time.Now()
	s.MustDocker("exec", "-d", name, "sh", "-c", "sleep 1; echo done > /tmp/detached")
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("exec -d took %s: it waited for the process", d)
	}
	if out, _, _ := s.Docker("exec", name, "cat", "/tmp/detached"); out != "" {
		t.Fatalf("the detached process finished at once: %q", out)
	}
	waitFor(t, 10*time.Second, "the detached exec's file", func() bool {
		out, _, _ := s.Docker("exec", name, "cat", "/tmp/detached")
		return out == "done"
	})
}

func TestExecJoinsNamespacesAndCgroup(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	initPid := s.MustDocker("inspect", "-f", "{{.State.Pid}}", name)
	id := execCreate(t, s, name, `{"Cmd":["sleep","30"]}`)
	if code, msg := call(t, s, "POST", "/exec/"+id+"/start", `{"Detach":true}`); code != 200 {
		t.Fatalf("detached start: %d %s", code, msg)
	}
	e := execInspect(t, s, id)
	if !e.Running || e.Pid <= 0 {
		t.Fatalf("exec inspect after a detached start: %+v", e)
	}
	for _, ns := range []string{"pid", "mnt", "net", "ipc", "uts", "cgroup"} {
		want, err1 := os.Readlink(fmt.Sprintf("/proc/%s/ns/%s", initPid, ns))
		got, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", e.Pid, ns))
		if err1 != nil || err2 != nil || got != want {
			t.Errorf("%s namespace: exec %q (%v), container %q (%v)", ns, got, err2, want, err1)
		}
	}
	want, err1 := os.ReadFile(fmt.Sprintf("/proc/%s/cgroup", initPid))
	got, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", e.Pid))
	if err1 != nil || err2 != nil || string(got) != string(want) {
		t.Errorf("cgroups: exec\n%s(%v)\ncontainer\n%s(%v)", got, err2, want, err1)
	}
	if !strings.Contains(string(got), "/berth/") {
		t.Errorf("the exec is not in the container's berth cgroup:\n%s", got)
	}
	// the container's process list shows it
	if out := s.MustDocker("exec", name, "ps", "-o", "comm"); !strings.Contains(out, "sleep") || strings.Count(out, "sleep") < 2 {
		t.Errorf("ps in the container does not show the exec's sleep:\n%s", out)
	}
}

func TestExecPrivileged(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	capEff := func(args ...string) string {
		out := s.MustDocker(append(append([]string{"exec"}, args...), name, "grep", "CapEff", "/proc/self/status")...)
		return strings.TrimSpace(strings.TrimPrefix(out, "CapEff:"))
	}
	plain, priv := capEff(), capEff("--privileged")
	if plain != "00000000a80425fb" {
		t.Errorf("plain exec CapEff %s, want Docker's default set 00000000a80425fb", plain)
	}
	// every capability berth itself may give (this host's bounding set)
	status, _ := os.ReadFile("/proc/self/status")
	var bnd string
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			bnd = strings.TrimSpace(v)
		}
	}
	if priv != bnd {
		t.Errorf("privileged exec CapEff %s, want every capability of the host's bounding set %s", priv, bnd)
	}
}

func TestExecInspectAndErrors(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	ctrID := s.MustDocker("inspect", "-f", "{{.Id}}", name)
	id := execCreate(t, s, name, `{"Cmd":["sh","-c","exit 5"],"AttachStdout":true,"User":"nobody"}`)
	e := execInspect(t, s, id)
	if e.Running || e.ExitCode != nil || e.Pid != 0 || e.ContainerID != ctrID || e.ProcessConfig.Entrypoint != "sh" ||
		strings.Join(e.ProcessConfig.Arguments, " ") != "-c exit 5" || e.ProcessConfig.User != "nobody" || !e.OpenStdout || e.OpenStdin {
		t.Fatalf("exec inspect before start: %+v", e)
	}
	if code, msg := call(t, s, "POST", "/exec/"+id+"/start", `{"Detach":true}`); code != 200 {
		t.Fatalf("start: %d %s", code, msg)
	}
	waitFor(t, 10*time.Second, "the exec's exit code", func() bool {
		e = execInspect(t, s, id)
		return e.ExitCode != nil
	})
	if e.Running || *e.ExitCode != 5 || e.Pid <= 0 {
		t.Fatalf("exec inspect after exit: %+v", e)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		msg                string
	}{
		{"POST", "/exec/" + id + "/start", `{"Detach":true}`, 409, "Error: Exec command " + id + " has already run"},
		{"GET", "/exec/nosuchexec/json", "", 404, "No such exec instance: nosuchexec"},
		{"POST", "/exec/nosuchexec/start", `{"Detach":true}`, 404, "No such exec instance: nosuchexec"},
		{"POST", "/exec/nosuchexec/start", `{}`, 404, "No such exec instance: nosuchexec"},
		{"POST", "/exec/nosuchexec/resize?h=10&w=10", "", 404, "No such exec instance: nosuchexec"},
		{"POST", "/containers/" + name + "/exec", `{"Cmd":[]}`, 400, "No exec command specified"},
		{"POST", "/containers/nosuchcontainer/exec", `{"Cmd":["true"]}`, 404, "No such container: nosuchcontainer"},
		{"POST", "/containers/" + name + "/exec", `{"Cmd":["true"],"DetachKeys":"ctrl-"}`, 400, "Invalid detach keys (ctrl-) provided"},
	} {
		code, msg := call(t, s, c.method, c.path, c.body)
		if code != c.status || msg != c.msg {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, code, msg, c.status, c.msg)
		}
	}
}

func TestExecStoppedContainer(t *testing.T) {
	s := shared(t)
	name := uniq("execstop")
	s.MustDocker("run", "--name", name, "busybox", "true")
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	id := s.MustDocker("inspect", "-f", "{{.Id}}", name)
	_, eout, code := s.Docker("exec", name, "true")
	if want := "Error response from daemon: container " + id + " is not running"; code != 1 || eout != want {
		t.Fatalf("exec into a stopped container: exit %d stderr %q, want 1 %q", code, eout, want)
	}
	if code, msg := call(t, s, "POST", "/containers/"+name+"/exec", `{"Cmd":["true"]}`); code != 409 {
		t.Fatalf("API: %d %s, want 409", code, msg)
	}
	// an exec created while it ran cannot start once it stopped
	name2 := runSleeper(t, s)
	eid := execCreate(t, s, name2, `{"Cmd":["true"]}`)
	s.MustDocker("kill", name2)
	if code, msg := call(t, s, "POST", "/exec/"+eid+"/start", `{"Detach":true}`); code != 409 || !strings.Contains(msg, "is not running") {
		t.Fatalf("start of an exec whose container stopped: %d %q", code, msg)
	}
}

func TestExecPausedContainer(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	id := s.MustDocker("inspect", "-f", "{{.Id}}", name)
	wantCode := 1 // refused at the exec's create, as by dockerd
	pause, resume := []string{"pause", name}, []string{"unpause", name}
	if _, eout, code := s.Docker(pause...); code != 0 {
		if !strings.Contains(eout, "page not found") {
			t.Fatalf("docker pause: %s", eout)
		}
		// docker pause is not there yet: freeze the container through the
		// runtime, which the shim finds out at the exec's start
		rt := filepath.Join(s.Bin, "berth-runtime")
		root := filepath.Join(s.ExecRoot, "runtime")
		s.MustDocker("exec", name, "true") // the container's init has settled
		var out []byte
		var err error
		for try := 0; try < 3; try++ { // a busy machine may leave the freezer FREEZING
			if out, err = exec.Command(rt, "--root", root, "pause", id).CombinedOutput(); err == nil {
				break
			}
			exec.Command(rt, "--root", root, "resume", id).Run()
		}
		if err != nil {
			t.Fatalf("runtime pause: %v %s", err, out)
		}
		t.Log("docker pause is not implemented: the container is paused with berth-runtime pause")
		defer exec.Command(rt, "--root", root, "resume", id).Run()
		// the supervisor's record does not know: the shim refuses at the
		// start, the error is in the stream and the exit code 126
		name, wantCode = id, 126
	} else {
		defer s.Docker(resume...)
	}
	out, eout, code := s.Docker("exec", name, "true")
	if want := "container " + name + " is paused, unpause the container before exec"; code != wantCode || !strings.Contains(out+eout, want) {
		t.Fatalf("exec into a paused container: exit %d stdout %q stderr %q, want %d and %q", code, out, eout, wantCode, want)
	}
}

func TestExecEvents(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	since := time.Now().Add(-time.Second).Format(time.RFC3339Nano)
	s.Docker("exec", name, "sh", "-c", "exit 2")
	s.Docker("exec", name, "nosuchcommand")
	until := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)
	out := s.MustDocker("events", "--since", since, "--until", until, "--filter", "container="+name,
		"--format", `{{.Action}}|{{index .Actor.Attributes "exitCode"}}|{{index .Actor.Attributes "name"}}|{{len (index .Actor.Attributes "execID")}}`)
	want := strings.Join([]string{
		"exec_create: sh -c exit 2||" + name + "|64",
		"exec_start: sh -c exit 2||" + name + "|64",
		"exec_die|2|" + name + "|64",
		"exec_create: nosuchcommand ||" + name + "|64",
		"exec_start: nosuchcommand ||" + name + "|64",
	}, "\n")
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "exec_") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != want {
		t.Fatalf("exec events:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

func TestExecTTYInteractive(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	p := s.DockerPty("exec", "-it", name, "sh")
	p.Expect("# ", 10*time.Second)
	p.Send("tty; stty size; echo TERM=$TERM\r")
	p.Expect("/dev/pts/", 5*time.Second)
	p.Expect("24 80", 5*time.Second)
	p.Expect("TERM=xterm", 5*time.Second)
	// the window changes: the CLI resizes the exec's terminal
	p.Resize(33, 101)
	waitFor(t, 5*time.Second, "the resized terminal", func() bool {
		p.Send("stty size\r")
		time.Sleep(200 * time.Millisecond)
		return strings.Contains(p.Output(), "33 101")
	})
	p.Send("exit 7\r")
	if code := p.Wait(10 * time.Second); code != 7 {
		t.Fatalf("docker exec -it exited %d, want 7; the terminal shows:\n%s", code, p.Output())
	}
}

func TestExecTTYDetachKeys(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s)
	for _, c := range []struct {
		args []string
		keys string
	}{
		{[]string{"exec", "-it", name, "sh"}, "\x10\x11"},                           // ctrl-p ctrl-q
		{[]string{"exec", "-it", "--detach-keys", "ctrl-x,x", name, "sh"}, "\x18x"}, // custom
	} {
		p := s.DockerPty(c.args...)
		p.Expect("# ", 10*time.Second)
		p.Send("echo marker-$((6*7))\r")
		p.Expect("marker-42", 5*time.Second)
		p.Send(c.keys)
		// the docker CLI's own answer to a detached exec
		if code := p.Wait(10 * time.Second); code != 1 || !strings.Contains(p.Output(), "read escape sequence") {
			t.Fatalf("%v: exit %d, terminal:\n%s", c.args, code, p.Output())
		}
	}
	// the shells are left running in the container, as with Docker
	if out := s.MustDocker("exec", name, "ps", "-o", "comm"); strings.Count(out, "sh") < 2 {
		t.Fatalf("the detached shells are gone:\n%s", out)
	}
}

// execCreate creates an exec through the API and returns its ID.
func execCreate(t *testing.T, s *stack.Stack, ctr, body string) string {
	t.Helper()
	code, msg := call(t, s, "POST", "/containers/"+ctr+"/exec", body)
	var r struct{ Id string }
	if code != 201 || json.Unmarshal([]byte(msg), &r) != nil || len(r.Id) != 64 {
		t.Fatalf("exec create: %d %s", code, msg)
	}
	return r.Id
}

type execInfo struct {
	ID            string
	Running       bool
	ExitCode      *int
	Pid           int
	ContainerID   string
	OpenStdin     bool
	OpenStdout    bool
	ProcessConfig struct {
		Tty        bool     `json:"tty"`
		Entrypoint string   `json:"entrypoint"`
		Arguments  []string `json:"arguments"`
		User       string   `json:"user"`
	}
}

func execInspect(t *testing.T, s *stack.Stack, id string) execInfo {
	t.Helper()
	code, msg := call(t, s, "GET", "/exec/"+id+"/json", "")
	var e execInfo
	if code != 200 || json.Unmarshal([]byte(msg), &e) != nil {
		t.Fatalf("exec inspect: %d %s", code, msg)
	}
	return e
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not in %s", what, d)
}

// An exec inherits the container's user, environment and working directory
// unless it says otherwise.
func TestExecInheritsContainerSettings(t *testing.T) {
	s := shared(t)
	name := runSleeper(t, s, "-u", "nobody", "-e", "FOO=bar", "-w", "/tmp")
	if out := s.MustDocker("exec", name, "sh", "-c", "id -u; echo $FOO; pwd"); out != "65534\nbar\n/tmp" {
		t.Fatalf("exec in a -u nobody -e FOO=bar -w /tmp container: %q", out)
	}
	if out := s.MustDocker("exec", "-u", "root", "-e", "FOO=baz", "-w", "/", name, "sh", "-c", "id -u; echo $FOO; pwd; echo $HOME"); out != "0\nbaz\n/\n/root" {
		t.Fatalf("exec overriding user, env and workdir: %q", out)
	}
}
