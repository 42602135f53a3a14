package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/services/runtime/cgroups"
)

// assertNothingLeft checks that a failed create left no state directory,
// cgroup, mount or process.
func assertNothingLeft(t *testing.T, e *env, id string) {
	t.Helper()
	if id != "" && !strings.Contains(id, "/") && id != ".." {
		if _, err := os.Stat(filepath.Join(e.root, id)); !os.IsNotExist(err) {
			t.Errorf("state dir of %q left behind", id)
		}
		if m, err := cgroups.New("", id); err == nil {
			for k, p := range m.Paths() {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("cgroup %s %s left behind", k, p)
				}
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	// (other processes on this host mount things too: look for ours)
	if strings.Contains(string(mi), e.root) || strings.Contains(string(mi), "/"+t.Name()) {
		t.Errorf("mounts left behind:\n%s", mi)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, _ := os.ReadFile(p + "/cmdline")
		if !strings.HasPrefix(string(cmd), "berth-runtime\x00init") {
			continue
		}
		stat, _ := os.ReadFile(p + "/stat")
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || len(stat) < i+2 {
			continue
		}
		f := strings.Fields(string(stat[i+2:]))
		// Ours are adopted by this test process (a subreaper) once the
		// runtime exits; other people's containers on this host are not.
		if len(f) < 2 || f[0] == "Z" || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		t.Errorf("container init %s left running", p)
	}
}

func badCreate(t *testing.T, e *env, bundle, id, wantMsg string, extra ...string) {
	t.Helper()
	args := append(append([]string{"create", "--bundle", bundle}, extra...), id)
	logFile := filepath.Join(t.TempDir(), "log.json")
	r := e.rt(append([]string{"--log", logFile, "--log-format", "json"}, args...)...)
	if r.code != 1 {
		t.Fatalf("create %q: want exit 1: %v", id, r)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, wantMsg) {
		t.Fatalf("create %q: want one line with %q on stderr: %v", id, wantMsg, r)
	}
	log := readFile(t, logFile)
	if !strings.Contains(log, `"level":"error"`) || !strings.Contains(log, `"msg":`) || !strings.Contains(log, `"time":`) {
		t.Fatalf("json log: %s", log)
	}
	assertNothingLeft(t, e, id)
}

func TestBadConfig(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"true"}, nil)
	write := func(s string) { os.WriteFile(filepath.Join(b, "config.json"), []byte(s), 0o644) }
	write("{not json")
	badCreate(t, e, b, "malformed", "malformed")
	write(`{"ociVersion": "2.0.0", "root": {"path": "rootfs"}}`)
	badCreate(t, e, b, "version", "unsupported ociVersion")

	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Root.Path = "nope" })
	badCreate(t, e, b, "norootfs", "rootfs")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
	})
	badCreate(t, e, b, "badns", `unknown namespace type "bogus"`)
	// a path that is no namespace: the constructor's error, quotes and all
	notNS := filepath.Join(t.TempDir(), `not"ns`)
	os.WriteFile(notNS, nil, 0o644)
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		for i, n := range s.Linux.Namespaces {
			if n.Type == specs.IPCNamespace {
				s.Linux.Namespaces[i].Path = notNS
			}
		}
	})
	badCreate(t, e, b, "notns", "nsenter: setns "+notNS+": invalid argument")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.ApparmorProfile = "docker-default" })
	badCreate(t, e, b, "apparmor", "AppArmor is not enabled")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.Capabilities.Bounding = []string{"CAP_NOPE"} })
	badCreate(t, e, b, "badcap", "unknown capability")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.Args = nil })
	badCreate(t, e, b, "noargs", "args")
	b = e.bundle([]string{"/no/such/program"}, nil)
	badCreate(t, e, b, "noprog", "no such file")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/does/not/exist", Options: []string{"bind"}})
	})
	badCreate(t, e, b, "badmount", "/does/not/exist")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	})
	badCreate(t, e, b, "badseccomp", "unsupported action")
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.Terminal = true })
	badCreate(t, e, b, "noconsole", "console-socket")
	// sysctls that would change the host, and a mount hiding part of /proc
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.stat_interval": "2"} })
	badCreate(t, e, b, "hostsysctl", `sysctl "vm.stat_interval" is not in a separate kernel namespace`)
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	})
	badCreate(t, e, b, "hostnetsysctl", `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`)
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"kernel.shmmax": "1000000"}
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.IPCNamespace })
	})
	badCreate(t, e, b, "hostipcsysctl", `sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace`)
	b = e.bundle([]string{"true"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/proc/sys", Type: "tmpfs", Source: "tmpfs"})
	})
	badCreate(t, e, b, "procmount", `"/proc/sys" cannot be mounted because it is inside /proc`)
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "=x") })
	badCreate(t, e, b, "emptyenv", `invalid environment variable "=x": name cannot be empty`)
	b = e.bundle([]string{"true"}, func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "A=b\x00c") })
	badCreate(t, e, b, "nulenv", `invalid environment variable "A": contains a nul byte`)
}

func TestBadIDs(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sleep", "100"}, nil)
	badCreate(t, e, b, "", "empty")
	badCreate(t, e, b, "../x", "invalid container id")
	badCreate(t, e, b, "a/b", "invalid container id")
	badCreate(t, e, b, "..", "invalid container id")
	if _, err := os.Stat(filepath.Join(filepath.Dir(e.root), "x")); err == nil {
		t.Fatal("../x escaped the state directory")
	}
	pid := e.create("dup", b)
	r := e.rt("create", "--bundle", b, "dup")
	if r.code != 1 || !strings.Contains(r.stderr, "container with id exists: dup") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("duplicate: %v", r)
	}
	if s := e.state("dup"); s.Status != "created" || s.Pid != pid {
		t.Fatalf("duplicate create disturbed the first: %+v", s)
	}
	for _, sig := range []string{"SIGNOPE", "NOPE", "0", "99"} {
		r = e.rt("kill", "dup", sig)
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "signal") {
			t.Fatalf("kill %s: %v", sig, r)
		}
	}
	for _, sig := range []string{"SIGKILL"} {
		e.ok("kill", "dup", sig)
	}
	reap(t, pid)
	e.ok("delete", "dup")
	for _, cmd := range []string{"start", "state", "kill", "delete", "pause", "resume", "ps"} {
		r = e.rt(cmd, "missing")
		if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "does not exist") {
			t.Fatalf("%s missing: %v", cmd, r)
		}
	}
	r = e.rt("frobnicate")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("unknown command: %v", r)
	}
	assertNothingLeft(t, e, "dup")
}
