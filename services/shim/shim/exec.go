package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/pkg/bus/natslite"
	"berth/pkg/errdefs"
	"berth/services/shim/reaper"
)

// execDrain is how long an exec's output may stay open after it exited (a
// background process holding it), as dockerd waits for an exec's streams.
const execDrain = 2 * time.Second

// execProc is a process `runtime exec` started in the container.
type execProc struct {
	id  string
	pid int
	tty bool
	io  *stdio
	wg  sync.WaitGroup // output pumps
}

// execTable holds the running exec processes.
type execTable struct {
	mu    sync.Mutex
	procs map[string]*execProc
	wg    sync.WaitGroup // one per process until its exit is reported
}

func (t *execTable) get(id string) *execProc {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.procs[id]
}

func (t *execTable) put(e *execProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.procs == nil {
		t.procs = map[string]*execProc{}
	}
	t.procs[e.id] = e
}

func (t *execTable) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.procs, id)
}

// onExec answers bus.ShimExec on a goroutine of its own: a probe runs to
// its end, and the commands of the shim must not wait for it.
func (d *daemon) onExec(m *natslite.Msg) {
	var req bus.ShimExecRequest
	if err := bus.Decode(m.Data, &req); err != nil {
		m.Respond(bus.EncodeReply(nil, err))
		return
	}
	go func() {
		resp, err := d.exec(&req)
		if err != nil {
			d.log.Info("exec failed", "exec", req.ExecID, "err", err)
		}
		m.Respond(bus.EncodeReply(resp, err))
	}()
}

// exec starts the process of req in the container and returns once it
// runs; a probe, once it has ended.
func (d *daemon) exec(req *bus.ShimExecRequest) (*bus.ShimExecResponse, error) {
	if err := bus.Token(req.ExecID); err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "bad exec ID: %v", err)
	}
	d.mu.Lock()
	st := d.status
	d.mu.Unlock()
	if st != StatusRunning {
		return nil, errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
	}
	name := "exec-" + req.ExecID
	procFile := filepath.Join(d.cfg.StateDir, name+".json")
	pidFile := filepath.Join(d.cfg.StateDir, name+".pid")
	defer os.Remove(procFile)
	defer os.Remove(pidFile)
	if err := os.WriteFile(procFile, req.Process, 0o600); err != nil {
		return nil, err
	}
	e := &execProc{id: req.ExecID, tty: req.Tty}
	var err error
	if e.io, err = openExecStdio(req, filepath.Join(d.cfg.StateDir, name[:17]+".sock")); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = d.rt.exec(ctx, d.cfg.ID, procFile, pidFile, e.io.consoleSock, e.io.childIn, e.io.childOut, e.io.childErr)
	e.io.closeChild()
	if err != nil {
		e.io.closeAll()
		if strings.Contains(err.Error(), "paused container") {
			return nil, errdefs.New(errdefs.Conflict, "container %s is paused, unpause the container before exec", d.cfg.ID)
		}
		if d.isStopped() {
			return nil, errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
		}
		return nil, err
	}
	b, err := os.ReadFile(pidFile)
	if err == nil {
		e.pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err != nil || e.pid <= 0 {
		e.io.closeAll()
		return nil, fmt.Errorf("runtime exec wrote no pid: %q %v", b, err)
	}
	exitc := reaper.Wait(e.pid)
	if req.Tty {
		con, err := e.io.waitConsole(10 * time.Second)
		if err != nil {
			syscall.Kill(e.pid, syscall.SIGKILL)
			<-exitc
			e.io.closeAll()
			return nil, err
		}
		e.io.inMu.Lock()
		e.io.in = con
		e.io.inMu.Unlock()
	}
	if req.Probe {
		return d.probe(e, exitc, req)
	}
	out := bus.ExecIOOut(d.cfg.Node, d.cfg.ID, e.id)
	if req.Tty {
		e.wg.Add(1)
		go d.execPump(e.io.in, out, "stdout", &e.wg)
	} else {
		for _, p := range []struct {
			f *os.File
			s string
		}{{e.io.out, "stdout"}, {e.io.err, "stderr"}} {
			if p.f != nil {
				e.wg.Add(1)
				go d.execPump(p.f, out, p.s, &e.wg)
			}
		}
	}
	d.execs.put(e)
	d.execs.wg.Add(1)
	go d.waitExec(e, exitc)
	return &bus.ShimExecResponse{Pid: e.pid}, nil
}

// openExecStdio makes the process's stdio: pipes for the streams asked
// for (a probe's stdout and stderr share one), /dev/null for the others; a
// console socket with a tty, where the runtime's own stdio is /dev/null.
func openExecStdio(req *bus.ShimExecRequest, consoleSock string) (*stdio, error) {
	s := &stdio{}
	fail := func(err error) (*stdio, error) {
		s.closeChild()
		s.closeAll()
		return nil, err
	}
	null := func() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_RDWR, 0) }
	var err error
	if req.Tty {
		if s.childIn, err = null(); err != nil {
			return fail(err)
		}
		s.childOut, s.childErr = s.childIn, s.childIn
		if err := s.listenConsole(consoleSock); err != nil {
			return fail(err)
		}
		return s, nil
	}
	if req.Stdin && !req.Probe {
		s.childIn, s.in, err = os.Pipe()
	} else {
		s.childIn, err = null()
	}
	if err != nil {
		return fail(err)
	}
	switch {
	case req.Probe:
		if s.out, s.childOut, err = os.Pipe(); err == nil {
			s.childErr = s.childOut
		}
	case req.Stdout:
		s.out, s.childOut, err = os.Pipe()
	default:
		s.childOut, err = null()
	}
	if err != nil {
		return fail(err)
	}
	if !req.Probe {
		if req.Stderr {
			s.err, s.childErr, err = os.Pipe()
		} else {
			s.childErr, err = null()
		}
		if err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// execPump copies one output stream of an exec process to the bus until
// EOF (or EIO: the pty's slave side is closed).
func (d *daemon) execPump(f *os.File, subject, stream string, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 32*1024)
	hdr := natslite.Header{bus.HeaderStream: []string{stream}}
	for {
		n, err := f.Read(buf)
		if n > 0 {
			d.metrics.out[streamIndex(stream)].Add(int64(n))
			if d.nc.IsConnected() {
				d.nc.Publish(subject, hdr, buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// waitExec follows an exec process to its end: its exit reported to the
// supervisor while its output drains, then, both done, the EOF of its
// output.
func (d *daemon) waitExec(e *execProc, exitc <-chan reaper.Exit) {
	defer d.execs.wg.Done()
	ex := <-exitc
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		d.reportExecExit(bus.ExecExitReport{ExecID: e.id, Pid: ex.Pid, ExitCode: ex.Status, ExitedAt: ex.Time.UTC()})
	}()
	if !waitTimeout(&e.wg, execDrain) {
		d.log.Info("exec output still open after its exit; closing it", "exec", e.id)
	}
	e.io.closeAll()
	waitTimeout(&e.wg, time.Second)
	d.execs.remove(e.id)
	<-reported
	d.nc.Publish(bus.ExecIOOut(d.cfg.Node, d.cfg.ID, e.id), natslite.Header{bus.HeaderEOF: []string{"1"}}, nil)
}

// reportExecExit sends an exec's exit report until the supervisor takes
// it, for a minute at most (the exec's client waits for its EOF).
func (d *daemon) reportExecExit(rep bus.ExecExitReport) {
	subject := bus.Report(d.cfg.Node, d.cfg.ID, bus.ReportExecExit)
	backoff := 20 * time.Millisecond
	for deadline := time.Now().Add(time.Minute); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := d.call(ctx, subject, rep, nil)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || d.isShutdown() {
			d.log.Warn("exec exit report not delivered", "exec", rep.ExecID, "err", err)
			return
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
}

// probe waits for a healthcheck process (killed after its timeout) and
// answers with its exit code and the start of its output.
func (d *daemon) probe(e *execProc, exitc <-chan reaper.Exit, req *bus.ShimExecRequest) (*bus.ShimExecResponse, error) {
	limit := req.OutputLimit
	if limit <= 0 {
		limit = 4096
	}
	var out []byte
	done := make(chan struct{})
	src := e.io.out
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if keep := min(n, limit-len(out)); keep > 0 {
				out = append(out, buf[:keep]...)
			}
			if err != nil {
				return
			}
		}
	}()
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	resp := &bus.ShimExecResponse{Pid: e.pid}
	var ex reaper.Exit
	select {
	case ex = <-exitc:
	case <-time.After(timeout):
		syscall.Kill(e.pid, syscall.SIGKILL)
		ex = <-exitc
		resp.TimedOut = true
	}
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	e.io.closeAll()
	<-done
	resp.ExitCode = ex.Status
	resp.Output = string(out)
	return resp, nil
}

// onExecStdin handles a message on an exec process's ExecIOIn subject.
func (d *daemon) onExecStdin(m *natslite.Msg) {
	// berth.v1.io.<node>.<id>.exec.<exec>.in
	parts := strings.Split(m.Subject, ".")
	e := d.execs.get(parts[len(parts)-2])
	if e == nil {
		m.Respond(bus.EncodeReply(nil, errdefs.New(errdefs.Conflict, "the exec process has ended")))
		return
	}
	d.feedStdin(m, e.io, !e.tty, "the exec process's")
}

// resizeExec sets the terminal size of an exec process.
func (d *daemon) resizeExec(req bus.ShimResizeRequest) error {
	e := d.execs.get(req.ExecID)
	if e == nil {
		return errdefs.New(errdefs.NotFound, "No such exec instance: %s", req.ExecID)
	}
	if !e.tty {
		return nil
	}
	return setWinsize(e.io.stdin(), req)
}

func setWinsize(con *os.File, req bus.ShimResizeRequest) error {
	if con == nil {
		return errdefs.New(errdefs.Conflict, "the terminal is closed")
	}
	ws := &unix.Winsize{Row: req.Height, Col: req.Width}
	rc, err := con.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ierr
}
