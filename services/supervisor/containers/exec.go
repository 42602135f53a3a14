package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
	"berth/pkg/specconv"
)

// execProc is one exec instance (docker exec). Like dockerd, the
// supervisor keeps them in memory only: they live as long as their
// container (a bounded number of finished ones) or the supervisor.
type execProc struct {
	id, ctrID string
	cfg       container.ExecOptions
	started   bool
	running   bool
	exitCode  *int
	ended     time.Time
	pid       int
}

// keepFinishedExecs bounds the finished exec instances kept per container
// for inspection.
const keepFinishedExecs = 64

// errNoSuchExec is Docker's answer for an unknown exec ID.
func errNoSuchExec(id string) error {
	return errdefs.New(errdefs.NotFound, "No such exec instance: %s", id)
}

// execableLocked says why a process cannot be exec'd in c now, as dockerd
// does; ref is the name the client used.
func execableLocked(c *ctr, ref string) error {
	st := c.rec.State
	switch {
	case c.removed:
		return errdefs.NoSuchContainer(ref)
	case st.Restarting || st.Status == "restarting":
		return errdefs.New(errdefs.Conflict, "container %s is restarting, wait until the container is running", c.rec.ID)
	case !isRunningState(st.Status) || !st.Running:
		return errdefs.New(errdefs.Conflict, "container %s is not running", c.rec.ID)
	case st.Paused || st.Status == "paused":
		return errdefs.New(errdefs.Conflict, "container %s is paused, unpause the container before exec", ref)
	}
	return nil
}

// execAction is the action of exec_create and exec_start events:
// dockerd's "<verb>: <entrypoint> <args…>".
func execAction(verb string, cmd []string) string {
	if len(cmd) == 0 {
		return verb
	}
	return verb + ": " + cmd[0] + " " + strings.Join(cmd[1:], " ")
}

// ExecCreate is POST /containers/{id}/exec.
func (m *Manager) ExecCreate(req *dockermsg.ExecCreateRequest) (*dockermsg.ExecCreateResponse, error) {
	if req.Config == nil || len(req.Config.Cmd) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "No exec command specified")
	}
	var cfg container.ExecOptions
	if err := copyJSON(req.Config, &cfg); err != nil {
		return nil, err
	}
	m.mu.Lock()
	c, err := m.resolveLocked(req.ID)
	if err == nil {
		err = execableLocked(c, req.ID)
	}
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	e := &execProc{id: NewID(), ctrID: c.rec.ID, cfg: cfg}
	if m.execs == nil {
		m.execs = map[string]*execProc{}
	}
	m.pruneExecsLocked(c.rec.ID)
	m.execs[e.id] = e
	m.mu.Unlock()
	m.event(c, execAction("exec_create", cfg.Cmd), "execID", e.id)
	return &dockermsg.ExecCreateResponse{ID: e.id}, nil
}

// pruneExecsLocked drops the oldest finished exec instances of a
// container beyond keepFinishedExecs.
func (m *Manager) pruneExecsLocked(ctrID string) {
	var done []*execProc
	for _, e := range m.execs {
		if e.ctrID == ctrID && e.exitCode != nil {
			done = append(done, e)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].ended.Before(done[j].ended) })
	for i := 0; i < len(done)-keepFinishedExecs+1; i++ {
		delete(m.execs, done[i].id)
	}
}

// dropExecs forgets the exec instances of a removed container.
func (m *Manager) dropExecs(ctrID string) {
	m.bundleProcs.Delete(ctrID)
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, e := range m.execs {
		if e.ctrID == ctrID {
			delete(m.execs, id)
		}
	}
}

// ExecInspect is GET /exec/{id}/json.
func (m *Manager) ExecInspect(id string) (*bus.ExecInspect, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.execs[id]
	if e == nil {
		return nil, errNoSuchExec(id)
	}
	priv := e.cfg.Privileged
	out := &bus.ExecInspect{
		ID:      e.id,
		Running: e.running,
		ProcessConfig: bus.ExecProcessConfig{
			Tty: e.cfg.Tty, Entrypoint: e.cfg.Cmd[0], Arguments: append([]string{}, e.cfg.Cmd[1:]...),
			Privileged: &priv, User: e.cfg.User,
		},
		OpenStdin:   e.cfg.AttachStdin,
		OpenStdout:  e.cfg.AttachStdout,
		OpenStderr:  e.cfg.AttachStderr,
		ContainerID: e.ctrID,
		DetachKeys:  []byte(e.cfg.DetachKeys),
		Pid:         e.pid,
	}
	if e.exitCode != nil {
		code := *e.exitCode
		out.ExitCode = &code
	}
	return out, nil
}

// ExecStart is POST /exec/{id}/start: the shim runs the process and the
// answer comes once it runs. Its output (unless detached) goes on
// bus.ExecIOOut, to which apigw subscribed before asking.
func (m *Manager) ExecStart(ctx context.Context, req *bus.ExecStartRequest) (*bus.ExecStartResponse, error) {
	m.mu.Lock()
	e := m.execs[req.ExecID]
	if e == nil {
		m.mu.Unlock()
		return nil, errNoSuchExec(req.ExecID)
	}
	switch {
	case e.exitCode != nil:
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.Conflict, "Error: Exec command %s has already run", e.id)
	case e.started:
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.Conflict, "Error: Exec command %s is already running", e.id)
	}
	c := m.byID[e.ctrID]
	if c == nil {
		m.mu.Unlock()
		return nil, errNoSuchExec(req.ExecID)
	}
	if err := execableLocked(c, c.rec.ID); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	e.started, e.running = true, true
	rec := c.rec
	cfg := e.cfg
	m.mu.Unlock()

	resp, err := m.runExec(ctx, c, &rec, e.id, &cfg, req)
	if err != nil {
		// final, as dockerd's: the client reads the exit code at the end
		// of the stream that carried the error
		code := execStartFailed
		m.mu.Lock()
		e.running, e.exitCode, e.ended = false, &code, time.Now()
		m.mu.Unlock()
		return nil, err
	}
	m.mu.Lock()
	e.pid = resp.Pid
	m.mu.Unlock()
	return &bus.ExecStartResponse{
		ContainerID: rec.ID, Pid: resp.Pid, Tty: cfg.Tty,
		AttachStdin: cfg.AttachStdin && !req.Detach, AttachStdout: cfg.AttachStdout && !req.Detach,
		AttachStderr: cfg.AttachStderr && !req.Detach, DetachKeys: cfg.DetachKeys,
	}, nil
}

// execStartFailed is the exit code of an exec whose process could not
// start, whatever the reason: dockerd sets 126 for all of them (unlike a
// container's start, where a missing command gives 127; moby#45795).
const execStartFailed = 126

// runExec builds the process and has the shim start it; the exec_start
// event goes out before.
func (m *Manager) runExec(ctx context.Context, c *ctr, rec *dockermsg.Container, execID string, cfg *container.ExecOptions, req *bus.ExecStartRequest) (*bus.ShimExecResponse, error) {
	size := req.ConsoleSize
	if size == nil && cfg.ConsoleSize != nil {
		size = &[2]uint{cfg.ConsoleSize[0], cfg.ConsoleSize[1]}
	}
	p, err := m.execProcess(rec, cfg, size)
	if err != nil {
		return nil, err
	}
	m.event(c, execAction("exec_start", cfg.Cmd), "execID", execID)
	return m.shimExec(ctx, rec.ID, &bus.ShimExecRequest{
		ExecID: execID, Process: p, Tty: cfg.Tty,
		Stdin: cfg.AttachStdin && !req.Detach, Stdout: cfg.AttachStdout && !req.Detach, Stderr: cfg.AttachStderr && !req.Detach,
	}, m.cfg.ShimTimeout)
}

// execProcess is the OCI process of an exec in the running container rec,
// from the process of its bundle.
func (m *Manager) execProcess(rec *dockermsg.Container, cfg *container.ExecOptions, size *[2]uint) (json.RawMessage, error) {
	base, err := m.bundleProcess(rec.ID)
	if err != nil {
		return nil, err
	}
	p, err := specconv.ExecProcess(base, rec.Config, rec.HostConfig, cfg, m.rootfs(rec.ID), size)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// bundleProcess is the process of the bundle of id: as launch wrote it,
// or, for a container this supervisor did not start (restored), read from
// its config.json once. Callers must not modify it.
func (m *Manager) bundleProcess(id string) (*specs.Process, error) {
	if p, ok := m.bundleProcs.Load(id); ok {
		return p.(*specs.Process), nil
	}
	data, err := os.ReadFile(filepath.Join(m.bundle(id), "config.json"))
	if err != nil {
		return nil, errdefs.New(errdefs.Conflict, "container %s is not running", id)
	}
	var spec struct {
		Process *specs.Process `json:"process"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("the container's bundle: %w", err)
	}
	if spec.Process != nil {
		m.bundleProcs.Store(id, spec.Process)
	}
	return spec.Process, nil
}

// shimExec sends an exec request to the container's shim; the runtime's
// failure reads as dockerd's.
func (m *Manager) shimExec(ctx context.Context, id string, req *bus.ShimExecRequest, timeout time.Duration) (*bus.ShimExecResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var resp bus.ShimExecResponse
	err := natsbus.Call(cctx, m.cfg.Conn, m.shimSubject(id, bus.ShimExec), req, &resp)
	switch {
	case err == nil:
		return &resp, nil
	case errdefs.KindOf(err) == errdefs.Unknown:
		return nil, fmt.Errorf("%s: unknown", err)
	case errdefs.Is(err, errdefs.Unavailable) && !m.shimAlive(id):
		return nil, errdefs.New(errdefs.Conflict, "container %s is not running", id)
	}
	return nil, err
}

// HandleExecExit applies a shim's report that an exec process ended. It
// returns what announces it (the exec_die event), for the caller to run
// once it has answered the shim: the process's stream ends only then.
func (m *Manager) HandleExecExit(ctrID string, rep bus.ExecExitReport) (announce func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.execs[rep.ExecID]
	c := m.byID[ctrID]
	if e == nil || e.ctrID != ctrID || e.exitCode != nil {
		return func() {}
	}
	code := rep.ExitCode
	e.exitCode, e.running, e.ended = &code, false, time.Now()
	if e.pid == 0 {
		e.pid = rep.Pid
	}
	return func() {
		if c != nil {
			m.event(c, "exec_die", "execID", rep.ExecID, "exitCode", strconv.Itoa(code))
		}
	}
}
