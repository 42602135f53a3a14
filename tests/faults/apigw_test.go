package faults

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestAPIGWKilled: apigw killed with SIGKILL under load; containers are not
// affected, a restarted apigw serves everything again, and no container was
// created twice by the requests cut short.
func TestAPIGWKilled(t *testing.T) {
	s := newStack(t)
	keep := s.MustDocker("run", "-d", "--name", "keep", "busybox", "sleep", "300")
	pid := mustInspect(t, s, keep).State.Pid
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := map[string]bool{}
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 6; i++ {
				name := "load-" + string(rune('a'+w)) + string(rune('a'+i))
				if _, _, code := s.Docker("run", "-d", "--name", name, "busybox", "true"); code == 0 {
					mu.Lock()
					created[name] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(700 * time.Millisecond)
	s.KillAPIGW(syscall.SIGKILL)
	wg.Wait()
	if !alive(pid) {
		t.Fatal("a container died with apigw")
	}
	s.StartAPIGW()
	if c := mustInspect(t, s, keep); c.State.Status != "running" || c.State.Pid != pid {
		t.Errorf("keep after apigw restart: %+v", c.State)
	}
	// every name at most once, every successful run is there
	names := strings.Fields(s.MustDocker("ps", "-a", "--format", "{{.Names}}"))
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
	}
	for n, k := range seen {
		if k > 1 {
			t.Errorf("%s appears %d times", n, k)
		}
	}
	for n := range created {
		if seen[n] == 0 {
			t.Errorf("%s was created but is gone", n)
		}
	}
	if p := checkReality(t, s, 10*time.Second); len(p) > 0 {
		t.Errorf("records do not match reality: %v", p)
	}
	out := s.MustDocker("run", "--rm", "busybox", "echo", "back")
	if out != "back" {
		t.Errorf("run after the restart: %q", out)
	}
}
