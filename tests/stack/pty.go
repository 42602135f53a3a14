package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pty is the docker CLI running on a real pseudo-terminal, as a user at a
// terminal runs it: stdin, stdout and stderr are the pty's slave, which is
// its controlling terminal, so the CLI puts it in raw mode, reads keys from
// it and gets SIGWINCH when Resize changes the window.
type Pty struct {
	t      *Stack
	cmd    *exec.Cmd
	master *os.File
	cancel context.CancelFunc

	mu   sync.Mutex
	out  bytes.Buffer
	read chan struct{} // closed when the master reads EOF or EIO
	done chan struct{} // closed when the CLI has exited
	code int
}

// openPty opens a new pseudo-terminal pair of size rows×cols.
func openPty(rows, cols uint16) (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		m.Close()
		return nil, nil, err
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// DockerPty starts the docker CLI with args on a new 24×80 terminal. The
// CLI is killed when the test ends.
func (s *Stack) DockerPty(args ...string) *Pty {
	s.t.Helper()
	master, slave, err := openPty(24, 80)
	if err != nil {
		s.t.Fatalf("open a pty: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(s.Env(), "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		cancel()
		master.Close()
		slave.Close()
		s.t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	slave.Close()
	p := &Pty{t: s, cmd: cmd, master: master, cancel: cancel, read: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	s.t.Cleanup(p.Close)
	return p
}

// Output is everything the terminal has shown so far.
func (p *Pty) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Expect waits until the terminal has shown want, and fails the test
// after d.
func (p *Pty) Expect(want string, d time.Duration) {
	p.t.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if strings.Contains(p.Output(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.t.Fatalf("the terminal did not show %q in %s; it shows:\n%s", want, d, p.Output())
}

// Send types s on the terminal's keyboard.
func (p *Pty) Send(s string) {
	p.t.t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		p.t.t.Fatalf("write to the pty: %v", err)
	}
}

// Resize changes the terminal's window (the CLI gets SIGWINCH).
func (p *Pty) Resize(rows, cols uint16) {
	p.t.t.Helper()
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		p.t.t.Fatalf("resize the pty: %v", err)
	}
}

// Wait waits up to d for the CLI to exit and returns its exit status.
func (p *Pty) Wait(d time.Duration) int {
	p.t.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.t.Fatalf("the docker CLI did not exit in %s; the terminal shows:\n%s", d, p.Output())
	}
	select {
	case <-p.read:
	case <-time.After(time.Second):
	}
	return p.code
}

// Close kills the CLI if it still runs and closes the terminal.
func (p *Pty) Close() {
	p.cancel()
	<-p.done
	p.master.Close()
}
