package containers

import (
	"os/exec"
	"testing"
	"time"
)

// The shim reaper reaps the children it was given by pid, and only those.
func TestShimReaper(t *testing.T) {
	r := &shimReaper{pids: map[int]chan struct{}{}}
	track := r.prepare()
	var gone []<-chan struct{}
	for _, d := range []string{"0", "0.05"} {
		cmd := exec.Command("sleep", d)
		if err := cmd.Start(); err != nil {
			t.Skip(err)
		}
		pid := cmd.Process.Pid
		_ = cmd.Process.Release()
		gone = append(gone, track(pid))
	}
	// an exec.Cmd of the caller's own keeps its exit status
	other := exec.Command("sh", "-c", "exit 3")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	for i, c := range gone {
		select {
		case <-c:
		case <-time.After(5 * time.Second):
			t.Fatalf("child %d not reaped", i)
		}
	}
	err := other.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("the other child's status was taken: %v", err)
	}
}
