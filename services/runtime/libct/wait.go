package libct

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// WaitForward waits for our child (or adopted grandchild) pid, forwarding
// the usual signals to it, and returns its exit code (128+signal if it was
// killed).
func WaitForward(pid int) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			_ = unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1
		}
		if wpid != pid {
			continue // an adopted orphan
		}
		return ExitCode(ws)
	}
}

// ExitCode converts a wait status like a shell does.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
