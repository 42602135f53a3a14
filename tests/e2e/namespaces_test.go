package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"berth/tests/stack"
)

func ownNS(t *testing.T, kind string) string {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runLeaves checks that a failed start left no run of the container
// behind: bundle, runtime state, shim, cgroups, mounts.
func runLeaves(t *testing.T, s *stack.Stack, id string) {
	t.Helper()
	for _, p := range []string{
		filepath.Join(s.ExecRoot, "bundles", id), filepath.Join(s.ExecRoot, "runtime", id),
		filepath.Join(s.ExecRoot, "shims", id, "shim.pid"),
	} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after a failed start", p)
		}
	}
	if m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*/berth", id)); len(m) > 0 {
		t.Errorf("cgroups left after a failed start: %v", m)
	}
	for _, m := range stack.Mounts(filepath.Dir(s.Root)) {
		if strings.Contains(m, id) {
			t.Errorf("mount %s left after a failed start", m)
		}
	}
}

func TestPidNamespaceSharing(t *testing.T) {
	s := shared(t)
	donor := uniq("piddonor")
	donorID := s.MustDocker("run", "-d", "--name", donor, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", donorID)
	// the donor's init is PID 1 of the joiner's view
	if out := s.MustDocker("run", "--rm", "--pid", "container:"+donor, "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"); out != "sleep 300 " {
		t.Errorf("--pid container: PID 1 is %q", out)
	}
	if out := s.MustDocker("run", "--rm", "--pid", "host", "busybox", "readlink", "/proc/self/ns/pid"); out != ownNS(t, "pid") {
		t.Errorf("--pid host: %s, host %s", out, ownNS(t, "pid"))
	}
	// recorded by ID: a rename of the donor keeps the link
	joiner := uniq("pidjoiner")
	s.MustDocker("create", "--name", joiner, "--pid", "container:"+donor, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", joiner)
	if got := s.MustDocker("inspect", "-f", "{{.HostConfig.PidMode}}", joiner); got != "container:"+donorID {
		t.Errorf("PidMode %q", got)
	}
	s.MustDocker("rename", donor, donor+"-r")
	s.MustDocker("start", joiner)
	s.MustDocker("rm", "-f", joiner)

	// the donor not running: the start fails, nothing of the run is left
	stopped := uniq("pidstopped")
	stoppedID := s.MustDocker("create", "--name", stopped, "busybox", "true")
	defer s.Docker("rm", "-f", stopped)
	j2 := uniq("pidj2")
	j2ID := s.MustDocker("create", "--name", j2, "--pid", "container:"+stopped, "busybox", "true")
	defer s.Docker("rm", "-f", j2)
	_, errOut, code := s.Docker("start", j2)
	if code != 1 || !strings.Contains(errOut, "container "+stoppedID+" is not running") {
		t.Errorf("start joining a stopped container: exit %d %q", code, errOut)
	}
	runLeaves(t, s, j2ID)
	// the donor removed since
	s.MustDocker("rm", stopped)
	if _, errOut, code := s.Docker("start", j2); code != 1 || !strings.Contains(errOut, "No such container: "+stoppedID) {
		t.Errorf("start joining a removed container: exit %d %q", code, errOut)
	}
	runLeaves(t, s, j2ID)
	if _, errOut, code := s.Docker("run", "--rm", "--pid", "bogus", "busybox", "true"); code != 125 || !strings.Contains(errOut, "invalid PID mode") {
		t.Errorf("--pid bogus: exit %d %q", code, errOut)
	}
}

func TestIpcModes(t *testing.T) {
	s := shared(t)
	shr := uniq("ipcshare")
	s.MustDocker("run", "-d", "--name", shr, "--ipc", "shareable", "busybox", "sh", "-c", "echo hello > /dev/shm/note; sleep 300")
	defer s.Docker("rm", "-f", shr)
	waitFile := "for i in $(seq 50); do test -e /dev/shm/note && break; sleep 0.1; done; "
	out := s.MustDocker("run", "--rm", "--ipc", "container:"+shr, "busybox", "sh", "-c", waitFile+"cat /dev/shm/note; readlink /proc/self/ns/ipc")
	lines := strings.Split(out, "\n")
	if len(lines) != 2 || lines[0] != "hello" {
		t.Fatalf("--ipc container:shareable: %q", out)
	}
	pid := s.MustDocker("inspect", "-f", "{{.State.Pid}}", shr)
	if donorNS, _ := os.Readlink("/proc/" + pid + "/ns/ipc"); lines[1] != donorNS {
		t.Errorf("ipc namespace %s, the donor's is %s", lines[1], donorNS)
	}
	if got := s.MustDocker("inspect", "-f", "{{.HostConfig.IpcMode}}", shr); got != "shareable" {
		t.Errorf("IpcMode %q", got)
	}
	if out := s.MustDocker("run", "--rm", "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc"); out != ownNS(t, "ipc") {
		t.Errorf("--ipc host: %s", out)
	}
	if out, _, code := s.Docker("run", "--rm", "--ipc", "none", "busybox", "sh", "-c", "test -e /dev/shm || echo no-shm; readlink /proc/self/ns/ipc"); code != 0 || !strings.HasPrefix(out, "no-shm\n") || strings.HasSuffix(out, ownNS(t, "ipc")) {
		t.Errorf("--ipc none: %d %q", code, out)
	}
	// a private IPC namespace (the default) is not shareable
	priv := uniq("ipcpriv")
	privID := s.MustDocker("run", "-d", "--name", priv, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", priv)
	if _, errOut, code := s.Docker("run", "--rm", "--ipc", "container:"+priv, "busybox", "true"); code != 125 ||
		!strings.Contains(errOut, "container "+privID+": non-shareable IPC (hint: use IpcMode:shareable for the donor container)") {
		t.Errorf("joining a private IPC namespace: exit %d %q", code, errOut)
	}
	// the shareable /dev/shm goes with its container
	shrID := s.MustDocker("inspect", "-f", "{{.Id}}", shr)
	s.MustDocker("rm", "-f", shr)
	for _, m := range stack.Mounts(filepath.Dir(s.Root)) {
		if strings.Contains(m, shrID) {
			t.Errorf("mount %s left after rm", m)
		}
	}
}

func TestUtsHost(t *testing.T) {
	s := shared(t)
	host, _ := os.Hostname()
	if out := s.MustDocker("run", "--rm", "--uts", "host", "busybox", "sh", "-c", "hostname; readlink /proc/self/ns/uts"); out != host+"\n"+ownNS(t, "uts") {
		t.Errorf("--uts host: %q", out)
	}
	if out := s.MustDocker("run", "--rm", "--hostname", "box", "busybox", "hostname"); out != "box" {
		t.Errorf("own UTS namespace: %q", out)
	}
}

// TestUsernsRemap starts a supervisor with --userns-remap: a container's
// root is a subordinate uid on the host, the image is seen owned by root
// inside, what the container writes lands as the remapped ids.
func TestUsernsRemap(t *testing.T) {
	const base = 231072
	s := stack.StartWith(t, func(s *stack.Stack) {
		dir := filepath.Dir(s.Root)
		sub := filepath.Join(dir, "subid")
		if err := os.WriteFile(sub, []byte(fmt.Sprintf("berthtest:%d:65536\n", base)), 0o644); err != nil {
			t.Fatal(err)
		}
		// the remapped root walks to the bundle and the container's files
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		s.SupervisorArgs = []string{"--userns-remap", "berthtest", "--subuid-file", sub, "--subgid-file", sub}
	})
	s.ImportBusybox()
	name := uniq("remap")
	id := s.MustDocker("run", "-d", "--name", name, "busybox", "sh", "-c",
		"cat /proc/self/uid_map; stat -c '%u:%g' /bin/busybox; id -u; touch /by-root; chown 1000:1000 /by-root; echo ready; sleep 300")
	defer s.Docker("rm", "-f", name)
	waitLog(t, s, name, "ready")
	logs := strings.Fields(s.MustDocker("logs", name))
	if want := []string{"0", fmt.Sprint(base), "65536", "0:0", "0", "ready"}; !slices.Equal(logs, want) {
		t.Errorf("inside: %v, want %v", logs, want)
	}
	pid := s.MustDocker("inspect", "-f", "{{.State.Pid}}", name)
	st, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil || !strings.Contains(string(st), fmt.Sprintf("Uid:\t%d\t%d", base, base)) {
		t.Errorf("the container's init on the host: %v %s", err, st)
	}
	if uid, gid, err := owner(filepath.Join(s.Root, "containers", id, "upper", "by-root")); err != nil || uid != base+1000 || gid != base+1000 {
		t.Errorf("a file chowned to 1000 inside is %d:%d on disk (%v)", uid, gid, err)
	}
	// the image's layers are used as they are (idmapped), not chowned
	layers, _ := filepath.Glob(filepath.Join(s.Root, "images", "layers", "*", "bin", "busybox"))
	for _, l := range layers {
		if uid, gid, err := owner(l); err != nil || uid != 0 || gid != 0 {
			t.Errorf("image layer file %s is %d:%d (%v)", l, uid, gid, err)
		}
	}
	if len(layers) == 0 {
		t.Error("no image layer found to check")
	}
	// sharing namespaces with a remapped container
	shr := uniq("remapshr")
	s.MustDocker("run", "-d", "--name", shr, "--ipc", "shareable", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", shr)
	if out := s.MustDocker("run", "--rm", "--network", "none", "--pid", "container:"+shr, "--ipc", "container:"+shr, "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; id -u"); out != "sleep 300 0" {
		t.Errorf("joining a remapped container: %q", out)
	}
	// with a bridge network of its own it cannot: that network would
	// belong to another user namespace than the shared ones (a limit of berth)
	if _, errOut, code := s.Docker("run", "--rm", "--pid", "container:"+shr, "busybox", "true"); code != 125 || !strings.Contains(errOut, "needs --network none or --network container:") {
		t.Errorf("joining with a network of its own: exit %d %q", code, errOut)
	}
	if out := s.MustDocker("run", "--rm", "--network", "container:"+shr, "busybox", "id", "-u"); out != "0" {
		t.Errorf("--network container: of a remapped container: %q", out)
	}
	// on the default bridge: its network namespace belongs to its user
	// namespace (made together before the start), eth0 is there
	if out := s.MustDocker("run", "--rm", "busybox", "sh", "-c", "ip -4 addr show eth0 | grep -c 'inet '; id -u"); out != "1\n0" {
		t.Errorf("a remapped container on the bridge: %q", out)
	}
	// --userns host: an unmapped container, still possible
	if out := s.MustDocker("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map"); strings.Join(strings.Fields(out), " ") != "0 0 4294967295" {
		t.Errorf("--userns host: %q", out)
	}
	for _, c := range []struct {
		opt, msg string
	}{
		{"--privileged", "privileged mode is incompatible with user namespaces"},
		{"--pid=host", "cannot share the host PID namespace when user namespaces are enabled"},
	} {
		if _, errOut, code := s.Docker("run", "--rm", c.opt, "busybox", "true"); code != 125 || !strings.Contains(errOut, c.msg) {
			t.Errorf("%s: exit %d %q", c.opt, code, errOut)
		}
	}
	if out := s.MustDocker("info", "-f", "{{json .SecurityOptions}}"); !strings.Contains(out, "name=userns") {
		t.Errorf("info security options %s", out)
	}
}

func owner(path string) (uint32, uint32, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Uid, st.Gid, nil
}
