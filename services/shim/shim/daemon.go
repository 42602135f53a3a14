package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"berth/pkg/atomicfile"
	"berth/pkg/bus"
	"berth/pkg/bus/natslite"
	"berth/pkg/errdefs"
	"berth/pkg/jsonlog"
	"berth/pkg/netns"
	"berth/services/shim/reaper"
)

// Container states as ShimStateResponse reports them.
const (
	StatusCreated = "created"
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// daemon is the long-lived shim of one container.
type daemon struct {
	cfg     bus.ShimConfig
	log     *slog.Logger
	rt      *runtime
	nc      *natslite.Conn
	logw    *jsonlog.Writer
	io      *stdio
	metrics *metrics
	cgroup  string // cgroupsPath of the container, for OOM

	mu       sync.Mutex
	status   string
	created  bool
	initPid  int
	early    []byte // what the runtime printed before the container existed
	shutdown bool
	logErrAt time.Time

	join   func() error  // waits for the bus connection made during create
	dialed chan struct{} // closed once it is made (or has failed): d.nc is set

	ioWG     sync.WaitGroup
	execs    execTable
	wake     chan struct{} // kicks the exit-report retry loop (shutdown)
	finished chan struct{} // closed when the container is gone and reported
	subs     []*natslite.Subscription
}

// readyMsg is what the daemon tells its launcher (or the supervisor) on fd 3.
type readyMsg = bus.ShimReady

// Daemon runs the shim of the container described by the config file at
// cfgPath. ready is the launcher's pipe (nil when run directly); Daemon
// writes one readyMsg to it once the container is created (or failed).
func Daemon(cfgPath string, ready *os.File) error {
	tuneMemory()
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		tellReady(ready, readyMsg{Error: err.Error()})
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("id", cfg.ID)
	d := &daemon{
		cfg:      *cfg,
		log:      log,
		metrics:  &metrics{},
		status:   StatusCreated,
		wake:     make(chan struct{}, 1),
		finished: make(chan struct{}),
		dialed:   make(chan struct{}),
	}
	d.rt = &runtime{bin: cfg.Runtime, root: cfg.RuntimeRoot, log: filepath.Join(cfg.StateDir, "runtime.log")}
	initPid, err := d.setup()
	if err != nil {
		log.Error("shim start failed", "err", err)
		stage := bus.ShimStageCreate
		if errors.Is(err, errStart) {
			stage = bus.ShimStageStart
		}
		tellReady(ready, readyMsg{Error: strings.TrimPrefix(err.Error(), errStart.Error()+": "), Stage: stage})
		return err
	}
	log.Info("container created", "initPid", initPid, "shimPid", os.Getpid(), "started", cfg.StartOnCreate)
	tellReady(ready, readyMsg{ShimStarted: bus.ShimStarted{Pid: os.Getpid(), InitPid: initPid, Started: cfg.StartOnCreate}})
	// metrics come after ready: nobody waits for them to start a container
	d.serveMetrics()
	<-d.finished
	d.close()
	log.Info("shim exiting")
	return nil
}

func tellReady(f *os.File, m readyMsg) {
	if f == nil {
		return
	}
	b, _ := json.Marshal(m)
	f.Write(append(b, '\n'))
	f.Close()
}

// errStart marks a failure of `runtime start` (StartOnCreate).
var errStart = errors.New("start")

// setup connects, creates the container and subscribes (and, with
// StartOnCreate, starts it). On failure it leaves nothing behind.
func (d *daemon) setup() (initPid int, err error) {
	cfg := &d.cfg
	if err := os.WriteFile(filepath.Join(cfg.StateDir, bus.ShimPidFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return 0, err
	}
	if err := reaper.Start(); err != nil {
		return 0, err
	}
	// The bus connection is made while the runtime creates the container:
	// both take milliseconds, and neither needs the other.
	type dialed struct {
		nc  *natslite.Conn
		err error
	}
	dialc := make(chan dialed, 1)
	go func() {
		nc, err := d.connect()
		dialc <- dialed{nc, err}
	}()
	var dialErr error
	d.join = sync.OnceValue(func() error {
		r := <-dialc
		d.nc, dialErr = r.nc, r.err
		close(d.dialed)
		return dialErr
	})
	defer func() {
		if err != nil {
			d.join()
			d.close()
		}
	}()
	d.cgroup = cgroupsPath(cfg.Bundle, cfg.ID)
	if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o710); err != nil {
		return 0, err
	}
	if d.logw, err = jsonlog.NewWriter(cfg.LogPath, cfg.LogMaxSize, cfg.LogMaxFiles); err != nil {
		return 0, fmt.Errorf("open container log: %w", err)
	}
	d.logw.SetAttrs(cfg.LogAttrs)
	if d.io, err = openStdio(cfg); err != nil {
		return 0, err
	}
	// The pumps run from now. Until the container is created only the
	// runtime writes there (the init waits for start): that is kept for
	// the error message and, as with Docker, out of the container's log
	// and attach stream.
	for _, p := range []struct {
		f *os.File
		s string
	}{{d.io.out, jsonlog.Stdout}, {d.io.err, jsonlog.Stderr}} {
		if p.f != nil {
			d.ioWG.Add(1)
			go d.pump(p.f, p.s, &d.ioWG)
		}
	}

	pidFile := filepath.Join(cfg.StateDir, bus.ShimInitPidFile)
	os.Remove(pidFile)
	// An exit report left by an earlier shim in this directory was the
	// supervisor's to read before it started this one.
	os.Remove(filepath.Join(cfg.StateDir, bus.ShimExitFile))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cerr := d.rt.create(ctx, cfg.ID, cfg.Bundle, pidFile, d.io.consoleSock, d.io.childIn, d.io.childOut, d.io.childErr)
	d.io.closeChild()
	if cerr != nil {
		return 0, d.failCreate(cerr)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, d.failCreate(fmt.Errorf("runtime create wrote no pid file: %w", err))
	}
	initPid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || initPid <= 0 {
		return 0, d.failCreate(fmt.Errorf("bad pid file %s: %q", pidFile, b))
	}
	exitc := reaper.Wait(initPid)
	if cfg.Tty {
		con, err := d.io.waitConsole(10 * time.Second)
		if err != nil {
			reaper.Forget(initPid)
			return 0, d.failCreate(err)
		}
		d.io.inMu.Lock()
		d.io.in = con
		d.io.inMu.Unlock()
		d.ioWG.Add(1)
		go d.pump(con, jsonlog.Stdout, &d.ioWG)
	}
	d.mu.Lock()
	d.initPid, d.created = initPid, true
	d.early = nil
	d.mu.Unlock()
	if cfg.LoopbackUp {
		if err := netns.LoopbackUp(initPid); err != nil {
			d.log.Warn("could not bring up the container's loopback", "err", err)
		}
	}
	if err := d.join(); err != nil {
		reaper.Forget(initPid)
		return 0, d.failCreate(err)
	}

	// Subscribe before reporting ready (and before the start): stdin and
	// commands must not be lost.
	sub, err := d.nc.Subscribe(bus.IOIn(cfg.Node, cfg.ID), d.onStdin)
	if err == nil {
		d.subs = append(d.subs, sub)
		sub, err = d.nc.Subscribe(bus.ExecIOIn(cfg.Node, cfg.ID, "*"), d.onExecStdin)
	}
	if err == nil {
		d.subs = append(d.subs, sub)
		sub, err = d.nc.Subscribe(bus.ShimAll(cfg.Node, cfg.ID), d.onCommand)
	}
	if err == nil {
		d.subs = append(d.subs, sub)
		err = d.nc.Flush(10 * time.Second)
	}
	if err != nil {
		reaper.Forget(initPid)
		return 0, d.failCreate(fmt.Errorf("subscribe on the bus: %w", err))
	}
	oom := d.watchOOM()
	if cfg.StartOnCreate {
		if _, err := d.start(); err != nil {
			reaper.Forget(initPid)
			return 0, fmt.Errorf("%w: %w", errStart, d.failCreate(err))
		}
	}
	go d.waitExit(exitc)
	if oom != nil {
		go oom(d.finished)
	}
	return initPid, nil
}

// failCreate cleans up after a failed create and returns its error.
func (d *daemon) failCreate(err error) error {
	d.join() // the output pumps wait for the bus
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, derr := d.rt.run(ctx, "delete", "--force", d.cfg.ID); derr != nil {
		d.log.Debug("runtime delete after failed create", "err", derr)
	}
	// The runtime is gone: the pipes reach EOF.
	waitTimeout(&d.ioWG, 2*time.Second)
	d.mu.Lock()
	early := strings.TrimSpace(string(d.early))
	d.mu.Unlock()
	if early != "" && strings.Contains(err.Error(), "exit status") {
		err = fmt.Errorf("%w: %s", err, lastLine(early))
	}
	return err
}

func (d *daemon) isCreated() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.created
}

func (d *daemon) keepEarly(b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.created && len(d.early) < 4096 {
		d.early = append(d.early, b[:min(len(b), 4096-len(d.early))]...)
	}
}

func (d *daemon) logWriteError(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.logErrAt) > time.Minute {
		d.logErrAt = time.Now()
		d.log.Error("write container log", "err", err)
	}
}

func (d *daemon) close() {
	if d.nc != nil {
		// Drain lets a handler in flight (shutdown) send its reply.
		d.nc.Drain(5 * time.Second)
		d.nc.Close()
	}
	if d.io != nil {
		d.io.closeChild()
		d.io.closeAll()
	}
	if d.logw != nil {
		d.logw.Close()
	}
}

func waitTimeout(wg *sync.WaitGroup, t time.Duration) bool {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	select {
	case <-c:
		return true
	case <-time.After(t):
		return false
	}
}

// waitExit follows the container's init to its end: exit status, OOM,
// output drained and EOF published, exit.json written, the runtime's
// container deleted, the report delivered.
func (d *daemon) waitExit(exitc <-chan reaper.Exit) {
	e := <-exitc
	oom := oomKilled(d.cgroup) // before the delete removes the cgroup
	d.mu.Lock()
	d.status = StatusStopped
	d.mu.Unlock()
	d.log.Info("container exited", "pid", e.Pid, "exitCode", e.Status, "oomKilled", oom)
	// The runtime's delete (state, cgroup) runs while the output drains and
	// the report goes out: the container's processes are all gone with its
	// init (pid namespace), and the supervisor needs none of it to record
	// the exit. The shim finishes (and answers shutdown) only once it is done.
	deleted := make(chan struct{})
	go func() {
		defer close(deleted)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := d.rt.run(ctx, "delete", "--force", d.cfg.ID); err != nil {
			d.log.Error("runtime delete", "err", err)
		}
	}()

	// All the container's processes are gone with its pid namespace, so the
	// pipes reach EOF; a process that escaped with a copy must not hold the
	// report back for ever.
	if !waitTimeout(&d.ioWG, 5*time.Second) {
		d.log.Warn("container output not drained 5s after exit; closing it")
		d.io.closeAll()
		waitTimeout(&d.ioWG, time.Second)
	}
	d.io.closeStdin()
	if err := d.logw.Close(); err != nil {
		d.log.Error("close container log", "err", err)
	}
	if d.nc.IsConnected() {
		d.nc.Publish(bus.IOOut(d.cfg.Node, d.cfg.ID), natslite.Header{bus.HeaderEOF: []string{"1"}}, nil)
	}

	rep := bus.ExitReport{ID: d.cfg.ID, Pid: e.Pid, ExitCode: e.Status, ExitedAt: e.Time.UTC(), OOMKilled: oom}
	exitFile := filepath.Join(d.cfg.StateDir, bus.ShimExitFile)
	if err := writeFileAtomic(exitFile, rep); err != nil {
		d.log.Error("write exit report", "err", err)
	}
	d.deliver(rep)
	<-deleted
	// the exec processes died with the container: their reports go first
	waitTimeout(&d.execs.wg, 10*time.Second)
	os.Remove(exitFile)
	close(d.finished)
}

// deliver sends the exit report until the supervisor acknowledges it, or
// the supervisor asked the shim to shut down.
func (d *daemon) deliver(rep bus.ExitReport) {
	subject := bus.Report(d.cfg.Node, d.cfg.ID, bus.ReportExit)
	d.metrics.pending.Store(1)
	defer d.metrics.pending.Store(0)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if d.isShutdown() {
			d.log.Info("exit report dropped: shutdown requested")
			return
		}
		// While the bus is away the request would fail at once: wait for
		// it instead.
		var err error
		if d.nc.IsConnected() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = d.call(ctx, subject, rep, nil)
			cancel()
		} else {
			err = errdefs.New(errdefs.Unavailable, "the bus is away")
		}
		if err == nil {
			d.log.Info("exit report delivered", "exitCode", rep.ExitCode, "attempts", attempt)
			return
		}
		d.metrics.retries.Add(1)
		if attempt == 1 || attempt%30 == 0 {
			d.log.Warn("exit report not delivered; retrying", "err", err, "attempt", attempt)
		}
		select {
		case <-time.After(backoff):
		case <-d.wake:
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (d *daemon) isShutdown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.shutdown
}

// writeFileAtomic writes v as JSON beside path and renames it over path: a
// reader (the supervisor) never sees a torn file. There is no fsync: the
// state directory is under the exec root (/run, a tmpfs), whose content
// does not outlive the machine, and a crash of the shim alone loses nothing
// written.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteNoSync(path, b, 0o600)
}

// onCommand answers the supervisor on bus.ShimAll.
func (d *daemon) onCommand(m *natslite.Msg) {
	verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	var v any
	var err error
	switch verb {
	case bus.ShimStart:
		v, err = d.start()
	case bus.ShimKill:
		var req bus.ShimKillRequest
		if err = bus.Decode(m.Data, &req); err == nil {
			err = d.kill(req)
		}
	case bus.ShimState:
		d.mu.Lock()
		v = bus.ShimStateResponse{Pid: d.initPid, Status: d.status}
		d.mu.Unlock()
	case bus.ShimResize:
		var req bus.ShimResizeRequest
		if err = bus.Decode(m.Data, &req); err == nil {
			err = d.resize(req)
		}
	case bus.ShimExec:
		d.onExec(m) // answers when the process runs
		return
	case bus.ShimShutdown:
		err = d.doShutdown()
	case bus.ShimPause:
		err = d.pause()
	case bus.ShimResume:
		err = d.resume()
	case bus.ShimUpdate:
		var req bus.ShimUpdateRequest
		if err = bus.Decode(m.Data, &req); err == nil {
			err = d.update(req)
		}
	case bus.ShimPids:
		v, err = d.pids()
	default:
		err = errdefs.New(errdefs.NotImplemented, "unknown shim command %q", verb)
	}
	if err != nil {
		d.log.Info("command failed", "verb", verb, "err", err)
	}
	m.Respond(bus.EncodeReply(v, err))
}

func (d *daemon) start() (any, error) {
	d.mu.Lock()
	st, pid := d.status, d.initPid
	d.mu.Unlock()
	switch st {
	case StatusRunning:
		return nil, errdefs.New(errdefs.NotModified, "container %s is already running", d.cfg.ID)
	case StatusStopped:
		return nil, errdefs.New(errdefs.Conflict, "container %s has exited", d.cfg.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.rt.run(ctx, "start", d.cfg.ID); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.status == StatusCreated {
		d.status = StatusRunning
	}
	d.mu.Unlock()
	return bus.ShimStartResponse{Pid: pid}, nil
}

func (d *daemon) kill(req bus.ShimKillRequest) error {
	d.mu.Lock()
	st := d.status
	d.mu.Unlock()
	if st == StatusStopped {
		return errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
	}
	sig := req.Signal
	if sig == 0 {
		sig = int(syscall.SIGKILL)
	}
	if sig < 0 || sig > 64 {
		return errdefs.New(errdefs.InvalidParameter, "invalid signal %d", sig)
	}
	args := []string{"kill"}
	if req.All {
		args = append(args, "--all")
	}
	args = append(args, d.cfg.ID, strconv.Itoa(sig))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.rt.run(ctx, args...)
	if err != nil && d.isStopped() {
		return errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
	}
	return err
}

func (d *daemon) isStopped() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status == StatusStopped
}

func (d *daemon) resize(req bus.ShimResizeRequest) error {
	if req.ExecID != "" {
		return d.resizeExec(req)
	}
	if !d.cfg.Tty {
		return nil
	}
	return setWinsize(d.io.stdin(), req)
}

// doShutdown ends the shim on the supervisor's request: the container (if
// still there) is killed and deleted, and no exit report is sent. It
// returns once the shim's work is done; the shim then exits.
func (d *daemon) doShutdown() error {
	d.mu.Lock()
	d.shutdown = true
	st := d.status
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	if st != StatusStopped {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := d.rt.run(ctx, "kill", d.cfg.ID, "9")
		cancel()
		if err != nil && !d.isStopped() {
			d.log.Warn("kill on shutdown", "err", err)
		}
	}
	select {
	case <-d.finished:
		return nil
	case <-time.After(30 * time.Second):
		return errdefs.New(errdefs.Unavailable, "shim of %s did not finish in time", d.cfg.ID)
	}
}

// cgroupsPath reads linux.cgroupsPath from the bundle's config.json.
func cgroupsPath(bundle, id string) string {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return ""
	}
	var spec struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(b, &spec) != nil || spec.Linux == nil {
		return ""
	}
	p := spec.Linux.CgroupsPath
	if strings.Contains(p, ":") { // systemd slice:prefix:name
		return ""
	}
	if p == "" {
		p = id
	}
	return "/" + strings.TrimLeft(p, "/")
}

// oomKilled reports whether the kernel's OOM killer acted in the
// container's memory cgroup (v1 memory.oom_control, v2 memory.events).
func oomKilled(cg string) bool {
	if cg == "" {
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", cg, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", cg, "memory.events"),
	} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if n, ok := strings.CutPrefix(l, "oom_kill "); ok {
				return strings.TrimSpace(n) != "0"
			}
		}
	}
	return false
}

// LoadConfig reads and checks a shim.json.
func LoadConfig(path string) (*bus.ShimConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c bus.ShimConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	if err := bus.Token(c.ID); err != nil {
		errs = append(errs, fmt.Errorf("id: %w", err))
	}
	if err := bus.Token(c.Node); err != nil {
		errs = append(errs, fmt.Errorf("node: %w", err))
	}
	for _, f := range []struct{ name, v string }{
		{"bundle", c.Bundle}, {"runtime", c.Runtime}, {"runtimeRoot", c.RuntimeRoot},
		{"natsURL", c.NATSURL}, {"logPath", c.LogPath}, {"stateDir", c.StateDir},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is missing", f.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bad shim config %s: %w", path, err)
	}
	return &c, nil
}

// metrics are the shim's counters, served in Prometheus' text format.
type metrics struct {
	out     [2]atomic.Int64 // stdout, stderr bytes read from the container
	in      atomic.Int64    // stdin bytes written
	pending atomic.Int64    // 1 while an exit report waits for the supervisor
	retries atomic.Int64
}
