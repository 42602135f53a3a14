package containers

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
)

// shimStartTimeout bounds the creation (and start) of a container by its
// shim: it takes well under a second, but a loaded machine must not make it
// fail.
const shimStartTimeout = 2 * time.Minute

// spawnShim runs `berth-shim daemon --config <scPath>` directly as a child
// in a session of its own (no launcher process in between: one exec less
// on every start), and waits for the line it writes on its ready pipe once
// the container is created and started, or has failed. The shim outlives
// the call (and the supervisor): shimReaper reaps it whenever it exits.
// On failure nothing is left: no shim, no runtime container.
func (m *Manager) spawnShim(sc *bus.ShimConfig, scPath string) (*bus.ShimReady, error) {
	logPath := filepath.Join(sc.StateDir, bus.ShimLogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd := exec.Command(m.cfg.ShimBin, "daemon", "--config", scPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Dir = "/"
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	reaped := theShimReaper.prepare()
	err = cmd.Start()
	pw.Close()
	logf.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("start shim daemon: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release() // reaped by pid, through shimReaper
	gone := reaped(pid)

	_ = pr.SetReadDeadline(time.Now().Add(shimStartTimeout))
	line, rerr := bufio.NewReader(pr).ReadBytes('\n')
	pr.Close()
	var ready bus.ShimReady
	if rerr == nil {
		rerr = json.Unmarshal(line, &ready)
	}
	switch {
	case rerr == nil && ready.Error == "" && ready.Pid > 0:
		return &ready, nil
	case rerr == nil:
		// The shim cleaned up after itself: wait until it is gone.
		select {
		case <-gone:
		case <-time.After(10 * time.Second):
			_ = unix.Kill(pid, unix.SIGKILL)
			<-gone
		}
		return &ready, nil
	}
	// The shim died or hung without a word: make sure of both, then clean
	// the runtime's side.
	_ = unix.Kill(pid, unix.SIGKILL)
	<-gone
	m.runtimeDelete(sc.ID)
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("the shim did not create the container within %v", shimStartTimeout)
	}
	return nil, fmt.Errorf("the shim exited during start: %s", tailOf(logPath))
}

// tailOf returns the last line of a file, for error messages.
func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "no message (see " + path + ")"
	}
	return lastLine(string(b))
}

// shimReaper reaps the shims the supervisor started itself (they are its
// children until it exits): on every SIGCHLD it waits, without blocking,
// for each of them by pid — never wait(-1), which would steal the exit of
// the other commands the supervisor runs.
type shimReaper struct {
	once sync.Once
	mu   sync.Mutex
	pids map[int]chan struct{}
	sigc chan os.Signal
}

var theShimReaper = &shimReaper{pids: map[int]chan struct{}{}}

// prepare makes sure SIGCHLD is being watched (before the child starts) and
// returns the function that registers the child's pid; that function's
// channel is closed once the child is reaped.
func (r *shimReaper) prepare() func(pid int) <-chan struct{} {
	r.once.Do(func() {
		r.sigc = make(chan os.Signal, 1)
		signal.Notify(r.sigc, syscall.SIGCHLD)
		go func() {
			for range r.sigc {
				r.reap()
			}
		}()
	})
	return func(pid int) <-chan struct{} {
		c := make(chan struct{})
		r.mu.Lock()
		r.pids[pid] = c
		r.mu.Unlock()
		r.reap() // it may have exited before it was registered
		return c
	}
}

func (r *shimReaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, c := range r.pids {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			wpid, err = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if wpid == pid || errors.Is(err, unix.ECHILD) {
			delete(r.pids, pid)
			close(c)
		}
	}
}
