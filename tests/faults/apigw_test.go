package faults

import (
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestAPIGWKilled: apigw killed with SIGKILL under load; containers are not
// affected, the requests cut short fail with an error instead of hanging, a
// restarted apigw serves everything again, and no request was applied twice
// (unnamed containers: a create sent again would make a second one).
func TestAPIGWKilled(t *testing.T) {
	s := newStack(t)
	keep := s.MustDocker("run", "-d", "--name", "keep", "busybox", "sleep", "300")
	pid := mustInspect(t, s, keep).State.Pid
	// the load lasts until apigw is killed (each worker sends one request
	// more after it): the kill cannot come after the load, however fast
	// the machine
	const workers = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ids []string
	var killed atomic.Bool
	requests, failed := 0, 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for last := false; !last; {
				last = killed.Load()
				out, errOut, code := s.Docker("run", "-d", "--label", "load=1", "busybox", "true")
				mu.Lock()
				requests++
				if code == 0 {
					ids = append(ids, out)
				} else {
					failed++
					if strings.TrimSpace(errOut) == "" {
						t.Errorf("a failed request printed no error (exit %d)", code)
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	s.KillAPIGW(syscall.SIGKILL)
	killed.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("requests hang after apigw was killed")
	}
	if failed == 0 {
		t.Error("no request failed: apigw was killed after the load, not during it")
	}
	if !alive(pid) {
		t.Fatal("a container died with apigw")
	}
	s.StartAPIGW()
	if c := mustInspect(t, s, keep); c.State.Status != "running" || c.State.Pid != pid {
		t.Errorf("keep after apigw restart: %+v", c.State)
	}
	// every successful run is there, and no request made two containers
	all := strings.Fields(s.MustDocker("ps", "-aq", "--no-trunc", "--filter", "label=load=1"))
	have := map[string]bool{}
	for _, id := range all {
		have[id] = true
	}
	for _, id := range ids {
		if !have[id] {
			t.Errorf("%s was created but is gone", id[:12])
		}
	}
	// beyond the successes, only the requests in flight at the kill (one
	// per worker at most) may have made a container
	if len(all) > len(ids)+workers {
		t.Errorf("%d containers from %d successful requests and %d in flight", len(all), len(ids), workers)
	}
	t.Logf("%d requests: %d succeeded, %d failed; %d containers", requests, len(ids), failed, len(all))
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
	out := s.MustDocker("run", "--rm", "busybox", "echo", "back")
	if out != "back" {
		t.Errorf("run after the restart: %q", out)
	}
}
