package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"berth/pkg/bus"
)

// StartTimeout bounds `berth-shim start`: creating a container takes well
// under a second, but a loaded machine must not make it fail.
const StartTimeout = 2 * time.Minute

const usage = `usage:
  berth-shim start --config <shim.json>   start the shim of a container (prints {"pid":…,"initPid":…})
  berth-shim daemon --config <shim.json>  the shim itself (run by start)
`

// Main is berth-shim's command line; it returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("berth-shim "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "path of the shim's config (shim.json)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "berth-shim: --config is required")
		return 2
	}
	switch args[0] {
	case "start":
		return Launch(*cfgPath, stdout, stderr)
	case "daemon":
		ready := os.NewFile(3, "ready")
		if _, err := ready.Stat(); err != nil {
			ready = nil
		}
		if err := Daemon(*cfgPath, ready); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// Launch starts the shim daemon of the container described by cfgPath as a
// process of its own session, waits until the container is created, prints
// one bus.ShimStarted JSON line and returns 0; the daemon outlives it. On
// failure it prints the error, leaves nothing running, and returns 1.
func Launch(cfgPath string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "berth-shim: %v\n", err)
		return 1
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return fail(err)
	}
	if cfgPath, err = filepath.Abs(cfgPath); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fail(err)
	}
	logPath := filepath.Join(cfg.StateDir, bus.ShimLogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		logf.Close()
		return fail(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logf.Close()
		return fail(err)
	}
	cmd := exec.Command(self, "daemon", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	logf.Close()
	if err != nil {
		pr.Close()
		return fail(fmt.Errorf("start shim daemon: %w", err))
	}

	pr.SetReadDeadline(time.Now().Add(StartTimeout))
	line, rerr := bufio.NewReader(pr).ReadBytes('\n')
	pr.Close()
	var msg readyMsg
	if rerr == nil {
		rerr = json.Unmarshal(line, &msg)
	}
	switch {
	case rerr == nil && msg.Error == "" && msg.Pid > 0:
		out, _ := json.Marshal(msg.ShimStarted)
		fmt.Fprintf(stdout, "%s\n", out)
		cmd.Process.Release()
		return 0
	case rerr == nil:
		// The daemon cleaned up after itself; wait until it is gone.
		waitOrKill(cmd, 10*time.Second)
		return fail(errors.New(msg.Error))
	}
	// The daemon died or hung without a word: make sure of both, then
	// clean the runtime's side.
	cmd.Process.Kill()
	cmd.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec.CommandContext(ctx, cfg.Runtime, "--root", cfg.RuntimeRoot, "delete", "--force", cfg.ID).Run()
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		return fail(fmt.Errorf("the shim did not create the container within %v", StartTimeout))
	}
	return fail(fmt.Errorf("the shim exited during start: %s", tailOf(logPath)))
}

func waitOrKill(cmd *exec.Cmd, t time.Duration) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(t):
		cmd.Process.Kill()
		<-done
	}
}

// tailOf returns the last line of a file, for error messages.
func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "no message (see " + path + ")"
	}
	return lastLine(string(b))
}
