package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"berth/tests/stack"
)

// capEff is this process's effective capability mask (the supervisor the
// tests start has the same): what a privileged container can get.
func capEff(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no CapEff")
	return ""
}

func TestCapabilities(t *testing.T) {
	s := shared(t)
	cases := []struct {
		name string
		opts []string
		want string // CapEff, CapBnd
	}{
		// Docker's 14 defaults: chown dac_override fowner fsetid kill setgid setuid setpcap
		// net_bind_service net_raw sys_chroot mknod audit_write setfcap
		{"default", nil, "00000000a80425fb 00000000a80425fb"},
		{"drop-all-add-one", []string{"--cap-drop", "ALL", "--cap-add", "NET_ADMIN"}, "0000000000001000 0000000000001000"},
		{"drop-one", []string{"--cap-drop", "chown"}, "00000000a80425fa 00000000a80425fa"},
		{"add-one", []string{"--cap-add", "CAP_SYS_ADMIN"}, "00000000a82425fb 00000000a82425fb"},
		{"add-all", []string{"--cap-add", "ALL"}, capEff(t) + " " + capEff(t)},
		{"privileged", []string{"--privileged"}, capEff(t) + " " + capEff(t)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"run", "--rm"}, c.opts...), "busybox", "sh", "-c",
				`grep -E "^Cap(Eff|Bnd)" /proc/self/status | sort -r | awk '{printf "%s ", $2}'`)
			out, errOut, code := s.Docker(args...)
			if code != 0 || strings.TrimSpace(out) != c.want {
				t.Fatalf("exit %d caps %q (stderr %q), want %q", code, out, errOut, c.want)
			}
		})
	}
	// the effect of one: without CAP_CHOWN root cannot give a file away
	out, _, code := s.Docker("run", "--rm", "--cap-drop", "CHOWN", "busybox", "sh", "-c", "touch /f && chown nobody /f")
	if code != 1 || out != "" {
		t.Errorf("chown without CAP_CHOWN: exit %d", code)
	}
}

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
)

// sysProbe builds testdata/sysprobe (static) once.
func sysProbe(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		root, err := stack.ModuleRoot()
		if err != nil {
			probeErr = err
			return
		}
		dir, err := os.MkdirTemp("", "berth-probe-")
		if err != nil {
			probeErr = err
			return
		}
		probePath = filepath.Join(dir, "sysprobe")
		cmd := exec.Command("go", "build", "-o", probePath, "./tests/e2e/testdata/sysprobe")
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = err
			probePath = string(out)
		}
	})
	if probeErr != nil {
		t.Fatalf("building sysprobe: %v %s", probeErr, probePath)
	}
	return probePath
}

// TestSeccompProfiles runs syscalls that only the seccomp filter decides
// on (the capabilities would allow them) under Docker's default profile,
// with CAP_SYS_ADMIN, unconfined, privileged and with a profile file.
func TestSeccompProfiles(t *testing.T) {
	s := shared(t)
	probe := sysProbe(t)
	calls := "keyctl add_key clone_newuser clone3 personality_norandom socket_vsock getpid"
	cases := []struct {
		name string
		opts []string
		want string
	}{
		// Docker's default: keyrings, user namespaces, clone3 (ENOSYS, for
		// libc to fall back), ASLR-weakening personas, vsock refused
		{"default", nil, "keyctl=EPERM add_key=EPERM clone_newuser=EPERM clone3=ENOSYS personality_norandom=EPERM socket_vsock=EPERM getpid=ok"},
		{"cap-sys-admin", []string{"--cap-add", "SYS_ADMIN"}, "keyctl=EPERM add_key=EPERM clone_newuser=ok clone3=EINVAL personality_norandom=EPERM socket_vsock=EPERM getpid=ok"},
		{"unconfined", []string{"--security-opt", "seccomp=unconfined"}, "keyctl=ok add_key=ok clone_newuser=ok clone3=EINVAL personality_norandom=ok socket_vsock=ok getpid=ok"},
		{"privileged", []string{"--privileged"}, "keyctl=ok add_key=ok clone_newuser=ok clone3=EINVAL personality_norandom=ok socket_vsock=ok getpid=ok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"run", "--rm", "-v", probe + ":/probe:ro"}, c.opts...), append([]string{"busybox", "/probe"}, strings.Fields(calls)...)...)
			out, errOut, code := s.Docker(args...)
			if got := strings.Join(strings.Fields(out), " "); code != 0 || got != c.want {
				t.Fatalf("exit %d\n got %s\nwant %s\n(stderr %q)", code, got, c.want, errOut)
			}
		})
	}
	if out := s.MustDocker("run", "--rm", "busybox", "grep", "^Seccomp:", "/proc/self/status"); out != "Seccomp:\t2" {
		t.Errorf("default: %q, want filter mode", out)
	}

	// a profile file (the CLI sends its content): mkdir refused with EACCES
	dir := t.TempDir()
	prof := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(prof, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := s.Docker("run", "--rm", "--security-opt", "seccomp="+prof, "busybox", "sh", "-c", "touch /tmp/f && echo touched; mkdir /tmp/d")
	if code != 1 || out != "touched" || !strings.Contains(errOut, "Permission denied") {
		t.Errorf("custom profile: exit %d out %q err %q", code, out, errOut)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAction":42}`), 0o644)
	if _, errOut, code := s.Docker("run", "--rm", "--security-opt", "seccomp="+bad, "busybox", "true"); code != 125 || !strings.Contains(errOut, "Decoding seccomp profile failed") {
		t.Errorf("bad profile: exit %d %q", code, errOut)
	}
	if _, errOut, code := s.Docker("run", "--rm", "--security-opt", "seccomp="+filepath.Join(dir, "none.json"), "busybox", "true"); code != 125 || !strings.Contains(errOut, "opening seccomp profile") {
		t.Errorf("missing profile file: exit %d %q", code, errOut)
	}
}

func TestPrivileged(t *testing.T) {
	s := shared(t)
	// a host device beyond the defaults
	var dev string
	for _, d := range []string{"/dev/kmsg", "/dev/loop-control", "/dev/fuse", "/dev/tty0"} {
		if _, err := os.Stat(d); err == nil {
			dev = d
			break
		}
	}
	script := "ls " + dev + " >/dev/null 2>&1 && echo dev; mount | grep -q ' /sys .*(rw' && echo sys-rw; " +
		"test $(head -c1 /proc/timer_list | wc -c) = 1 && echo unmasked; echo x > /proc/sys/kernel/domainname 2>/dev/null && echo proc-sys-rw; " +
		"mount -t tmpfs t /mnt 2>/dev/null && echo mounted"
	if out := s.MustDocker("run", "--rm", "--privileged", "busybox", "sh", "-c", "mkdir -p /mnt; "+script); out != "dev\nsys-rw\nunmasked\nproc-sys-rw\nmounted" {
		t.Errorf("privileged: %q", out)
	}
	if out, _, _ := s.Docker("run", "--rm", "busybox", "sh", "-c", "mkdir -p /mnt; "+script); out != "" {
		t.Errorf("not privileged: %q", out)
	}
}

// TestMaskedAndReadonlyPaths: Docker's masked /proc and /sys paths and
// read-only /proc entries, and systempaths=unconfined without them.
func TestMaskedAndReadonlyPaths(t *testing.T) {
	s := shared(t)
	script := "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo x > /proc/sys/kernel/domainname 2>/dev/null && echo writable; " +
		"echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq; mount | grep -c '/proc/.* (ro,'"
	out := s.MustDocker("run", "--rm", "busybox", "sh", "-c", script)
	f := strings.Fields(out)
	if len(f) != 3 || f[0] != "0" || f[1] != "0" {
		t.Fatalf("masked paths: %q", out)
	}
	if n, _ := strconv.Atoi(f[2]); n < 4 { // bus fs irq sys sysrq-trigger (those the kernel has)
		t.Errorf("%d read-only /proc mounts", n)
	}
	if out := s.MustDocker("run", "--rm", "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c", "test $(head -c1 /proc/timer_list | wc -c) = 1 && echo readable"); out != "readable" {
		t.Errorf("systempaths=unconfined: %q", out)
	}
}

func TestProcessSecurityOptions(t *testing.T) {
	s := shared(t)
	cases := []struct {
		name string
		args []string
		out  string
		code int
	}{
		{"no-new-privileges", []string{"--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"}, "NoNewPrivs:\t1", 0},
		{"no-new-privileges=false", []string{"--security-opt", "no-new-privileges=false", "busybox", "grep", "NoNewPrivs", "/proc/self/status"}, "NoNewPrivs:\t0", 0},
		{"read-only", []string{"--read-only", "busybox", "sh", "-c", "touch /x 2>/dev/null || echo ro; touch /dev/shm/x && echo shm-rw"}, "ro\nshm-rw", 0},
		{"read-only-tmpfs", []string{"--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c", "touch /tmp/x && echo tmp-rw"}, "tmp-rw", 0},
		{"user-uid-gid", []string{"--user", "1000:1000", "busybox", "id"}, "uid=1000 gid=1000 groups=1000", 0},
		{"user-group-add", []string{"--user", "1000:1000", "--group-add", "10", "--group-add", "nogroup", "busybox", "id", "-G"}, "1000 10 65534", 0},
		{"user-name", []string{"--user", "nobody", "busybox", "id", "-un"}, "nobody", 0},
		{"tmpfs-size-mode", []string{"--tmpfs", "/scratch:size=1m,mode=700", "busybox", "sh", "-c", "df -k /scratch | tail -1 | awk '{print $2}'; stat -c %a /scratch"}, "1024\n700", 0},
		// tmpfs is noexec unless asked
		{"tmpfs-noexec", []string{"--tmpfs", "/scratch", "busybox", "sh", "-c", "cp /bin/busybox /scratch/ && /scratch/busybox true"}, "", 126},
		{"tmpfs-exec", []string{"--tmpfs", "/scratch:exec", "busybox", "sh", "-c", "cp /bin/busybox /scratch/ && /scratch/busybox echo ran"}, "ran", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := s.Docker(append([]string{"run", "--rm"}, c.args...)...)
			if code != c.code || out != c.out {
				t.Fatalf("exit %d out %q (stderr %q), want exit %d out %q", code, out, errOut, c.code, c.out)
			}
		})
	}
	if _, errOut, code := s.Docker("run", "--rm", "--user", "nosuchuser", "busybox", "true"); code != 125 || !strings.Contains(errOut, "unable to find user nosuchuser: no matching entries in passwd file") {
		t.Errorf("unknown user: exit %d %q", code, errOut)
	}
	if _, errOut, code := s.Docker("run", "--rm", "--group-add", "nosuchgroup", "busybox", "true"); code != 125 || !strings.Contains(errOut, "Unable to find group nosuchgroup: no matching entries in group file") {
		t.Errorf("unknown group: exit %d %q", code, errOut)
	}
}
