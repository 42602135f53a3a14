package faults

import (
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSupervisorKilledContainersSurvive: SIGKILL the supervisor (and with
// it the embedded NATS) while containers run; they keep running, exits that
// happen meanwhile are recorded with their true codes and times after the
// restart, an --rm container that exited meanwhile is removed.
func TestSupervisorKilledContainersSurvive(t *testing.T) {
	s := newStack(t)
	long := s.MustDocker("run", "-d", "--name", "long", "busybox", "sleep", "300")
	short := s.MustDocker("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 2; exit 7")
	auto := s.MustDocker("run", "-d", "--rm", "--name", "auto", "busybox", "sh", "-c", "sleep 2; exit 3")
	created := s.MustDocker("create", "--name", "created", "busybox", "true")
	pid := mustInspect(t, s, long).State.Pid
	if !alive(pid) {
		t.Fatalf("container process %d not alive", pid)
	}

	s.KillSupervisor(syscall.SIGKILL)
	killedAt := time.Now()
	time.Sleep(3500 * time.Millisecond) // short and auto exit while it is away
	if !alive(pid) {
		t.Fatal("the container died with the supervisor")
	}
	if !alive(shimPid(t, s, long)) {
		t.Fatal("the shim died with the supervisor")
	}
	s.StartSupervisor()
	restartedAt := time.Now()

	c := waitState(t, s, long, "running", 10*time.Second)
	if c.State.Pid != pid {
		t.Errorf("pid %d after restart, was %d", c.State.Pid, pid)
	}
	c = waitState(t, s, short, "exited", 15*time.Second)
	if c.State.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", c.State.ExitCode)
	}
	if c.State.FinishedAt.Before(killedAt.Add(-time.Second)) || c.State.FinishedAt.After(restartedAt) {
		t.Errorf("finished at %v; the supervisor was away from %v to %v", c.State.FinishedAt, killedAt, restartedAt)
	}
	waitGone(t, s, auto, 15*time.Second)
	if c := mustInspect(t, s, created); c.State.Status != "created" {
		t.Errorf("created container is %s", c.State.Status)
	}
	names := strings.Fields(s.MustDocker("ps", "-a", "--format", "{{.Names}}"))
	sort.Strings(names)
	if strings.Join(names, ",") != "created,long,short" {
		t.Errorf("docker ps -a: %v", names)
	}
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
	// the restored container is fully managed again
	out, _, _ := s.Docker("logs", "short")
	_ = out
	s.MustDocker("stop", "-t", "1", long)
	c = mustInspect(t, s, long)
	if c.State.Status != "exited" || (c.State.ExitCode != 143 && c.State.ExitCode != 137) {
		t.Errorf("after stop: %+v", c.State)
	}
	if alive(pid) {
		t.Error("the container's process survived docker stop")
	}
	s.MustDocker("rm", long, short, created)
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("after removal: %v", p)
	}
}

// TestSupervisorKilledMidCommands: SIGKILL the supervisor while creates,
// starts and removes are in flight; after the restart every record matches
// reality (half-done creates and removes are finished or rolled back) and
// the CLI works on every container left.
func TestSupervisorKilledMidCommands(t *testing.T) {
	s := newStack(t)
	for i := 0; i < 4; i++ {
		s.MustDocker("run", "-d", "busybox", "sleep", "300")
	}
	existing := allIDs(t, s)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				docker := func(args ...string) {
					t0 := time.Now()
					_, errOut, code := s.Docker(args...)
					if d := time.Since(t0); d > 10*time.Second {
						t.Errorf("docker %v took %v (exit %d: %s)", args, d, code, errOut)
					}
				}
				switch i % 3 {
				case 0:
					docker("run", "-d", "busybox", "sleep", "300")
				case 1:
					docker("run", "-d", "--rm", "busybox", "true")
				case 2:
					if w < len(existing) {
						docker("rm", "-f", existing[w])
					}
					docker("create", "busybox", "true")
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	s.KillSupervisor(syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	s.StartSupervisor()
	if p := checkReality(t, s, 20*time.Second); len(p) > 0 {
		t.Fatalf("records do not match reality after the restart: %v", p)
	}
	// every container left can be removed
	ids := allIDs(t, s)
	if len(ids) > 0 {
		s.MustDocker(append([]string{"rm", "-f"}, ids...)...)
	}
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("after removing everything: %v", p)
	}
	if n := len(allIDs(t, s)); n != 0 {
		t.Errorf("%d containers left", n)
	}
}
