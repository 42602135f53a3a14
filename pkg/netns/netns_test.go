package netns

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestLoopbackUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a network namespace")
	}
	// a process in a network namespace of its own, where lo starts down
	cmd := exec.Command("sleep", "10")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := strconv.Itoa(cmd.Process.Pid)
	if err := LoopbackUp(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "-t", pid, "-n", "ip", "-o", "link", "show", "lo").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter ip link: %v %s", err, out)
	}
	if !strings.Contains(string(out), ",UP") {
		t.Fatalf("lo not up: %s", out)
	}
	// the caller's own loopback and namespace are untouched
	self, _ := os.Readlink("/proc/self/ns/net")
	if theirs, _ := os.Readlink("/proc/" + pid + "/ns/net"); self == theirs {
		t.Fatal("the process shares the test's network namespace")
	}
	if err := LoopbackUp(1 << 30); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
}
