package shim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/bus"
	"berth/pkg/bus/natsbus"
	"berth/pkg/busyboxfs"
	"berth/pkg/jsonlog"
)

var (
	shimBin  string // built once
	rootfs   string // one busybox rootfs, read-only, shared by every bundle
	runtimeB string
	baseSpec []byte
	skipWhy  string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipWhy = "needs root: runs containers with runc"
		return m.Run()
	}
	runtimeB = os.Getenv("BERTH_TEST_RUNTIME")
	if runtimeB == "" {
		runtimeB = "runc"
	}
	if p, err := exec.LookPath(runtimeB); err != nil {
		skipWhy = "no OCI runtime: " + err.Error()
		return m.Run()
	} else {
		runtimeB = p
	}
	dir, err := os.MkdirTemp("", "shimtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shimBin = filepath.Join(dir, "berth-shim")
	// Built as the Makefile should build it: static, without cgo (libc
	// alone costs a shim about 1 MB of resident memory).
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", shimBin, "berth/services/shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("SHIMTEST_PLAIN_BUILD") != "" { // plain `go build` (cgo, dynamic)
		build = exec.Command("go", "build", "-o", shimBin, "berth/services/shim")
	}
	if os.Getenv("SHIMTEST_RACE") != "" { // the shim itself under the race detector
		build = exec.Command("go", "build", "-race", "-o", shimBin, "berth/services/shim")
	}
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build berth-shim: %v\n%s", err, out)
		return 1
	}
	rootfs = filepath.Join(dir, "rootfs")
	if err := busyboxfs.Build(rootfs); err != nil {
		skipWhy = "no busybox rootfs: " + err.Error()
		return m.Run()
	}
	specDir := filepath.Join(dir, "spec")
	os.Mkdir(specDir, 0o755)
	cmd := exec.Command(runtimeB, "spec")
	cmd.Dir = specDir
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "%s spec: %v\n%s", runtimeB, err, out)
		return 1
	}
	if baseSpec, err = os.ReadFile(filepath.Join(specDir, "config.json")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		// runc deletes each container's cgroup, not their common parent.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/berth-test")
		for _, d := range dirs {
			os.Remove(d)
		}
	}()
	return m.Run()
}

func needRoot(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}

// natsServer runs an in-process NATS server on port (-1: random).
func natsServer(t *testing.T, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	return s
}

type env struct {
	t    *testing.T
	srv  *server.Server
	nc   *nats.Conn
	cfg  bus.ShimConfig
	path string // shim.json
	out  chan *nats.Msg
}

var seq int

type opts struct {
	args      []string
	tty       bool
	openStdin bool
	stdinOnce bool
	maxSize   int64
	maxFiles  int
	runtime   string
	memLimit  int64
}

// newEnv writes a bundle and a shim config for a container running args.
func newEnv(t *testing.T, o opts) *env {
	t.Helper()
	needRoot(t)
	seq++
	id := fmt.Sprintf("shimtest%d-%d", os.Getpid(), seq)
	dir := t.TempDir()
	var spec specs.Spec
	if err := json.Unmarshal(baseSpec, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Root = &specs.Root{Path: rootfs, Readonly: true}
	spec.Process.Args = o.args
	spec.Process.Terminal = o.tty
	spec.Process.Env = []string{"PATH=/bin:/usr/bin:/sbin", "TERM=xterm"}
	spec.Hostname = "shimtest"
	spec.Linux.CgroupsPath = "/berth-test/" + id
	if o.memLimit > 0 {
		spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &o.memLimit, Swap: &o.memLimit}
	}
	var ns []specs.LinuxNamespace
	for _, n := range spec.Linux.Namespaces {
		if n.Type != specs.NetworkNamespace {
			ns = append(ns, n)
		}
	}
	spec.Linux.Namespaces = ns
	bundle := filepath.Join(dir, "bundle")
	os.Mkdir(bundle, 0o755)
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := natsServer(t, -1)
	t.Cleanup(srv.Shutdown)
	rt := o.runtime
	if rt == "" {
		rt = runtimeB
	}
	e := &env{t: t, srv: srv}
	e.cfg = bus.ShimConfig{
		ID: id, Node: "n1", Bundle: bundle, Runtime: rt, RuntimeRoot: filepath.Join(dir, "rt"),
		NATSURL: srv.ClientURL(), LogPath: filepath.Join(dir, "containers", id, id+"-json.log"),
		LogMaxSize: o.maxSize, LogMaxFiles: o.maxFiles,
		Tty: o.tty, OpenStdin: o.openStdin, StdinOnce: o.stdinOnce,
		StateDir: filepath.Join(dir, "shims", id),
	}
	os.MkdirAll(e.cfg.StateDir, 0o700)
	e.path = filepath.Join(e.cfg.StateDir, bus.ShimConfigFile)
	b, _ = json.Marshal(e.cfg)
	os.WriteFile(e.path, b, 0o600)
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	e.out = make(chan *nats.Msg, 10000)
	if _, err := nc.ChanSubscribe(bus.IOOut("n1", id), e.out); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	t.Cleanup(func() {
		// Leave nothing behind, whatever the test did. A shim still at
		// work (its runtime delete runs after the exit report) is asked
		// to finish first, then killed.
		if b, err := os.ReadFile(filepath.Join(e.cfg.StateDir, bus.ShimPidFile)); err == nil {
			if pid, _ := strconv.Atoi(string(b)); pid > 0 && alive(pid) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				natsbus.Call(ctx, e.nc, bus.Shim(e.cfg.Node, e.cfg.ID, bus.ShimShutdown), struct{}{}, nil)
				cancel()
				for deadline := time.Now().Add(5 * time.Second); alive(pid) && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command(runtimeB, "--root", e.cfg.RuntimeRoot, "delete", "--force", id).Run()
		if b, err := os.ReadFile(filepath.Join(e.cfg.StateDir, bus.ShimLogFile)); err == nil {
			if bytes.Contains(b, []byte("DATA RACE")) || bytes.Contains(b, []byte("panic:")) {
				t.Errorf("shim.log:\n%s", b)
			}
		}
	})
	return e
}

// launch runs `berth-shim start` and returns what it printed.
func (e *env) launch() (bus.ShimStarted, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(shimBin, "start", "--config", e.path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var st bus.ShimStarted
	if err == nil {
		if jerr := json.Unmarshal(stdout.Bytes(), &st); jerr != nil {
			err = fmt.Errorf("bad output %q: %w", stdout.String(), jerr)
		}
	}
	return st, stderr.String(), err
}

func (e *env) mustLaunch() bus.ShimStarted {
	e.t.Helper()
	st, stderr, err := e.launch()
	if err != nil {
		e.t.Fatalf("berth-shim start: %v: %s", err, stderr)
	}
	if !alive(st.Pid) || !alive(st.InitPid) {
		e.t.Fatalf("pids not alive: %+v", st)
	}
	return st
}

func (e *env) call(verb string, req, resp any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return natsbus.Call(ctx, e.nc, bus.Shim(e.cfg.Node, e.cfg.ID, verb), req, resp)
}

func (e *env) start() {
	e.t.Helper()
	var r bus.ShimStartResponse
	if err := e.call(bus.ShimStart, struct{}{}, &r); err != nil {
		e.t.Fatal(err)
	}
}

// reports answers the shim's exit reports on the bus.
func (e *env) reports(nc *nats.Conn) chan bus.ExitReport {
	c := make(chan bus.ExitReport, 10)
	_, err := nc.Subscribe(bus.Report(e.cfg.Node, e.cfg.ID, bus.ReportExit), func(m *nats.Msg) {
		var r bus.ExitReport
		json.Unmarshal(m.Data, &r)
		c <- r
		m.Respond(bus.EncodeReply(nil, nil))
	})
	if err != nil {
		e.t.Fatal(err)
	}
	nc.Flush()
	return c
}

// output collects IOOut until EOF.
func (e *env) output() (stdout, stderr string) {
	e.t.Helper()
	var o, er strings.Builder
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-e.out:
			if m.Header.Get(bus.HeaderEOF) == "1" {
				if len(m.Data) != 0 {
					e.t.Errorf("EOF message with data %q", m.Data)
				}
				return o.String(), er.String()
			}
			switch s := m.Header.Get(bus.HeaderStream); s {
			case "stdout":
				o.Write(m.Data)
			case "stderr":
				er.Write(m.Data)
			default:
				e.t.Fatalf("bad stream header %q", s)
			}
		case <-timeout:
			e.t.Fatalf("no EOF; so far stdout %q stderr %q", o.String(), er.String())
		}
	}
}

func waitReport(t *testing.T, c chan bus.ExitReport) bus.ExitReport {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no exit report")
	}
	return bus.ExitReport{}
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is not alive.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits for a process to end (the shim is not our child).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) runtimeHas() bool {
	out, _ := exec.Command(runtimeB, "--root", e.cfg.RuntimeRoot, "list", "-q").Output()
	return strings.Contains(string(out), e.cfg.ID)
}

func TestOutputLogAndExitReport(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sh", "-c", "echo out1; echo err1 >&2; echo out2; printf partial; exit 7"}})
	reps := e.reports(e.nc)
	st := e.mustLaunch()
	var state bus.ShimStateResponse
	if err := e.call(bus.ShimState, nil, &state); err != nil || state.Status != "created" || state.Pid != st.InitPid {
		t.Fatalf("state %+v %v", state, err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, bus.ShimPidFile)); err != nil {
		t.Fatal(err)
	}
	e.start()
	stdout, stderr := e.output()
	if stdout != "out1\nout2\npartial" || stderr != "err1\n" {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}
	r := waitReport(t, reps)
	if r.ExitCode != 7 || r.ID != e.cfg.ID || r.Pid != st.InitPid || r.ExitedAt.IsZero() || r.OOMKilled {
		t.Fatalf("report %+v", r)
	}
	waitGone(t, st.Pid)
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, bus.ShimExitFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("exit.json left: %v", err)
	}
	if e.runtimeHas() {
		t.Fatal("runtime still has the container")
	}
	// The json-file log.
	data, err := os.ReadFile(e.cfg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 4 {
		t.Fatalf("log:\n%s", data)
	}
	var streams, logs string
	for _, l := range lines {
		var rec struct{ Log, Stream, Time string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, rec.Time); err != nil {
			t.Fatal(err)
		}
		streams += rec.Stream[3:] + " "
		if rec.Stream == "stdout" {
			logs += rec.Log
		}
	}
	if logs != "out1\nout2\npartial" || !strings.Contains(streams, "err") {
		t.Fatalf("log:\n%s", data)
	}
}

func TestLaunchFailures(t *testing.T) {
	t.Run("bad runtime", func(t *testing.T) {
		e := newEnv(t, opts{args: []string{"true"}, runtime: "/nonexistent/runc"})
		_, stderr, err := e.launch()
		if err == nil || !strings.Contains(stderr, "/nonexistent/runc") {
			t.Fatalf("err %v stderr %q", err, stderr)
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v", err)
		}
		e.checkNothingLeft()
	})
	t.Run("bad binary", func(t *testing.T) {
		e := newEnv(t, opts{args: []string{"/no/such/binary"}})
		_, stderr, err := e.launch()
		if err == nil || !strings.Contains(stderr, "/no/such/binary") {
			t.Fatalf("err %v stderr %q", err, stderr)
		}
		t.Logf("error: %s", stderr)
		e.checkNothingLeft()
	})
	t.Run("bad config", func(t *testing.T) {
		needRoot(t)
		p := filepath.Join(t.TempDir(), "shim.json")
		os.WriteFile(p, []byte(`{"id":"a.b"}`), 0o600)
		out, err := exec.Command(shimBin, "start", "--config", p).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "invalid subject token") || !strings.Contains(string(out), "bundle is missing") {
			t.Fatalf("%v %s", err, out)
		}
	})
	t.Run("no bus", func(t *testing.T) {
		e := newEnv(t, opts{args: []string{"true"}})
		e.srv.Shutdown()
		_, stderr, err := e.launch()
		if err == nil || !strings.Contains(stderr, "NATS") {
			t.Fatalf("err %v stderr %q", err, stderr)
		}
		e.checkNothingLeft()
	})
}

func (e *env) checkNothingLeft() {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.cfg.StateDir, bus.ShimPidFile))
	if err == nil {
		pid, _ := strconv.Atoi(string(b))
		waitGone(e.t, pid)
	}
	if e.runtimeHas() {
		e.t.Fatal("runtime still has the container")
	}
}

func TestStdin(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sh", "-c", "cat; echo done >&2"}, openStdin: true, stdinOnce: true})
	reps := e.reports(e.nc)
	e.mustLaunch()
	e.start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range []string{"hello ", "world\n", "second line\n"} {
		m, err := e.nc.RequestWithContext(ctx, bus.IOIn(e.cfg.Node, e.cfg.ID), []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.DecodeReply(m.Data, nil); err != nil {
			t.Fatal(err)
		}
	}
	eof := &nats.Msg{Subject: bus.IOIn(e.cfg.Node, e.cfg.ID), Header: nats.Header{bus.HeaderEOF: []string{"1"}}}
	if _, err := e.nc.RequestMsgWithContext(ctx, eof); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := e.output()
	if stdout != "hello world\nsecond line\n" || stderr != "done\n" {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}
	if r := waitReport(t, reps); r.ExitCode != 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestTty(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sh", "-c", "read x; tty; stty size; echo got $x; exit 3"}, tty: true, openStdin: true})
	reps := e.reports(e.nc)
	e.mustLaunch()
	e.start()
	if err := e.call(bus.ShimResize, bus.ShimResizeRequest{Height: 33, Width: 111}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := e.nc.Request(bus.IOIn(e.cfg.Node, e.cfg.ID), []byte("hi\n"), 10*time.Second)
	if err != nil || bus.DecodeReply(m.Data, nil) != nil {
		t.Fatal(err)
	}
	stdout, stderr := e.output()
	for _, want := range []string{"/dev/pts/0", "33 111", "got hi"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout %q lacks %q", stdout, want)
		}
	}
	if stderr != "" {
		t.Errorf("stderr %q with a tty", stderr)
	}
	if r := waitReport(t, reps); r.ExitCode != 3 {
		t.Fatalf("report %+v", r)
	}
}

func TestKillMetricsAndParentDeath(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sh", "-c", "echo ready; exec sleep 1000"}})
	reps := e.reports(e.nc)

	// The launcher runs under a parent that dies (SIGKILL, whole process
	// group) once the launcher has answered.
	outFile := filepath.Join(t.TempDir(), "out")
	parent := exec.Command("sh", "-c", `"$0" start --config "$1" > "$2" && echo launched && exec sleep 1000`, shimBin, e.path, outFile)
	parent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pout, _ := parent.StdoutPipe()
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 9)
	if _, err := io.ReadFull(pout, line); err != nil || string(line) != "launched\n" {
		t.Fatalf("launcher: %q %v", line, err)
	}
	syscall.Kill(-parent.Process.Pid, syscall.SIGKILL)
	parent.Wait()
	var st bus.ShimStarted
	b, _ := os.ReadFile(outFile)
	if err := json.Unmarshal(b, &st); err != nil || !alive(st.Pid) {
		t.Fatalf("launch output %q: %v", b, err)
	}
	e.start()
	if m := <-e.out; string(m.Data) != "ready\n" {
		t.Fatalf("got %q", m.Data)
	}
	var state bus.ShimStateResponse
	if err := e.call(bus.ShimState, nil, &state); err != nil || state.Status != "running" {
		t.Fatalf("state %+v %v", state, err)
	}
	if err := e.call(bus.ShimStart, nil, nil); err == nil {
		t.Fatal("second start accepted")
	}

	// Metrics, and the shim's memory with a running container.
	addr, err := os.ReadFile(filepath.Join(e.cfg.StateDir, bus.ShimMetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + string(addr) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mb), `berth_shim_output_bytes_total{stream="stdout"} 6`) {
		t.Fatalf("metrics:\n%s", mb)
	}
	busy := memory(st.Pid)
	time.Sleep(300 * time.Millisecond)
	idle := memory(st.Pid)
	t.Logf("shim memory with a running container: busy %s; idle %s", busy, idle)
	var rss int
	fmt.Sscanf(idle, "VmRSS=%d", &rss)
	if os.Getenv("SHIMTEST_RACE") == "" && rss > 6000 {
		t.Errorf("an idle shim uses %d kB (target: about 4300)", rss)
	}
	if os.Getenv("SHIMTEST_SMAPS") != "" {
		out, _ := exec.Command("sh", "-c", fmt.Sprintf("awk '/^[0-9a-f]+-/{name=$0} /^Rss:/{print $2, name}' /proc/%d/smaps | sort -rn | head -12; grep -E 'Threads' /proc/%d/status", st.Pid, st.Pid)).CombinedOutput()
		t.Logf("%s", out)
		resp, err := http.Get("http://" + string(addr) + "/metrics")
		if err == nil {
			mb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("%s", mb)
		}
	}
	if err := e.call(bus.ShimKill, bus.ShimKillRequest{Signal: int(syscall.SIGKILL)}, nil); err != nil {
		t.Fatal(err)
	}
	e.output()
	if r := waitReport(t, reps); r.ExitCode != 137 {
		t.Fatalf("report %+v", r)
	}
	waitGone(t, st.Pid)
}

func TestExitReportSurvivesBusOutage(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sleep", "1000"}})
	st := e.mustLaunch()
	e.start()
	port := e.srv.Addr().(interface{ String() string }).String()
	_, portStr, _ := strings.Cut(port, ":")
	p, _ := strconv.Atoi(portStr)
	e.srv.Shutdown()
	e.srv.WaitForShutdown()

	// The container dies while the bus is away.
	if out, err := exec.Command(runtimeB, "--root", e.cfg.RuntimeRoot, "kill", e.cfg.ID, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	exitFile := filepath.Join(e.cfg.StateDir, bus.ShimExitFile)
	deadline := time.Now().Add(20 * time.Second)
	var rep bus.ExitReport
	for {
		b, err := os.ReadFile(exitFile)
		if err == nil && json.Unmarshal(b, &rep) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exit.json")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rep.ExitCode != 137 {
		t.Fatalf("exit.json %+v", rep)
	}
	if !alive(st.Pid) {
		t.Fatal("shim gone before delivering")
	}

	srv := natsServer(t, p)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := waitReport(t, e.reports(nc))
	if r.ExitCode != 137 || !r.ExitedAt.Equal(rep.ExitedAt) {
		t.Fatalf("report %+v, exit.json %+v", r, rep)
	}
	waitGone(t, st.Pid)
	if _, err := os.Stat(exitFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("exit.json left")
	}
}

func TestShutdownCreated(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sleep", "1000"}})
	var mu sync.Mutex
	reported := 0
	e.nc.Subscribe(bus.Report(e.cfg.Node, e.cfg.ID, bus.ReportExit), func(m *nats.Msg) {
		mu.Lock()
		reported++
		mu.Unlock()
		m.Respond(bus.EncodeReply(nil, nil))
	})
	st := e.mustLaunch()
	if err := e.call(bus.ShimShutdown, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.Pid)
	waitGone(t, st.InitPid)
	if e.runtimeHas() {
		t.Fatal("runtime still has the container")
	}
	e.nc.Flush()
	mu.Lock()
	defer mu.Unlock()
	if reported != 0 {
		t.Fatal("exit reported after shutdown")
	}
}

func TestLogRotation(t *testing.T) {
	e := newEnv(t, opts{args: []string{"seq", "1", "2000"}, maxSize: 4000, maxFiles: 3})
	reps := e.reports(e.nc)
	e.mustLaunch()
	e.start()
	stdout, _ := e.output()
	var want strings.Builder
	for i := 1; i <= 2000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if stdout != want.String() {
		t.Fatalf("IOOut lost or reordered output (%d bytes, want %d)", len(stdout), want.Len())
	}
	waitReport(t, reps)
	for _, p := range []string{e.cfg.LogPath, e.cfg.LogPath + ".1", e.cfg.LogPath + ".2"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > 4000 {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(e.cfg.LogPath + ".3"); err == nil {
		t.Fatal("too many files")
	}
	var got []string
	jsonlog.Read(context.Background(), e.cfg.LogPath, jsonlog.ReadOptions{Tail: -1}, func(le bus.LogEntry) error {
		got = append(got, le.Log)
		return nil
	})
	if len(got) < 100 || got[len(got)-1] != "2000\n" {
		t.Fatalf("%d records, last %q", len(got), got[len(got)-1])
	}
	first, _ := strconv.Atoi(strings.TrimSpace(got[0]))
	for i, l := range got {
		if l != strconv.Itoa(first+i)+"\n" {
			t.Fatalf("record %d is %q", i, l)
		}
	}
}

// memory reads a process's RSS (anon + file) and PSS, in kB.
func memory(pid int) string {
	var out []string
	for _, f := range []string{"status", "smaps_rollup"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, ":")
			switch k {
			case "VmRSS", "RssAnon", "RssFile", "Pss":
				out = append(out, k+"="+strings.Fields(v)[0])
			}
		}
	}
	return strings.Join(out, " ")
}

func TestOOM(t *testing.T) {
	e := newEnv(t, opts{args: []string{"tail", "/dev/zero"}, memLimit: 16 << 20})
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.oom_control"); err != nil {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			t.Skip("no memory cgroup")
		}
	}
	reps := e.reports(e.nc)
	e.mustLaunch()
	e.start()
	e.output()
	if r := waitReport(t, reps); r.ExitCode != 137 || !r.OOMKilled {
		t.Fatalf("report %+v", r)
	}
}

func TestShutdownStopsReportRetries(t *testing.T) {
	e := newEnv(t, opts{args: []string{"sh", "-c", "exit 2"}})
	st := e.mustLaunch()
	e.start() // nobody answers the report
	e.output()
	exitFile := filepath.Join(e.cfg.StateDir, bus.ShimExitFile)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(exitFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no exit.json")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var state bus.ShimStateResponse
	if err := e.call(bus.ShimState, nil, &state); err != nil || state.Status != "stopped" {
		t.Fatalf("state %+v %v", state, err)
	}
	if err := e.call(bus.ShimShutdown, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.Pid)
	if _, err := os.Stat(exitFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("exit.json left")
	}
}
