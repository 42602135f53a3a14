package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth/services/shim/reaper"
)

// runtime runs the OCI runtime (runc's command line). Every invocation goes
// through the reaper, never exec.Cmd.Wait.
type runtime struct {
	bin  string
	root string
	log  string // --log, JSON lines
	mu   sync.Mutex
}

func (r *runtime) args(a ...string) []string {
	base := []string{"--root", r.root, "--log", r.log, "--log-format", "json"}
	return append(base, a...)
}

// logOffset is the size of the runtime's log, so that the error of the
// next command can be read from what it appends.
func (r *runtime) logOffset() int64 {
	st, err := os.Stat(r.log)
	if err != nil {
		return 0
	}
	return st.Size()
}

// lastError returns the message of the last error line the runtime wrote to
// its log after off.
func (r *runtime) lastError(off int64) string {
	f, err := os.Open(r.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	var msg string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		var l struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Level == "error" || l.Level == "fatal") && l.Msg != "" {
			msg = l.Msg
		}
	}
	return msg
}

// runError builds the error of a failed runtime command from its log, or
// else from its output.
func (r *runtime) runError(verb string, off int64, out []byte, status int) error {
	if msg := r.lastError(off); msg != "" {
		return fmt.Errorf("OCI runtime %s failed: %s", verb, msg)
	}
	if o := strings.TrimSpace(string(out)); o != "" {
		return fmt.Errorf("OCI runtime %s failed: %s", verb, lastLine(o))
	}
	return fmt.Errorf("OCI runtime %s failed: exit status %d", verb, status)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// run runs the runtime with args and waits for it; its output is collected
// (bounded) for error messages.
func (r *runtime) run(ctx context.Context, args ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	off := r.logOffset()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.bin, r.args(args...)...)
	cmd.Stdout, cmd.Stderr = pw, pw
	exitc, err := reaper.Run(cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("runtime %s: %w", args[0], err)
	}
	outc := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, io.LimitReader(pr, 64*1024))
		io.Copy(io.Discard, pr)
		outc <- b.Bytes()
	}()
	var e reaper.Exit
	select {
	case e = <-exitc:
	case <-ctx.Done():
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		e = <-exitc
	}
	var out []byte
	select {
	case out = <-outc:
	case <-time.After(time.Second): // a grandchild kept the pipe
	}
	pr.Close()
	if e.Status != 0 {
		return out, r.runError(args[0], off, out, e.Status)
	}
	return out, ctx.Err()
}

// create runs `runtime create` with the container's stdio as its own
// (runc's pass-through mode: the runtime hands them to the container).
func (r *runtime) create(ctx context.Context, id, bundle, pidFile, consoleSocket string, stdin, stdout, stderr *os.File) error {
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	return r.runWithStdio(ctx, bundle, append(args, id), stdin, stdout, stderr)
}

// exec runs `runtime exec --detach` for the process in processFile, its
// stdio passed through as create's; it returns once the process runs.
func (r *runtime) exec(ctx context.Context, id, processFile, pidFile, consoleSocket string, stdin, stdout, stderr *os.File) error {
	args := []string{"exec", "--process", processFile, "--detach", "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	return r.runWithStdio(ctx, "", append(args, id), stdin, stdout, stderr)
}

// runWithStdio runs the runtime with the given stdio, which it passes on
// to the container's process; errors come from its log.
func (r *runtime) runWithStdio(ctx context.Context, dir string, args []string, stdin, stdout, stderr *os.File) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	off := r.logOffset()
	cmd := exec.Command(r.bin, r.args(args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Dir = dir
	exitc, err := reaper.Run(cmd)
	if err != nil {
		return fmt.Errorf("runtime %s: %w", args[0], err)
	}
	var e reaper.Exit
	select {
	case e = <-exitc:
	case <-ctx.Done():
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		e = <-exitc
		return fmt.Errorf("runtime %s: %w", args[0], ctx.Err())
	}
	if e.Status != 0 {
		return r.runError(args[0], off, nil, e.Status)
	}
	return nil
}
