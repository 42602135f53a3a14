package e2e

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestPauseUnpause(t *testing.T) {
	s := shared(t)
	name := uniq("pause")
	since := time.Now().Unix()
	// a counter printed every 0.1 s: it stops while the container is frozen
	id := s.MustDocker("run", "-d", "--name", name, "busybox", "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done")
	defer s.Docker("rm", "-f", name)
	waitLog(t, s, name, "3")
	s.MustDocker("pause", name)
	if got := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", name); got != "paused true true" {
		t.Fatalf("inspect after pause: %q", got)
	}
	if got := s.MustDocker("ps", "--filter", "name="+name, "--format", "{{.Status}}"); !strings.HasSuffix(got, "(Paused)") {
		t.Errorf("ps status %q", got)
	}
	if got := s.MustDocker("ps", "-q", "--no-trunc", "--filter", "status=paused", "--filter", "name="+name); got != id {
		t.Errorf("ps --filter status=paused: %q", got)
	}
	if st := hostCgroupOrSkip(t, id, "freezer", "freezer.state"); st != "" && st != "FROZEN" {
		t.Errorf("freezer.state %s", st)
	}
	n1 := len(strings.Fields(s.MustDocker("logs", name)))
	time.Sleep(700 * time.Millisecond)
	if n2 := len(strings.Fields(s.MustDocker("logs", name))); n2 != n1 {
		t.Errorf("a paused container kept printing: %d then %d lines", n1, n2)
	}
	for _, c := range []struct{ verb, msg string }{
		{"pause", "Container " + id + " is already paused"},
		{"start", ""},
	} {
		_, errOut, code := s.Docker(c.verb, name)
		if c.msg != "" && (code != 1 || !strings.Contains(errOut, c.msg)) {
			t.Errorf("%s of a paused container: exit %d %q", c.verb, code, errOut)
		}
	}
	s.MustDocker("unpause", name)
	if got := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name); got != "running false" {
		t.Errorf("inspect after unpause: %q", got)
	}
	time.Sleep(500 * time.Millisecond)
	if n3 := len(strings.Fields(s.MustDocker("logs", name))); n3 <= n1 {
		t.Errorf("no output after unpause: %d lines, %d before", n3, n1)
	}
	if _, errOut, code := s.Docker("unpause", name); code != 1 || !strings.Contains(errOut, "Container "+id+" is not paused") {
		t.Errorf("unpause of a running container: exit %d %q", code, errOut)
	}
	// stop of a paused container works as Docker's: TERM (ignored by
	// this PID 1), the timeout, KILL
	s.MustDocker("pause", name)
	t0 := time.Now()
	s.MustDocker("stop", "-t", "1", name)
	if d := time.Since(t0); d > 8*time.Second {
		t.Errorf("stop of a paused container took %v", d)
	}
	if got := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Paused}}", name); got != "exited 137 false" {
		t.Errorf("after stop: %q", got)
	}
	if _, errOut, code := s.Docker("pause", name); code != 1 || !strings.Contains(errOut, "Container "+id+" is not running") {
		t.Errorf("pause of a stopped container: exit %d %q", code, errOut)
	}
	got := strings.Join(actions(t, s, name, since), " ")
	for _, want := range []string{"pause unpause pause", "die stop"} {
		if !strings.Contains(got, want) {
			t.Errorf("events %q lack %q", got, want)
		}
	}
	// kill and rm -f of a paused container
	k := uniq("pausekill")
	s.MustDocker("run", "-d", "--name", k, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", k)
	s.MustDocker("pause", k)
	s.MustDocker("kill", k)
	if got := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", k); got != "exited 137" {
		t.Errorf("kill of a paused container: %q", got)
	}
	s.MustDocker("start", k)
	s.MustDocker("pause", k)
	s.MustDocker("rm", "-f", k)
	if _, _, code := s.Docker("inspect", k); code != 1 {
		t.Error("rm -f of a paused container left it")
	}
}

// hostCgroupOrSkip reads a v1 cgroup file, "" when the controller is not
// mounted so.
func hostCgroupOrSkip(t *testing.T, id, ctrl, file string) string {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/" + ctrl); err != nil {
		return ""
	}
	return hostCgroup(t, id, ctrl, file)
}

func TestTop(t *testing.T) {
	s := shared(t)
	name := uniq("top")
	since := time.Now().Unix()
	s.MustDocker("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 300 & sleep 301; true")
	defer s.Docker("rm", "-f", name)
	pid := s.MustDocker("inspect", "-f", "{{.State.Pid}}", name)
	var out string
	for i := 0; i < 50; i++ { // until both sleeps run
		if out = s.MustDocker("top", name); strings.Count(out, "\n") == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(out, "\n")
	if strings.Join(strings.Fields(lines[0]), " ") != "UID PID PPID C STIME TTY TIME CMD" {
		t.Fatalf("titles %q", lines[0])
	}
	if len(lines) != 4 { // the init shell and its two sleeps, nothing of the host
		t.Fatalf("top:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[1] != pid || f[0] != "root" || strings.Join(f[7:], " ") != "sh -c sleep 300 & sleep 301; true" {
		t.Errorf("the init's line %q (pid %s)", lines[1], pid)
	}
	out = s.MustDocker("top", name, "-o", "pid,comm")
	if f := strings.Fields(out); len(f) != 8 || f[0] != "PID" || f[1] != "COMMAND" || f[3] != "sh" || f[5] != "sleep" {
		t.Errorf("top -o pid,comm: %q", out)
	}
	if !strings.Contains(strings.Join(actions(t, s, name, since), " "), "top") {
		t.Error("no top event")
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"top", name, "-o", "user=PID"}, `specifying "user=PID" is not allowed`},
		{[]string{"top", name, "--no-such-ps-option"}, "Error response from daemon: ps: "},
		{[]string{"top", "no-such-ctr-e2e"}, "No such container: no-such-ctr-e2e"},
	} {
		if _, errOut, code := s.Docker(c.args...); code != 1 || !strings.Contains(errOut, c.msg) {
			t.Errorf("docker %v: exit %d %q, want %q", c.args, code, errOut, c.msg)
		}
	}
	stopped := uniq("topstopped")
	sid := s.MustDocker("create", "--name", stopped, "busybox", "true")
	defer s.Docker("rm", stopped)
	if _, errOut, code := s.Docker("top", stopped); code != 1 || !strings.Contains(errOut, "Container "+sid+" is not running") {
		t.Errorf("top of a created container: exit %d %q", code, errOut)
	}
}
