package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e9) }

func TestRunOutputAndExitCodes(t *testing.T) {
	s := shared(t)
	cases := []struct {
		name string
		args []string
		out  string
		code int
	}{
		{"echo", []string{"run", "--rm", "busybox", "echo", "hi"}, "hi", 0},
		{"exit", []string{"run", "--rm", "busybox", "sh", "-c", "exit 42"}, "", 42},
		{"no-binary", []string{"run", "--rm", "busybox", "/no/such/binary"}, "", 127},
		{"cmd-from-image", []string{"run", "--rm", "busybox", "sh", "-c", "echo $HOME:$PATH"}, "/root:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 0},
		{"user-name", []string{"run", "--rm", "--user", "nobody", "busybox", "id", "-u"}, "65534", 0},
		{"tty-off", []string{"run", "--rm", "busybox", "sh", "-c", "test -t 1 || echo notty"}, "notty", 0},
		{"label", []string{"run", "--rm", "--label", "a=b", "busybox", "true"}, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := s.Docker(c.args...)
			if code != c.code || out != c.out {
				t.Fatalf("got exit %d out %q (stderr %q), want exit %d out %q", code, out, errOut, c.code, c.out)
			}
		})
	}
}

func TestNoSuchBinaryMessage(t *testing.T) {
	s := shared(t)
	_, errOut, code := s.Docker("run", "--rm", "busybox", "/no/such/binary")
	if code != 127 || !strings.Contains(errOut, "no such file or directory") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	// as with Docker: the message once, from the daemon, none of it in the
	// container's log, and the container left created with its exit code
	name := uniq("nobin")
	_, errOut, _ = s.Docker("run", "--name", name, "busybox", "/no/such/binary")
	defer s.Docker("rm", "-f", name)
	if strings.Contains(errOut, "berth-runtime:") {
		t.Errorf("the runtime's own error reached the attached client: %q", errOut)
	}
	if out, errOut, _ := s.Docker("logs", name); out != "" || errOut != "" {
		t.Errorf("docker logs of a container that never ran: %q %q", out, errOut)
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.FinishedAt}}", name); st != "created 127 0001-01-01T00:00:00Z" {
		t.Errorf("state after the failed start: %q, want created 127 and no finish time", st)
	}
}

func TestLifecycleAndInspect(t *testing.T) {
	s := shared(t)
	name := uniq("life")
	id := s.MustDocker("create", "--name", name, "-e", "X=1", "-w", "/tmp", "--label", "team=core", "busybox", "sh", "-c", "echo out; echo err >&2; sleep 300")
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a 64-hex ID", id)
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", name); st != "created" {
		t.Fatalf("status after create %q", st)
	}
	if got := s.MustDocker("inspect", "-f", "{{.Name}} {{.Config.WorkingDir}} {{index .Config.Labels \"team\"}} {{.Path}}", id[:12]); got != "/"+name+" /tmp core sh" {
		t.Fatalf("inspect: %q", got)
	}
	s.MustDocker("start", name)
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.Running}}", name); st != "running true" {
		t.Fatalf("status after start %q", st)
	}
	if pid := s.MustDocker("inspect", "-f", "{{.State.Pid}}", name); pid == "0" {
		t.Fatal("running container has pid 0")
	}
	// start of a running container is not an error for the CLI (304).
	s.MustDocker("start", name)
	if got := s.MustDocker("ps", "--filter", "label=team=core", "--filter", "name="+name, "--format", "{{.Names}} {{.Image}}"); got != name+" busybox" {
		t.Fatalf("ps: %q", got)
	}
	waitLog(t, s, name, "out")
	// stream selection (the CLI always asks for both): stderr only is one frame of stream 2
	if st, body := call(t, s, "GET", "/containers/"+name+"/logs?stderr=1", ""); st != 200 || body != "\x02\x00\x00\x00\x00\x00\x00\x04err\n" {
		t.Fatalf("logs stderr only: %d %q", st, body)
	}
	if st, msg := call(t, s, "GET", "/containers/"+name+"/logs", ""); st != 400 || !strings.Contains(msg, "You must choose at least one stream") {
		t.Fatalf("logs without streams: %d %q", st, msg)
	}
	if out, _, _ := s.Docker("logs", "--timestamps", name); !strings.Contains(out, "Z out") && !strings.Contains(out, "Z err") {
		t.Fatalf("logs --timestamps: %q", out)
	}
	s.MustDocker("restart", "-t", "1", name)
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", name); st != "running" {
		t.Fatalf("status after restart %q", st)
	}
	s.MustDocker("kill", "-s", "TERM", name) // PID 1 without a handler ignores TERM
	s.MustDocker("kill", name)
	if code := s.MustDocker("wait", name); code != "137" {
		t.Fatalf("wait after kill: %q", code)
	}
	if _, errOut, code := s.Docker("kill", name); code == 0 || !strings.Contains(errOut, "is not running") {
		t.Fatalf("kill of stopped: exit %d %q", code, errOut)
	}
	newName := name + "-renamed"
	s.MustDocker("rename", name, newName)
	if _, _, code := s.Docker("inspect", name); code == 0 {
		t.Fatal("old name still resolves after rename")
	}
	s.MustDocker("rm", newName)
	if _, errOut, code := s.Docker("inspect", newName); code != 1 || !strings.Contains(errOut, "No such") {
		t.Fatalf("inspect after rm: exit %d %q", code, errOut)
	}
}

func waitLog(t *testing.T, s interface {
	Docker(...string) (string, string, int)
}, name, want string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if out, _, _ := s.Docker("logs", name); strings.Contains(out, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("log of %s never showed %q", name, want)
}

func TestLogsTailFollow(t *testing.T) {
	s := shared(t)
	name := uniq("logs")
	s.MustDocker("run", "-d", "--name", name, "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 3; echo last")
	defer s.Docker("rm", "-f", name)
	// --tail counts the lines logged when the request comes: wait for the
	// first five (a loaded machine may start the container late)
	for i := 0; i < 100 && !strings.Contains(s.MustDocker("logs", name), "line5"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	out := s.MustDocker("logs", "--follow", "--tail", "2", name)
	if out != "line4\nline5\nlast" {
		t.Fatalf("logs --follow --tail 2: %q", out)
	}
	if out := s.MustDocker("logs", "--tail", "0", name); out != "" {
		t.Fatalf("tail 0: %q", out)
	}
	if out := s.MustDocker("logs", "--since", "2000-01-01T00:00:00Z", "--until", "2000-01-02T00:00:00Z", name); out != "" {
		t.Fatalf("until in the past: %q", out)
	}
}

func TestWaitConditions(t *testing.T) {
	s := shared(t)
	name := uniq("wait")
	s.MustDocker("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; exit 5")
	if code := s.MustDocker("wait", name); code != "5" {
		t.Fatalf("wait: %q", code)
	}
	// not-running on an exited container answers at once.
	st, body := call(t, s, "POST", "/containers/"+name+"/wait?condition=not-running", "")
	if st != 200 || !strings.Contains(body, `"StatusCode":5`) {
		t.Fatalf("wait not-running: %d %s", st, body)
	}
	// removed: answers once the container is gone.
	done := make(chan string, 1)
	go func() { _, b := call(t, s, "POST", "/containers/"+name+"/wait?condition=removed", ""); done <- b }()
	time.Sleep(200 * time.Millisecond)
	s.MustDocker("rm", name)
	select {
	case b := <-done:
		if !strings.Contains(b, "StatusCode") {
			t.Fatalf("wait removed: %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait?condition=removed did not return after rm")
	}
	if st, _ := call(t, s, "POST", "/containers/"+name+"/wait?condition=bogus", ""); st != 400 {
		t.Fatalf("bad condition: %d", st)
	}
	// next-exit on a created container: answers with the exit of the run
	// that comes next
	next := s.MustDocker("create", "busybox", "sh", "-c", "sleep 0.3; exit 7")
	defer s.Docker("rm", "-f", next)
	go func() { _, b := call(t, s, "POST", "/containers/"+next+"/wait?condition=next-exit", ""); done <- b }()
	time.Sleep(200 * time.Millisecond)
	select {
	case b := <-done:
		t.Fatalf("wait next-exit answered before the container ran: %s", b)
	default:
	}
	s.MustDocker("start", next)
	select {
	case b := <-done:
		if !strings.Contains(b, `"StatusCode":7`) {
			t.Fatalf("wait next-exit: %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait?condition=next-exit did not return after the run")
	}
}

func TestAttachStdin(t *testing.T) {
	s := shared(t)
	out, errOut, code := s.DockerIn([]byte("one\ntwo\n"), "run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done >&2")
	if code != 0 || out != "one\ntwo" || errOut != "done" {
		t.Fatalf("exit %d out %q err %q", code, out, errOut)
	}
	name := uniq("att")
	s.MustDocker("create", "-i", "--name", name, "busybox", "sh", "-c", "read x; echo got:$x")
	out, errOut, code = s.DockerIn([]byte("hello\n"), "start", "-ai", name)
	if code != 0 || out != "got:hello" {
		t.Fatalf("start -ai: exit %d out %q err %q", code, out, errOut)
	}
	s.MustDocker("rm", name)
}

func TestNameConflictAndInvalidNames(t *testing.T) {
	s := shared(t)
	name := uniq("dup")
	id := s.MustDocker("create", "--name", name, "busybox", "true")
	defer s.Docker("rm", "-f", name)
	_, errOut, code := s.Docker("run", "-d", "--name", name, "busybox", "true")
	want := fmt.Sprintf(`Conflict. The container name "/%s" is already in use by container "%s"`, name, id)
	if code != 125 || !strings.Contains(errOut, want) {
		t.Fatalf("exit %d %q", code, errOut)
	}
	for _, bad := range []string{"-x", "a/b", "../x", "a b", "é"} {
		st, msg := call(t, s, "POST", "/containers/create?name="+url.QueryEscape(bad), `{"Image":"busybox"}`)
		if st != 400 || !strings.Contains(msg, "Invalid container name") {
			t.Errorf("name %q: %d %q", bad, st, msg)
		}
	}
	other := uniq("other")
	s.MustDocker("create", "--name", other, "busybox", "true")
	defer s.Docker("rm", "-f", other)
	if _, errOut, code := s.Docker("rename", other, name); code == 0 || !strings.Contains(errOut, "already in use") {
		t.Fatalf("rename onto a used name: %d %q", code, errOut)
	}
}

func TestRemoveRunningAndForce(t *testing.T) {
	s := shared(t)
	name := uniq("rmf")
	s.MustDocker("run", "-d", "--name", name, "busybox", "sleep", "300")
	_, errOut, code := s.Docker("rm", name)
	if code != 1 || !strings.Contains(errOut, "container is running: stop the container before removing or force remove") {
		t.Fatalf("rm running: %d %q", code, errOut)
	}
	s.MustDocker("rm", "-f", name)
	if out := s.MustDocker("ps", "-a", "-q", "--filter", "name="+name); out != "" {
		t.Fatalf("still listed: %q", out)
	}
}

func TestPsFilters(t *testing.T) {
	s := shared(t)
	a, b := uniq("psa"), uniq("psb")
	ida := s.MustDocker("run", "-d", "--name", a, "--label", "role=web", "busybox", "sleep", "300")
	s.MustDocker("create", "--name", b, "--label", "role=db", "busybox", "true")
	defer s.Docker("rm", "-f", a, b)
	check := func(want string, args ...string) {
		t.Helper()
		got := s.MustDocker(append([]string{"ps", "--format", "{{.Names}}"}, args...)...)
		if got != want {
			t.Errorf("ps %v: got %q want %q", args, got, want)
		}
	}
	check(a, "--filter", "name="+a)
	check("", "--filter", "name="+b)
	check(b, "-a", "--filter", "name="+b)
	check(a, "-a", "--filter", "label=role=web", "--filter", "name=ps")
	check(b, "-a", "--filter", "status=created", "--filter", "name="+b)
	check(a, "--filter", "id="+ida[:12])
	check(a, "--filter", "ancestor=busybox", "--filter", "name="+a)
	if st, msg := call(t, s, "GET", `/containers/json?filters={"bogus":["x"]}`, ""); st != 400 || !strings.Contains(msg, "invalid filter") {
		t.Errorf("bad filter: %d %q", st, msg)
	}
}

func TestPrune(t *testing.T) {
	s := shared(t)
	name := uniq("prune")
	s.MustDocker("run", "--name", name, "--label", "prune=me", "busybox", "true")
	out := s.MustDocker("container", "prune", "-f", "--filter", "label=prune=me")
	if !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("prune: %q", out)
	}
	if _, _, code := s.Docker("inspect", name); code == 0 {
		t.Fatal("pruned container still there")
	}
}

func TestEventsStream(t *testing.T) {
	s := shared(t)
	name := uniq("ev")
	since := time.Now().Unix()
	s.Docker("run", "--name", name, "busybox", "sh", "-c", "exit 3")
	s.MustDocker("rename", name, name+"x")
	s.MustDocker("rm", name+"x")
	until := time.Now().Unix() + 1
	out := s.MustDocker("events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(until),
		"--filter", "type=container", "--format", "{{json .}}")
	var actions []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m struct {
			Action string
			Actor  struct{ Attributes map[string]string }
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		n := m.Actor.Attributes["name"]
		if n != name && n != name+"x" {
			continue
		}
		actions = append(actions, m.Action)
		if m.Action == "die" && m.Actor.Attributes["exitCode"] != "3" {
			t.Errorf("die exitCode %q", m.Actor.Attributes["exitCode"])
		}
	}
	got := strings.Join(actions, ",")
	for _, want := range []string{"create", "attach", "start", "die", "rename", "destroy"} {
		if want == "attach" {
			continue // Docker emits attach; berth may not
		}
		if !strings.Contains(got, want) {
			t.Errorf("events %q lack %q", got, want)
		}
	}
	// a live subscriber sees an event as it happens.
	cmd := exec.Command("docker", "events", "--filter", "event=create", "--format", "{{.Actor.Attributes.name}}")
	cmd.Env = s.Env()
	pipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	live := uniq("live")
	s.MustDocker("create", "--name", live, "busybox", "true")
	defer s.Docker("rm", live)
	line := make(chan string, 1)
	go func() { r := bufio.NewReader(pipe); l, _ := r.ReadString('\n'); line <- strings.TrimSpace(l) }()
	select {
	case l := <-line:
		if l != live {
			t.Fatalf("live event for %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no live create event")
	}
}

// TestWorkdirCreated: a working directory the image lacks is created, as
// Docker does, inside the container's root even through an absolute
// symlink in it; a path that is a file is refused with Docker's message.
func TestWorkdirCreated(t *testing.T) {
	s := shared(t)
	if out := s.MustDocker("run", "--rm", "-w", "/new/dir", "busybox", "pwd"); out != "/new/dir" {
		t.Fatalf("pwd %q", out)
	}
	_, errOut, code := s.Docker("run", "--rm", "-w", "/bin/busybox", "busybox", "pwd")
	if code != 125 || !strings.Contains(errOut, "Cannot mkdir: /bin/busybox is not a directory") {
		t.Fatalf("workdir on a file: exit %d, %q", code, errOut)
	}

	host := t.TempDir()
	id := s.MustDocker("create", "-w", "/esc/sub", "busybox", "true")
	defer s.Docker("rm", "-f", id)
	upper := filepath.Join(s.Root, "containers", id, "upper")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(upper); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Symlink(host, filepath.Join(upper, "esc")); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := s.Docker("start", "-a", id); code != 0 {
		t.Fatalf("start: exit %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(host, "sub")); err == nil {
		t.Fatal("the working directory was created outside the container, through a symlink")
	}
}

// TestEventsStopKillLabelFilter: docker stop emits kill (signal 15, then 9
// at the timeout), die and stop, as Docker's does; a label filter keeps only the labelled
// container's events.
func TestEventsStopKillLabelFilter(t *testing.T) {
	s := shared(t)
	label := uniq("evl")
	since := time.Now().Unix()
	a := s.MustDocker("run", "-d", "--label", "evtest="+label, "busybox", "sleep", "300")
	b := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	s.MustDocker("stop", "-t", "1", a)
	s.MustDocker("kill", b)
	s.MustDocker("rm", a, b)
	until := time.Now().Unix() + 1
	out := s.MustDocker("events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(until),
		"--filter", "label=evtest="+label, "--format", `{{.Actor.ID}} {{.Action}} {{index .Actor.Attributes "signal"}}`)
	var got []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if f[0] != a {
			t.Errorf("label filter let through %q", line)
			continue
		}
		got = append(got, strings.Join(f[1:], ":"))
	}
	// sleep as pid 1 ignores SIGTERM: SIGKILL after the timeout
	if want := "create,start,kill:15,kill:9,die,stop,destroy"; strings.Join(got, ",") != want {
		t.Errorf("events %q, want %q", strings.Join(got, ","), want)
	}
}
