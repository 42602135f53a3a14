package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"berth/tests/stack"
)

// TestSoak (make soak; BERTH_SOAK=1, BERTH_SOAK_N containers, default 200)
// runs containers through create/start/stop/remove on a few workers while
// the supervisor is killed (SIGKILL) or restarted (SIGTERM; the embedded
// NATS restarts with it) at random, and checks that every container's
// recorded state and exit code match what really happened.
func TestSoak(t *testing.T) {
	soakCount(t)
	soak(t, newStack(t))
}

// TestSoakExternalBus is TestSoak on an external NATS server (deploy/nats.conf,
// shims admitted by auth callout) that is also killed (SIGKILL) or stopped
// (SIGTERM) and started again at random, on its own: the bus may be away
// while the supervisor restarts, and the other way round.
func TestSoakExternalBus(t *testing.T) {
	soakCount(t)
	soak(t, newExtStack(t))
}

// soakCount is the number of containers of a soak test, which runs only
// when asked for.
func soakCount(t *testing.T) int {
	if os.Getenv("BERTH_SOAK") == "" {
		t.Skip("soak test: run with make soak (BERTH_SOAK=1)")
	}
	if v, err := strconv.Atoi(os.Getenv("BERTH_SOAK_N")); err == nil && v > 0 {
		return v
	}
	return 200
}

func soak(t *testing.T, s *stack.Stack) {
	n := soakCount(t)
	var (
		mu                           sync.Mutex
		kills, restarts, busRestarts int
		lost, mismatched             []string
		done                         atomic.Int64
		retries                      atomic.Int64
	)
	// retry runs a docker command until it succeeds or ok says its error is
	// an answer (the command was applied before an outage cut its reply).
	retry := func(ok func(errOut string) bool, args ...string) (string, bool) {
		deadline := time.Now().Add(90 * time.Second)
		for {
			out, errOut, code := s.Docker(args...)
			if code == 0 || (ok != nil && ok(errOut)) {
				return out, true
			}
			if time.Now().After(deadline) {
				t.Logf("docker %v: giving up: %s", args, errOut)
				return "", false
			}
			retries.Add(1)
			time.Sleep(300 * time.Millisecond)
		}
	}
	stopChaos := make(chan struct{})
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(1500+rand.IntN(3000)) * time.Millisecond):
			}
			if rand.IntN(3) > 0 {
				s.KillSupervisor(syscall.SIGKILL)
				mu.Lock()
				kills++
				mu.Unlock()
			} else {
				s.KillSupervisor(syscall.SIGTERM)
				mu.Lock()
				restarts++
				mu.Unlock()
			}
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
			s.StartSupervisor()
		}
	}()
	busDone := make(chan struct{})
	go func() {
		defer close(busDone)
		if s.NATS == nil {
			return
		}
		for {
			select {
			case <-stopChaos:
				return
			case <-time.After(time.Duration(2000+rand.IntN(4000)) * time.Millisecond):
			}
			s.NATS.Stop([]syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}[rand.IntN(2)])
			mu.Lock()
			busRestarts++
			mu.Unlock()
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
			s.NATS.Start()
		}
	}()

	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				name := fmt.Sprintf("soak-%d", i)
				stop := rand.IntN(3) == 0
				code := rand.IntN(6)
				cmd := fmt.Sprintf("sleep 0.%d; exit %d", rand.IntN(10), code)
				if stop {
					cmd = "sleep 300"
				}
				conflict := func(e string) bool { return strings.Contains(e, "is already in use") }
				if _, ok := retry(conflict, "create", "--name", name, "busybox", "sh", "-c", cmd); !ok {
					mu.Lock()
					lost = append(lost, name+": create")
					mu.Unlock()
					continue
				}
				retry(nil, "start", name)
				if stop {
					time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
					retry(nil, "stop", "-t", "1", name)
				}
				// the recorded exit must match
				var c inspect
				deadline := time.Now().Add(60 * time.Second)
				for {
					var ok bool
					c, ok = inspectOf(t, s, name)
					if ok && c.State.Status == "exited" || time.Now().After(deadline) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				want := []int{code}
				if stop {
					want = []int{137, 143}
				}
				if c.State.Status != "exited" || (c.State.ExitCode != want[0] && (len(want) == 1 || c.State.ExitCode != want[1])) {
					mu.Lock()
					mismatched = append(mismatched, fmt.Sprintf("%s: %s exit %d (%q), want exit %v", name, c.State.Status, c.State.ExitCode, c.State.Error, want))
					mu.Unlock()
				}
				gone := func(e string) bool { return strings.Contains(e, "No such container") }
				retry(gone, "rm", "-f", name)
				done.Add(1)
			}
		}()
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(stopChaos)
	<-chaosDone
	<-busDone

	waitAPI(t, s) // the bus or the supervisor may have just come back
	left := allIDs(t, s)
	probs := checkReality(t, s, 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	recordsLost := len(lost) + len(mismatched) + len(left)
	bus := "the embedded NATS restarted with every one"
	if s.NATS != nil {
		bus = fmt.Sprintf("%d restarts of the external NATS (SIGKILL or SIGTERM)", busRestarts)
	}
	t.Logf("soak: %d containers in %v, %d supervisor kills (SIGKILL), %d supervisor restarts (SIGTERM), %s, %d retried commands, records lost: %d",
		done.Load(), time.Since(t0).Round(time.Second), kills, restarts, bus, retries.Load(), recordsLost)
	fmt.Printf("SOAK %s containers=%d kills=%d restarts=%d nats_restarts=%d retries=%d records_lost=%d\n", t.Name(), done.Load(), kills, restarts, busRestarts, retries.Load(), recordsLost)
	for _, l := range lost {
		t.Errorf("lost: %s", l)
	}
	for _, m := range mismatched {
		t.Errorf("mismatch: %s", m)
	}
	if len(left) > 0 {
		t.Errorf("%d containers left after their removal", len(left))
	}
	if len(probs) > 0 {
		t.Errorf("records do not match reality: %v", probs)
	}
}
