package reaper

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func wait(t *testing.T, c <-chan Exit) Exit {
	t.Helper()
	select {
	case e := <-c:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no exit")
	}
	return Exit{}
}

func TestReaper(t *testing.T) {
	if err := Start(); err != nil {
		t.Fatal(err)
	}
	// Commands: exit codes and signals, many at once (SIGCHLDs coalesce).
	var chans []<-chan Exit
	for i := range 20 {
		c, err := Run(exec.Command("sh", "-c", "exit "+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, c)
	}
	for i, c := range chans {
		if e := wait(t, c); e.Status != i {
			t.Fatalf("command %d: %+v", i, e)
		}
	}
	c, err := Run(exec.Command("sh", "-c", "kill -9 $$"))
	if err != nil {
		t.Fatal(err)
	}
	if e := wait(t, c); e.Status != 137 {
		t.Fatalf("killed: %+v", e)
	}

	// An orphan inherited as subreaper, reaped before anyone waits for it.
	// It exits only once its parent has (when the test closes the pipe on
	// its fd 3): a shell may reap a background child that ends before it.
	r, w, _ := os.Pipe()
	hold, release, _ := os.Pipe()
	cmd := exec.Command("sh", "-c", "sh -c 'read x <&3; exit 5' & echo $!")
	cmd.Stdout = w
	cmd.ExtraFiles = []*os.File{hold}
	c, err = Run(cmd)
	w.Close()
	hold.Close()
	if err != nil {
		t.Fatal(err)
	}
	wait(t, c)
	b := make([]byte, 32)
	n, _ := r.Read(b)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		t.Fatal(err)
	}
	release.Close()
	time.Sleep(50 * time.Millisecond)
	if e := wait(t, Wait(pid)); e.Status != 5 || e.Pid != pid {
		t.Fatalf("orphan: %+v", e)
	}
}
