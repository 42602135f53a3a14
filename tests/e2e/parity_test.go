package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCreateRefusesAsDocker: settings dockerd refuses at create, with its
// words and docker run's exit code 125, and no container left behind.
func TestCreateRefusesAsDocker(t *testing.T) {
	s := shared(t)
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"restart-unknown", []string{"--restart", "bogus"},
			"invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{"restart-count-always", []string{"--restart", "always:3"},
			"invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{"restart-negative", []string{"--restart", "on-failure:-1"},
			"invalid restart policy: maximum retry count cannot be negative"},
		{"stop-signal", []string{"--stop-signal", "SIGNOPE"}, "invalid signal: SIGNOPE"},
		{"log-opt", []string{"--log-opt", "nope=1"}, "unknown log opt 'nope' for json-file log driver"},
		{"log-mode", []string{"--log-opt", "mode=fast"}, "logger: logging mode not supported: fast"},
		{"runtime", []string{"--runtime", "nope"}, "unknown or invalid runtime name: nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := uniq("refused")
			args := append(append([]string{"run", "-d", "--name", name}, c.args...), "busybox", "true")
			_, errOut, code := s.Docker(args...)
			if code != 125 || !strings.Contains(errOut, "Error response from daemon: "+c.msg) {
				s.Docker("rm", "-f", name)
				t.Fatalf("exit %d stderr %q, want 125 and %q", code, errOut, c.msg)
			}
			if _, _, code := s.Docker("inspect", name); code == 0 {
				s.Docker("rm", "-f", name)
				t.Fatalf("a refused create left container %s", name)
			}
		})
	}
}

// TestEmptyEntrypoint: `--entrypoint ""` drops the image's entrypoint and
// runs the command given; without one, there is no command, as dockerd says.
func TestEmptyEntrypoint(t *testing.T) {
	s := shared(t)
	if out, errOut, code := s.Docker("run", "--rm", "--entrypoint", "", "busybox", "echo", "ok"); code != 0 || out != "ok" {
		t.Fatalf("run --entrypoint \"\" busybox echo ok: exit %d out %q stderr %q", code, out, errOut)
	}
	if _, errOut, code := s.Docker("run", "--rm", "--entrypoint", "", "busybox"); code != 125 || !strings.Contains(errOut, "no command specified") {
		t.Fatalf("run --entrypoint \"\" busybox: exit %d stderr %q, want 125 and no command specified", code, errOut)
	}
}

// TestKillErrors: dockerd names the container in every kill error, and
// refuses numbers that are no Linux signal in its own words.
func TestKillErrors(t *testing.T) {
	s := shared(t)
	name := uniq("kill")
	s.MustDocker("run", "-d", "--name", name, "busybox", "sleep", "1000")
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	id := s.MustDocker("inspect", "-f", "{{.Id}}", name)
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"-s", "SIGNOPE", name}, "cannot kill container: " + name + ": invalid signal: SIGNOPE"},
		{[]string{"-s", "65", name}, "cannot kill container: " + name + ": the linux daemon does not support signal 65"},
		{[]string{"-s", "32", name}, "cannot kill container: " + name + ": the linux daemon does not support signal 32"},
		{[]string{"nosuch-e2e-kill"}, "cannot kill container: nosuch-e2e-kill: No such container: nosuch-e2e-kill"},
	}
	for _, c := range cases {
		_, errOut, code := s.Docker(append([]string{"kill"}, c.args...)...)
		if code != 1 || errOut != "Error response from daemon: "+c.msg {
			t.Errorf("kill %v: exit %d stderr %q, want %q", c.args, code, errOut, c.msg)
		}
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", name); st != "running" {
		t.Fatalf("refused kills left %s %s", name, st)
	}
	s.MustDocker("kill", name)
	_, errOut, _ := s.Docker("kill", name)
	if want := "Error response from daemon: cannot kill container: " + name + ": container " + id + " is not running"; errOut != want {
		t.Fatalf("kill of a stopped container: %q, want %q", errOut, want)
	}
}

// TestInspectLogConfig: inspect shows the log driver a container got, as
// dockerd records it at create (SDKs read it to know logs can be read).
func TestInspectLogConfig(t *testing.T) {
	s := shared(t)
	name := uniq("logcfg")
	s.MustDocker("create", "--name", name, "busybox", "true")
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	if got := s.MustDocker("inspect", "-f", "{{json .HostConfig.LogConfig}}", name); got != `{"Type":"json-file","Config":{}}` {
		t.Fatalf("HostConfig.LogConfig %s", got)
	}
	opt := uniq("logopt")
	s.MustDocker("create", "--name", opt, "--log-opt", "max-size=1m", "busybox", "true")
	t.Cleanup(func() { s.Docker("rm", "-f", opt) })
	if got := s.MustDocker("inspect", "-f", "{{json .HostConfig.LogConfig}}", opt); got != `{"Type":"json-file","Config":{"max-size":"1m"}}` {
		t.Fatalf("HostConfig.LogConfig with --log-opt %s", got)
	}
}

// TestDevices: --device gives the container the host's node (at another
// path when asked) and the cgroup rule to open it; --device-cgroup-rule
// allows a node the container makes; a missing device fails the start with
// dockerd's message.
func TestDevices(t *testing.T) {
	s := shared(t)
	open := `exec 3<%s && echo opened`
	cases := []struct {
		name string
		args []string
		out  string
		code int
	}{
		{"none", []string{"busybox", "sh", "-c", "mknod /tmp/lc c 10 237 && " + fmt.Sprintf(open, "/tmp/lc")}, "", 1},
		{"device", []string{"--device", "/dev/loop-control", "busybox", "sh", "-c", "ls -l /dev/loop-control | cut -c1-10 && " + fmt.Sprintf(open, "/dev/loop-control")}, "crw-------\nopened", 0},
		{"device-renamed", []string{"--device", "/dev/loop-control:/dev/lc", "busybox", "sh", "-c", fmt.Sprintf(open, "/dev/lc")}, "opened", 0},
		{"cgroup-rule", []string{"--device-cgroup-rule", "c 10:237 rw", "busybox", "sh", "-c", "mknod /tmp/lc c 10 237 && " + fmt.Sprintf(open, "/tmp/lc")}, "opened", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := s.Docker(append([]string{"run", "--rm"}, c.args...)...)
			if code != c.code || out != c.out {
				t.Fatalf("exit %d out %q stderr %q, want exit %d out %q", code, out, errOut, c.code, c.out)
			}
		})
	}
	_, errOut, code := s.Docker("run", "--rm", "--device", "/dev/nosuch-e2e", "busybox", "true")
	if want := `error gathering device information while adding custom device "/dev/nosuch-e2e": no such file or directory`; code != 127 || !strings.Contains(errOut, want) {
		t.Fatalf("--device of a missing node: exit %d stderr %q, want 127 and %q", code, errOut, want)
	}
}

// TestKillPausedContainer: a signal to a paused container with no stop
// signal of its own thaws it, as dockerd does, and the thaw is reported as
// an unpause event like any resume.
func TestKillPausedContainer(t *testing.T) {
	s := shared(t)
	name := uniq("killpaused")
	s.MustDocker("run", "-d", "--name", name, "busybox", "sh", "-c", `trap "echo usr1" USR1; echo ready; while true; do sleep 0.1; done`)
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	waitFor(t, 10*time.Second, "the trap script", func() bool { out, _, _ := s.Docker("logs", name); return out == "ready" })
	since := time.Now().Format(time.RFC3339Nano)
	s.MustDocker("pause", name)
	s.MustDocker("kill", "-s", "USR1", name)
	waitFor(t, 10*time.Second, "the trap", func() bool { out, _, _ := s.Docker("logs", name); return out == "ready\nusr1" })
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name); st != "running false" {
		t.Fatalf("state after the signal: %s", st)
	}
	until := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)
	out := s.MustDocker("events", "--since", since, "--until", until, "--filter", "container="+name, "--format", "{{.Action}}")
	if out != "pause\nkill\nunpause" {
		t.Fatalf("events %q, want pause, kill, unpause", out)
	}
}

// TestContainerNetworkExpose: --expose cannot go with another container's
// network, as dockerd says; the ports an image exposes can (dockerd checks
// the client's config, not the image's).
func TestContainerNetworkExpose(t *testing.T) {
	s := shared(t)
	base := uniq("netbase")
	s.MustDocker("run", "-d", "--name", base, "busybox", "sleep", "1000")
	t.Cleanup(func() { s.Docker("rm", "-f", base) })
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--expose", "80"}, "conflicting options: port exposing and the container type network mode"},
		{[]string{"-p", "80:80"}, "conflicting options: port publishing and the container type network mode"},
	} {
		args := append(append([]string{"run", "--rm", "--network", "container:" + base}, c.args...), "busybox", "true")
		if _, errOut, code := s.Docker(args...); code != 125 || !strings.Contains(errOut, "Error response from daemon: "+c.msg) {
			t.Errorf("%v: exit %d stderr %q, want 125 and %q", c.args, code, errOut, c.msg)
		}
	}
	img := "e2e-exposes:latest"
	s.ImportBusyboxAs(img, "EXPOSE 80")
	t.Cleanup(func() { s.Docker("rmi", "-f", img) })
	if out, errOut, code := s.Docker("run", "--rm", "--network", "container:"+base, img, "echo", "ok"); code != 0 || out != "ok" {
		t.Fatalf("an image's EXPOSE with container: networking: exit %d out %q stderr %q", code, out, errOut)
	}
}

// TestVolumesFrom: --volumes-from mounts another container's volumes and
// binds at the same places (read-only with :ro); removing the container
// that borrowed them leaves them to their owner.
func TestVolumesFrom(t *testing.T) {
	s := shared(t)
	data, vol, dir := uniq("data"), uniq("vfvol"), t.TempDir()
	s.MustDocker("create", "--name", data, "-v", "/anon", "-v", vol+":/named", "-v", dir+":/bound", "busybox", "true")
	t.Cleanup(func() { s.Docker("rm", "-f", "-v", data); s.Docker("volume", "rm", vol) })
	s.MustDocker("run", "--rm", "--volumes-from", data, "busybox", "sh", "-c", "echo a > /anon/f && echo n > /named/f && echo b > /bound/f")
	out, errOut, code := s.Docker("run", "--rm", "--volumes-from", data+":ro", "busybox", "sh", "-c", "cat /anon/f /named/f /bound/f; touch /anon/g")
	if code != 1 || out != "a\nn\nb" || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("--volumes-from :ro: exit %d out %q stderr %q", code, out, errOut)
	}
	anon := s.MustDocker("inspect", "-f", `{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}`, data)
	user := uniq("vfuser")
	s.MustDocker("create", "--name", user, "--volumes-from", data, "-v", t.TempDir()+":/named", "busybox", "true")
	t.Cleanup(func() { s.Docker("rm", "-f", user) })
	got := s.MustDocker("inspect", "-f", `{{range .Mounts}}{{.Destination}}={{.Type}},{{.Name}},{{.RW}} {{end}}`, user)
	if want := "/anon=volume," + anon + ",true /bound=bind,,true /named=bind,,true "; got != want {
		t.Fatalf("Mounts of the borrower %q, want %q (its own -v wins at /named)", got, want)
	}
	s.MustDocker("rm", "-v", user)
	if out := s.MustDocker("run", "--rm", "--volumes-from", data, "busybox", "cat", "/anon/f"); out != "a" {
		t.Fatalf("the owner's anonymous volume after rm -v of a borrower: %q", out)
	}
	for _, c := range []struct{ spec, msg string }{
		{"nosuch-e2e-vf", "No such container: nosuch-e2e-vf"},
		{data + ":rshared", "invalid mode: rshared"},
	} {
		if _, errOut, code := s.Docker("run", "--rm", "--volumes-from", c.spec, "busybox", "true"); code != 125 || !strings.Contains(errOut, "Error response from daemon: "+c.msg) {
			t.Errorf("--volumes-from %s: exit %d stderr %q, want 125 and %q", c.spec, code, errOut, c.msg)
		}
	}
}

// TestLogsDetails: the labels, env and tag log options put attributes in
// each json-file record, and docker logs --details shows them before the
// line (key-sorted, query-escaped; a lone space when there are none).
func TestLogsDetails(t *testing.T) {
	s := shared(t)
	name, plain := uniq("details"), uniq("nodetails")
	s.MustDocker("run", "--name", name, "-l", "team=a b", "-l", "other=x", "-e", "STAGE=prod",
		"--log-opt", "labels=team", "--log-opt", "env=STAGE", "--log-opt", "tag={{.Name}}",
		"busybox", "sh", "-c", "echo out; echo err >&2")
	s.MustDocker("run", "--name", plain, "busybox", "echo", "out")
	t.Cleanup(func() { s.Docker("rm", "-f", name, plain) })
	out, errOut, code := s.Docker("logs", "--details", name)
	attrs := "STAGE=prod,tag=" + name + ",team=a+b "
	if code != 0 || out != attrs+"out" || errOut != attrs+"err" {
		t.Fatalf("logs --details: exit %d out %q err %q, want %q before each line", code, out, errOut, attrs)
	}
	if out := s.MustDocker("logs", name); out != "out" {
		t.Fatalf("logs without --details: %q", out)
	}
	if out, _, _ := s.Docker("logs", "--details", plain); out != " out" {
		t.Fatalf("logs --details of a container without attributes: %q, want \" out\"", out)
	}
}

// TestRestartErrors: dockerd names the container in what makes a restart
// fail once the container is found.
func TestRestartErrors(t *testing.T) {
	s := shared(t)
	bad, ok := uniq("restartbad"), uniq("restartok")
	s.MustDocker("create", "--name", bad, "busybox", "/no/such/binary")
	s.MustDocker("run", "-d", "--name", ok, "busybox", "sleep", "1000")
	t.Cleanup(func() { s.Docker("rm", "-f", bad, ok) })
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{bad}, "Cannot restart container " + bad + `: failed to create task for container: OCI runtime create failed: unable to start container process: exec: "/no/such/binary"`},
		{[]string{"-s", "SIGNOPE", ok}, "Cannot restart container " + ok + ": invalid signal: SIGNOPE"},
		{[]string{"nosuch-e2e-restart"}, "No such container: nosuch-e2e-restart"},
	} {
		_, errOut, code := s.Docker(append([]string{"restart"}, c.args...)...)
		if code != 1 || !strings.HasPrefix(errOut, "Error response from daemon: "+c.msg) {
			t.Errorf("restart %v: exit %d stderr %q, want %q", c.args, code, errOut, c.msg)
		}
	}
	if _, errOut, code := s.Docker("stop", "-s", "SIGNOPE", ok); code != 1 || errOut != "Error response from daemon: invalid signal: SIGNOPE" {
		t.Errorf("stop -s SIGNOPE: exit %d stderr %q", code, errOut)
	}
}

// TestPidsLimitUnlimited: as dockerd, create records no limit for 0 or a
// negative --pids-limit (null in inspect), and update records 0.
func TestPidsLimitUnlimited(t *testing.T) {
	s := shared(t)
	for _, c := range []struct{ flag, want string }{{"", "null"}, {"-1", "null"}, {"0", "null"}, {"5", "5"}} {
		name := uniq("pids")
		args := []string{"create", "--name", name}
		if c.flag != "" {
			args = append(args, "--pids-limit="+c.flag)
		}
		s.MustDocker(append(args, "busybox", "true")...)
		got := s.MustDocker("inspect", "-f", "{{json .HostConfig.PidsLimit}}", name)
		if c.flag == "5" {
			s.MustDocker("update", "--pids-limit=-1", name)
			if upd := s.MustDocker("inspect", "-f", "{{json .HostConfig.PidsLimit}}", name); upd != "0" {
				t.Errorf("after update --pids-limit=-1: %s, want 0", upd)
			}
		}
		s.MustDocker("rm", name)
		if got != c.want {
			t.Errorf("create --pids-limit=%q: PidsLimit %s, want %s", c.flag, got, c.want)
		}
	}
}

// TestRuntimeName: inspect names the runtime a container got, the default
// `docker info` gives when none was asked for; runc's name is taken too.
func TestRuntimeName(t *testing.T) {
	s := shared(t)
	def := s.MustDocker("info", "-f", "{{.DefaultRuntime}}")
	for _, c := range []struct{ flag, want string }{{"", def}, {"runc", "runc"}} {
		name := uniq("runtime")
		args := []string{"run", "--name", name}
		if c.flag != "" {
			args = append(args, "--runtime", c.flag)
		}
		out, errOut, code := s.Docker(append(args, "busybox", "echo", "ok")...)
		got, _, _ := s.Docker("inspect", "-f", "{{.HostConfig.Runtime}}", name)
		s.Docker("rm", "-f", name)
		if code != 0 || out != "ok" || got != c.want {
			t.Errorf("run --runtime %q: exit %d out %q stderr %q, HostConfig.Runtime %q want %q", c.flag, code, out, errOut, got, c.want)
		}
	}
}

// TestRealtimeSignalNames: dockerd's names of the real-time signals
// (systemd images stop with SIGRTMIN+3) are taken by --stop-signal, kill
// and stop.
func TestRealtimeSignalNames(t *testing.T) {
	s := shared(t)
	name := uniq("rtsig")
	s.MustDocker("run", "-d", "--name", name, "--stop-signal", "SIGRTMIN+3", "busybox", "sh", "-c",
		`trap "echo got-37" 37; trap "echo got-63; exit 3" 63; echo ready; while true; do sleep 0.1; done`)
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	waitFor(t, 10*time.Second, "the trap script", func() bool { out, _, _ := s.Docker("logs", name); return out == "ready" })
	s.MustDocker("kill", "-s", "RTMIN+3", name)
	waitFor(t, 10*time.Second, "the RTMIN+3 trap", func() bool { out, _, _ := s.Docker("logs", name); return out == "ready\ngot-37" })
	s.MustDocker("stop", "-s", "SIGRTMAX-1", name)
	if out, _, _ := s.Docker("logs", name); out != "ready\ngot-37\ngot-63" {
		t.Fatalf("logs %q after stop -s SIGRTMAX-1", out)
	}
	if code := s.MustDocker("inspect", "-f", "{{.State.ExitCode}}", name); code != "3" {
		t.Fatalf("exit %s, want 3", code)
	}
}

// TestInspectSecurityDefaults: inspect shows what applies, as dockerd
// records it at create: Docker's masked and read-only paths (none for a
// privileged container), and the host's cgroup namespace on cgroup v1.
func TestInspectSecurityDefaults(t *testing.T) {
	s := shared(t)
	plain, priv := uniq("sec-default"), uniq("sec-priv")
	s.MustDocker("create", "--name", plain, "busybox", "true")
	defer s.Docker("rm", plain)
	s.MustDocker("create", "--name", priv, "--privileged", "busybox", "true")
	defer s.Docker("rm", priv)
	const format = "{{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}}"
	want := `["/proc/asound","/proc/acpi","/proc/interrupts","/proc/kcore","/proc/keys","/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi","/sys/firmware","/sys/devices/virtual/powercap"] ["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]`
	if got := s.MustDocker("inspect", "-f", format, plain); got != want {
		t.Errorf("paths:\n%s\nwant:\n%s", got, want)
	}
	if got := s.MustDocker("inspect", "-f", format, priv); got != "null null" {
		t.Errorf("privileged paths: %s", got)
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return // cgroup v2: not this machine's kind
	}
	if got := s.MustDocker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", plain); got != "host" {
		t.Errorf("CgroupnsMode %q, want host (cgroup v1)", got)
	}
}
