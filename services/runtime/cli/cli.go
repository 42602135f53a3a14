// Package cli is berth-runtime's command line, modelled on runc's so that
// containerd's runc shim (and berth's shim) can drive it unchanged: the
// same global flags, sub-commands, flags and exit statuses, errors as one
// line on stderr and, with --log-format json, as {"level","msg","time"}
// lines in --log, which is where containerd looks for them.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/services/runtime/libct"
)

// Version is printed by --version.
const Version = "0.1.0"

// DefaultRoot is where container state lives.
const DefaultRoot = "/run/berth-runtime"

var processStart = time.Now()

type globals struct {
	root      string
	logFile   string
	logFormat string
	debug     bool
	logw      io.Writer
}

func (g *globals) log(level, format string, args ...any) {
	if level == "debug" && !g.debug {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if level == "debug" {
		msg = fmt.Sprintf("+%.2fms %s", float64(time.Since(processStart).Microseconds())/1000, msg)
	}
	if g.logw == nil {
		if level == "warning" {
			fmt.Fprintln(os.Stderr, msg)
		}
		return
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if g.logFormat == "json" {
		b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": now})
		fmt.Fprintf(g.logw, "%s\n", b)
	} else {
		fmt.Fprintf(g.logw, "time=%q level=%s msg=%q\n", now, level, msg)
	}
}

const usage = `berth-runtime: an OCI container runtime (runc compatible command line)

usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [ARGS]

commands: create start run state kill delete exec ps pause resume list update features spec
`

// Main runs the command line and returns the exit status.
func Main(args []string) int {
	if len(args) > 1 && args[1] == "init" {
		libct.Init()
		return 1
	}
	g := &globals{root: DefaultRoot, logFormat: "text"}
	fs := newFlags([]string{"debug", "systemd-cgroup", "rootless", "help", "version"}, []string{"root", "log", "log-format", "criu"}, map[string]string{"h": "help", "v": "version"})
	fs.stopAfter = 1
	if err := fs.parse(args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if fs.boolean("version") {
		fmt.Printf("berth-runtime version %s\nspec: %s\n", Version, specVersion())
		return 0
	}
	if fs.boolean("help") || len(fs.args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		if fs.boolean("help") {
			return 0
		}
		return 1
	}
	if v := fs.str("root"); v != "" {
		g.root = v
	}
	if abs, err := filepath.Abs(g.root); err == nil {
		g.root = abs
	}
	g.debug = fs.boolean("debug")
	g.logFile = fs.str("log")
	if v := fs.str("log-format"); v != "" {
		if v != "text" && v != "json" {
			fmt.Fprintf(os.Stderr, "invalid log-format %q\n", v)
			return 1
		}
		g.logFormat = v
	}
	if g.logFile != "" {
		f, err := os.OpenFile(g.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		g.logw = f
	}
	libct.Warnf = func(format string, a ...any) { g.log("warning", format, a...) }
	if fs.boolean("systemd-cgroup") {
		g.log("warning", "systemd cgroup driver not supported; using cgroupfs")
	}
	cmd, rest := fs.args[0], fs.args[1:]
	code, err := dispatch(g, cmd, rest)
	if err != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " ")
		g.log("error", "%s", msg)
		fmt.Fprintln(os.Stderr, "berth-runtime: "+msg)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func dispatch(g *globals, cmd string, args []string) (int, error) {
	switch cmd {
	case "create":
		return 0, cmdCreate(g, args)
	case "start":
		return 0, withID(args, nil, nil, func(f *flagSet, id string) error { return libct.Start(g.root, id) })
	case "run":
		return cmdRun(g, args)
	case "state":
		return 0, withID(args, nil, nil, func(f *flagSet, id string) error { return cmdState(g, id) })
	case "kill":
		return 0, cmdKill(g, args)
	case "delete":
		return 0, withID(args, []string{"force"}, map[string]string{"f": "force"}, func(f *flagSet, id string) error {
			return libct.Delete(g.root, id, f.boolean("force"))
		})
	case "exec":
		return cmdExec(g, args)
	case "ps":
		return 0, cmdPs(g, args)
	case "pause":
		return 0, withID(args, nil, nil, func(f *flagSet, id string) error { return libct.Pause(g.root, id) })
	case "resume":
		return 0, withID(args, nil, nil, func(f *flagSet, id string) error { return libct.Resume(g.root, id) })
	case "list":
		return 0, cmdList(g, args)
	case "update":
		return 0, cmdUpdate(g, args)
	case "features":
		return 0, cmdFeatures()
	case "spec":
		return 0, cmdSpec(args)
	}
	return 1, fmt.Errorf("unknown command %q", cmd)
}

// withID parses flags and exactly one container id.
func withID(args, bools []string, alias map[string]string, fn func(*flagSet, string) error) error {
	f := newFlags(bools, nil, alias)
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return errors.New("exactly one container id is required")
	}
	return fn(f, f.args[0])
}

func cmdCreate(g *globals, args []string) error {
	f := newFlags([]string{"no-pivot", "no-new-keyring", "detach"}, []string{"bundle", "pid-file", "console-socket", "preserve-fds", "notify-socket"}, map[string]string{"b": "bundle"})
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return errors.New("exactly one container id is required")
	}
	_, err := create(g, f, f.args[0])
	return err
}

func create(g *globals, f *flagSet, id string) (*libct.State, error) {
	pf, err := f.integer("preserve-fds")
	if err != nil {
		return nil, err
	}
	bundle := f.str("bundle")
	if bundle == "" {
		bundle = "."
	}
	pidFile := f.str("pid-file")
	if pidFile != "" {
		if pidFile, err = filepath.Abs(pidFile); err != nil {
			return nil, err
		}
	}
	return libct.Create(libct.CreateOpts{
		Root: g.root, ID: id, Bundle: bundle, PidFile: pidFile,
		ConsoleSocket: f.str("console-socket"), PreserveFds: pf,
		NoPivot: f.boolean("no-pivot"), NoNewKeyring: f.boolean("no-new-keyring"),
		Debug: g.debug, Logf: g.log,
	})
}

func cmdRun(g *globals, args []string) (int, error) {
	f := newFlags([]string{"no-pivot", "no-new-keyring", "detach", "keep"}, []string{"bundle", "pid-file", "console-socket", "preserve-fds", "notify-socket"}, map[string]string{"b": "bundle", "d": "detach"})
	if err := f.parse(args); err != nil {
		return 1, err
	}
	if len(f.args) != 1 {
		return 1, errors.New("exactly one container id is required")
	}
	id := f.args[0]
	detach := f.boolean("detach")
	if !detach {
		// Adopt the init even if it ends up a grandchild.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	st, err := create(g, f, id)
	if err != nil {
		return 1, err
	}
	if err := libct.Start(g.root, id); err != nil {
		_ = libct.Delete(g.root, id, true)
		return 1, err
	}
	if detach {
		return 0, nil
	}
	code := libct.WaitForward(st.Pid)
	if !f.boolean("keep") {
		if err := libct.Delete(g.root, id, true); err != nil {
			g.log("warning", "delete: %v", err)
		}
	}
	return code, nil
}

func cmdState(g *globals, id string) error {
	st, err := libct.Load(g.root, id)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(st.OCI(st.Status()), "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// ParseSignal accepts KILL, SIGKILL, kill and 9.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		sig = rtSignal(name)
	}
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

// rtSignal parses SIGRTMIN, SIGRTMIN+N, SIGRTMAX, SIGRTMAX-N.
func rtSignal(name string) unix.Signal {
	base, rest := 0, ""
	switch {
	case strings.HasPrefix(name, "SIGRTMIN"):
		base, rest = 34, name[len("SIGRTMIN"):]
	case strings.HasPrefix(name, "SIGRTMAX"):
		base, rest = 64, name[len("SIGRTMAX"):]
	default:
		return 0
	}
	n := 0
	if rest != "" {
		var err error
		if n, err = strconv.Atoi(rest); err != nil {
			return 0
		}
	}
	if s := base + n; s >= 34 && s <= 64 {
		return unix.Signal(s)
	}
	return 0
}

func cmdKill(g *globals, args []string) error {
	f := newFlags([]string{"all"}, nil, map[string]string{"a": "all"})
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) < 1 || len(f.args) > 2 {
		return errors.New("usage: kill [--all] ID [SIGNAL]")
	}
	sig := unix.SIGTERM
	if len(f.args) == 2 {
		var err error
		if sig, err = ParseSignal(f.args[1]); err != nil {
			return err
		}
	}
	return libct.Kill(g.root, f.args[0], sig, f.boolean("all"))
}
