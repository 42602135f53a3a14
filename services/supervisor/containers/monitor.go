package containers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
)

// MonitorInterval is how often the supervisor checks that the shim of every
// running container still lives.
const MonitorInterval = time.Second

// Monitor watches the shims of the running containers until ctx ends: a
// shim that disappears (killed, crashed) without delivering its container's
// exit settles the container as dead, kills what is left of it and frees
// its mounts and cgroups. Shims are not the supervisor's children after a
// restart, so this polls their pids instead of waiting for them.
func (m *Manager) Monitor(ctx context.Context) {
	t := time.NewTicker(MonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		var check []*ctr
		for _, c := range m.byID {
			if !c.starting && !c.removed && isRunningState(c.rec.State.Status) {
				check = append(check, c)
			}
		}
		m.mu.Unlock()
		for _, c := range check {
			if m.shimAlive(c.rec.ID) {
				continue
			}
			// a shim that has just delivered its report exits right after:
			// give the report a moment to be applied
			time.Sleep(200 * time.Millisecond)
			m.mu.Lock()
			still := !c.starting && !c.removed && isRunningState(c.rec.State.Status)
			m.mu.Unlock()
			if still && !m.shimAlive(c.rec.ID) {
				m.shimGone(c)
			}
		}
	}
}

// lostShimExit settles a running container whose shim is gone without an
// exit report on disk: whatever is left of the container is killed and
// deleted through the runtime (processes, cgroup, runtime state), and the
// exit is recorded as Docker records a container whose shim died: 137 when
// the container still ran and was killed now, 255 when it had already
// ended unseen (its status is lost with the shim).
func (m *Manager) lostShimExit(id string, pid int) bus.ExitReport {
	wasAlive := pid > 0 && processAlive(pid)
	m.runtimeDelete(id)
	rep := bus.ExitReport{ID: id, Pid: pid, ExitedAt: time.Now().UTC()}
	if wasAlive {
		rep.ExitCode = 137
		rep.Error = fmt.Sprintf("the container's shim disappeared (killed or crashed); the container (pid %d) was killed", pid)
	} else {
		rep.ExitCode = 255
		rep.Error = "the container's shim disappeared (killed or crashed) and the container's exit status with it"
	}
	m.log.Warn("the shim of a running container is gone", "id", id, "pid", pid, "exitCode", rep.ExitCode)
	return rep
}

// processAlive reports whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	if syscallKill(pid) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// adoptTimeout is how long a restored supervisor waits for a live shim of a
// container whose start was cut short to answer on the bus (shims reconnect
// to a restarted embedded NATS within a second or so).
const adoptTimeout = 15 * time.Second

// adoptSpawnGrace is how long a shim that does not run (yet) is waited for.
const adoptSpawnGrace = 3 * time.Second

// adoptAll settles, after a restore, the containers whose record does not
// say running but whose shim lives: each is adopted (started) or shut down
// (merely created) once its shim answers; a shim that never answers is
// killed with its container.
func (m *Manager) adoptAll(cs []*ctr) {
	for _, c := range cs {
		m.adopt(c)
	}
}

func (m *Manager) adopt(c *ctr) {
	c.op.Lock()
	defer c.op.Unlock()
	id := c.rec.ID
	// an exit report arriving meanwhile is kept (pendingExit) for the end
	m.mu.Lock()
	c.starting = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		c.starting = false
		c.pendingExit = nil
		m.mu.Unlock()
	}()
	deadline := time.Now().Add(adoptTimeout)
	var deadSince time.Time
	for {
		m.mu.Lock()
		done := c.removed || isRunningState(c.rec.State.Status)
		pending := c.pendingExit
		m.mu.Unlock()
		if done {
			return
		}
		if pending == nil {
			if rep, ok := m.readExitFile(id); ok {
				pending = &rep
			}
		}
		if pending != nil {
			// it ran, and has ended
			m.settleAdopted(c, bus.ShimStateResponse{Pid: pending.Pid, Status: "stopped"}, pending)
			return
		}
		if !m.shimAlive(id) {
			// a shim being spawned when the supervisor died writes its
			// pid file only once it runs: give it a moment
			if deadSince.IsZero() {
				deadSince = time.Now()
			}
			if time.Since(deadSince) < adoptSpawnGrace {
				time.Sleep(250 * time.Millisecond)
				continue
			}
			m.runtimeDelete(id)
			m.cleanupRun(id)
			m.removeFailedAutoRemove(c)
			return
		}
		deadSince = time.Time{}
		if m.cfg.Conn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			var st bus.ShimStateResponse
			err := natsbus.Call(ctx, m.cfg.Conn, m.shimSubject(id, bus.ShimState), struct{}{}, &st)
			cancel()
			if err == nil {
				m.mu.Lock()
				pending := c.pendingExit
				m.mu.Unlock()
				m.settleAdopted(c, st, pending)
				return
			}
		}
		if time.Now().After(deadline) {
			m.log.Warn("restore: the live shim of a container never answered; killing it", "id", id)
			m.killShim(id)
			m.cleanupRun(id)
			m.removeFailedAutoRemove(c)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// settleAdopted applies the state a live shim reported, and its exit
// report if one came (c.op held).
func (m *Manager) settleAdopted(c *ctr, st bus.ShimStateResponse, pending *bus.ExitReport) {
	id := c.rec.ID
	switch st.Status {
	case "running", "paused", "stopped":
		m.log.Info("restore: adopting a container whose start was cut short", "id", id, "shimStatus", st.Status)
		m.mu.Lock()
		c.rec.State = dockermsg.State{Status: "running", Running: true, Pid: st.Pid, StartedAt: time.Now().UTC(), FinishedAt: c.rec.State.FinishedAt}
		c.exited = make(chan struct{})
		c.starting = false
		c.pendingExit = nil
		m.mu.Unlock()
		if err := m.save(c); err != nil {
			m.log.Error("saving record", "id", id, "err", err)
		}
		m.event(c, "start")
		m.startHealth(c)
		if pending != nil {
			m.applyExit(c, *pending)
		}
	default:
		m.log.Info("restore: shutting down the shim of a container never started", "id", id)
		_ = m.shutdownShim(id)
		m.runtimeDelete(id)
		m.cleanupRun(id)
		m.removeFailedAutoRemove(c)
	}
}

// removeFailedAutoRemove removes an --rm container whose start was cut
// short and never ran (c.op held), as a failed start of one does: the
// docker CLI waits for its removal.
func (m *Manager) removeFailedAutoRemove(c *ctr) {
	m.mu.Lock()
	ok := !c.removed && !isRunningState(c.rec.State.Status) && c.rec.HostConfig != nil && c.rec.HostConfig.AutoRemove
	m.mu.Unlock()
	if !ok {
		return
	}
	m.log.Info("restore: removing an --rm container whose start was cut short", "id", c.rec.ID)
	if err := m.removeLocked(c); err != nil {
		m.log.Error("auto-remove", "id", c.rec.ID, "err", err)
	}
}

// sweepOrphans removes, at restore, what a remove cut short by a crash left
// of containers that have no record any more: a live shim (and its
// container), runtime state, mounted rootfs, bundle, shim directory.
func (m *Manager) sweepOrphans() {
	seen := map[string]bool{}
	for _, dir := range []string{filepath.Join(m.cfg.ExecRoot, "shims"), filepath.Join(m.cfg.ExecRoot, "bundles"), m.runtimeRoot()} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			id := e.Name()
			if !idPattern.MatchString(id) || seen[id] {
				continue
			}
			seen[id] = true
			if _, ok := m.byID[id]; ok {
				continue
			}
			m.log.Warn("restore: removing what is left of a removed container", "id", id)
			m.killShimProcess(id)
			m.runtimeDelete(id)
			m.cleanupRun(id)
			if err := os.RemoveAll(m.shimDir(id)); err != nil {
				m.log.Warn("removing shim state", "id", id, "err", err)
			}
		}
	}
}

// killShimProcess kills the shim of id by its pid (it does not answer on
// the bus) and deletes what it leaves of its container through the runtime.
func (m *Manager) killShimProcess(id string) {
	b, err := os.ReadFile(filepath.Join(m.shimDir(id), bus.ShimPidFile))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !m.shimAlive(id) {
		return
	}
	m.log.Warn("killing a shim out of reach on the bus", "id", id, "pid", pid)
	_ = unix.Kill(pid, unix.SIGKILL)
	for i := 0; i < 40 && processAlive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	m.runtimeDelete(id)
}
