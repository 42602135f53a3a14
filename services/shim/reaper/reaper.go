// Package reaper reaps every child of a child-subreaper process and hands
// each exit status to whoever waits for that pid.
//
// A subreaper inherits orphans (the container's init, once `runtime create`
// has exited) and must reap them, but a plain Wait4(-1) loop would steal the
// exit statuses that os/exec's Cmd.Wait expects. So nothing in the process
// may call Cmd.Wait: commands are started with Start, which registers the
// pid under the same lock the reaper dispatches under, and their exit comes
// from Wait. This is containerd's reaper, made pid-addressed.
package reaper

import (
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is how a process ended.
type Exit struct {
	Pid    int
	Status int // exit code; 128+signal when killed by a signal
	Time   time.Time
}

// keepUnclaimed bounds the exits of pids nobody waits for yet (an init whose
// pid is learnt from a pid file after it may already have died).
const keepUnclaimed = 64

var (
	mu        sync.Mutex
	waiters   = map[int]chan Exit{}
	unclaimed []Exit
	started   bool
)

// Start makes the calling process a child subreaper and starts reaping.
func Start() error {
	mu.Lock()
	defer mu.Unlock()
	if started {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_SET_CHILD_SUBREAPER)", err)
	}
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, unix.SIGCHLD)
	started = true
	go func() {
		for range ch {
			reap()
		}
	}()
	return nil
}

func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		e := Exit{Pid: pid, Status: ExitStatus(ws), Time: time.Now()}
		mu.Lock()
		if w, ok := waiters[pid]; ok {
			delete(waiters, pid)
			w <- e
		} else {
			unclaimed = append(unclaimed, e)
			if len(unclaimed) > keepUnclaimed {
				unclaimed = unclaimed[len(unclaimed)-keepUnclaimed:]
			}
		}
		mu.Unlock()
	}
}

// ExitStatus turns a wait status into a shell-style exit code.
func ExitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Run starts cmd (whose Stdin/Stdout/Stderr must be nil or *os.File, so
// that os/exec starts no copying goroutine) and returns a channel that gets
// its exit. Never call cmd.Wait.
func Run(cmd *exec.Cmd) (<-chan Exit, error) {
	mu.Lock()
	defer mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	// The pid is new: an unclaimed exit with it is a dead namesake.
	for i := 0; i < len(unclaimed); i++ {
		if unclaimed[i].Pid == pid {
			unclaimed = append(unclaimed[:i], unclaimed[i+1:]...)
			i--
		}
	}
	ch := make(chan Exit, 1)
	waiters[pid] = ch
	cmd.Process.Release() // close the pidfd; the reaper reaps
	return ch, nil
}

// Wait returns a channel that gets the exit of pid, a process this one
// reaps (a child, or an orphan it inherited as subreaper), even if it has
// already been reaped.
func Wait(pid int) <-chan Exit {
	mu.Lock()
	defer mu.Unlock()
	ch := make(chan Exit, 1)
	for i, e := range unclaimed {
		if e.Pid == pid {
			unclaimed = append(unclaimed[:i], unclaimed[i+1:]...)
			ch <- e
			return ch
		}
	}
	waiters[pid] = ch
	return ch
}

// Forget stops waiting for pid.
func Forget(pid int) {
	mu.Lock()
	delete(waiters, pid)
	mu.Unlock()
}

// Kick reaps now, for callers that know a child has died but fear a lost
// SIGCHLD (signals coalesce; reap loops until no child is left, so it is
// only a safety net).
func Kick() { reap() }
