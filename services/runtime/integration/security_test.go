package integration

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestNoFdLeak(t *testing.T) {
	e := newEnv(t)
	r := e.run(e.bundle([]string{"sh", "-c", "ls /proc/$$/fd; true"}, nil))
	if r.code != 0 || strings.Join(strings.Fields(r.stdout), ",") != "0,1,2" {
		t.Fatalf("fds in the container: %v", r)
	}
	// --preserve-fds 2: fds 3 and 4 of the caller appear as 3 and 4, nothing more
	b := e.bundle([]string{"sh", "-c", "ls /proc/$$/fd; cat <&3; cat <&4"}, nil)
	f1, _ := os.CreateTemp(t.TempDir(), "a")
	f2, _ := os.CreateTemp(t.TempDir(), "b")
	f1.WriteString("three\n")
	f2.WriteString("four\n")
	f1.Seek(0, 0)
	f2.Seek(0, 0)
	var out bytes.Buffer
	cmd := exec.Command(binary, "--root", e.root, "run", "--preserve-fds", "2", "--bundle", b, "pf")
	cmd.ExtraFiles = []*os.File{f1, f2}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got := strings.Join(strings.Fields(out.String()), ","); got != "0,1,2,3,4,three,four" {
		t.Fatalf("preserve-fds: %q", out.String())
	}
	// exec too
	pid := e.create("fdx", e.bundle([]string{"sleep", "100"}, nil))
	e.ok("start", "fdx")
	r = e.ok("exec", "fdx", "sh", "-c", "ls /proc/$$/fd; true")
	if strings.Join(strings.Fields(r.stdout), ",") != "0,1,2" {
		t.Fatalf("fds in exec: %v", r)
	}
	e.ok("delete", "--force", "fdx")
	reap(t, pid)
}

// CVE-2019-5736: the runtime binary must not be writable through the
// /proc/PID/exe of its container-side process.
func TestRuntimeBinaryNotWritable(t *testing.T) {
	e := newEnv(t)
	before := hashFile(t, binary)
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		all := []string{"CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN", "CAP_FOWNER"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	})
	// While created, the container's pid 1 is berth-runtime's init.
	pid := e.create("cve", b)
	_, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/exe", os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil || !strings.Contains(err.Error(), unix.EROFS.Error()) {
		t.Fatalf("host-side open of the init's exe for writing: %v, want EROFS", err)
	}
	// From inside the container, during exec, with CAP_SYS_PTRACE.
	r := e.rt("exec", "cve", "sh", "-c", "echo pwned > /proc/1/exe && echo WROTE; echo pwned >> /proc/1/exe && echo WROTE; readlink /proc/1/exe; true")
	if strings.Contains(r.stdout, "WROTE") {
		t.Fatalf("container wrote to the runtime binary: %v", r)
	}
	contains(t, r.stderr, "Read-only file system")
	if hashFile(t, binary) != before {
		t.Fatal("runtime binary changed")
	}
	e.ok("delete", "cve")
	reap(t, pid)
}

func hashFile(t *testing.T, p string) [32]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
