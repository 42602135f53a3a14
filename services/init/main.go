// Command berth-init is the small init `docker run --init` makes PID 1 of a
// container, bind-mounted read-only at /sbin/docker-init as Docker mounts
// its tini. It runs the command given after "--" in a process group of its
// own (the terminal's foreground group when stdin is a terminal), forwards
// every signal it receives to it, reaps every process reparented to it, and
// exits with the command's status (128+signal when a signal killed it), at
// which point the kernel kills whatever is left in the pid namespace.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// notForwarded are the signals that are not the child's business: SIGCHLD
// is ours, the synchronous ones concern this process only (as tini), and
// SIGURG is the Go runtime's preemption signal.
var notForwarded = map[syscall.Signal]bool{
	syscall.SIGCHLD: true, syscall.SIGURG: true,
	syscall.SIGFPE: true, syscall.SIGILL: true, syscall.SIGSEGV: true, syscall.SIGBUS: true,
	syscall.SIGABRT: true, syscall.SIGTRAP: true, syscall.SIGSYS: true,
	syscall.SIGTTIN: true, syscall.SIGTTOU: true,
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "docker-init: usage: docker-init [--] COMMAND [ARGS...]")
		return 1
	}
	// Catch everything before the child exists, so that no signal sent to
	// PID 1 meanwhile is lost (PID 1 ignores what it has no handler for).
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-init: %v\n", err)
		return 127
	}
	attr := &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Sys: &syscall.SysProcAttr{Setpgid: true}}
	if isTerminal(0) {
		attr.Sys = &syscall.SysProcAttr{Foreground: true, Ctty: 0}
	}
	child, err := os.StartProcess(path, args, attr)
	if err != nil && attr.Sys.Foreground {
		// a terminal that is not our controlling one
		attr.Sys = &syscall.SysProcAttr{Setpgid: true}
		child, err = os.StartProcess(path, args, attr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-init: exec %s: %v\n", args[0], err)
		if os.IsPermission(err) {
			return 126
		}
		return 127
	}
	pid := child.Pid
	for sig := range sigs {
		s, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		if s != syscall.SIGCHLD {
			if !notForwarded[s] {
				_ = syscall.Kill(pid, s)
			}
			continue
		}
		if code, done := reap(pid); done {
			return code
		}
	}
	return 0
}

// reap collects every child that has ended and reports the status of pid
// once it is among them.
func reap(pid int) (code int, done bool) {
	for {
		var ws syscall.WaitStatus
		p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || p <= 0 {
			return code, done
		}
		if p == pid {
			done = true
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ws.ExitStatus()
			}
		}
	}
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
