package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
	"berth/pkg/idmap"
	"berth/pkg/netns"
	"berth/pkg/overlay"
	"berth/pkg/signame"
	"berth/pkg/specconv"
	bnet "berth/services/supervisor/network"
)

func syscallKill(pid int) error { return unix.Kill(pid, 0) }

// isMountPoint reports whether p is on another device than its parent.
func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// ParseSignal reads "SIGTERM", "TERM", "term" or "15".
func ParseSignal(s string) (int, error) {
	if s == "" {
		return 0, errdefs.New(errdefs.InvalidParameter, "empty signal")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.New(errdefs.InvalidParameter, "invalid signal: %s", s)
		}
		return n, nil
	}
	if n := signame.Number(s); n != 0 {
		return n, nil
	}
	return 0, errdefs.New(errdefs.InvalidParameter, "invalid signal: %s", s)
}

// mountRootfs mounts the overlayfs root of id: the image's layers as
// lowerdirs, <root>/containers/<id>/{upper,work}. A volatile mount (for a
// container removed when it exits: its writable layer never outlives it)
// skips overlayfs' sync of the upper layer, which otherwise makes every
// unmount wait for the disk.
func (m *Manager) mountRootfs(id string, layers []string, volatile bool) error {
	upper := filepath.Join(m.dir(id), "upper")
	work := filepath.Join(m.dir(id), "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	target := m.rootfs(id)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	_ = unix.Unmount(target, unix.MNT_DETACH) // a leftover of an interrupted run
	// under --userns-remap the layers are idmapped clones (fds)
	layers, release, err := m.remapLayers(id, layers, upper, work)
	if err != nil {
		return err
	}
	defer release()
	// A volatile mount leaves <work>/work/incompat/volatile behind, and
	// overlayfs refuses the layer until it is removed: an earlier run (a
	// restart) ended with a clean unmount, or the container is removed
	// anyway.
	_ = os.RemoveAll(filepath.Join(work, "work", "incompat"))
	if err := overlay.Mount(target, overlay.Options{Lower: layers, Upper: upper, Work: work, Volatile: volatile}); err != nil {
		return fmt.Errorf("mounting the container's overlayfs root: %w", err)
	}
	return nil
}

// cleanupRun unmounts the rootfs, removes the bundle and takes the
// network sandbox of id apart.
func (m *Manager) cleanupRun(id string) {
	m.teardownNetwork(id)
	target := m.rootfs(id)
	for i := 0; i < 5; i++ { // stacked mounts: until there is none
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			break
		}
	}
	m.unmountShm(id)
	if m.cfg.UsernsRemap != nil {
		idmap.Unpin(m.usernsPin(id))
	}
	if isMountPoint(target) {
		// never delete through a mount: that would reach the container's data
		m.log.Error("the container's rootfs is still mounted; bundle kept", "id", id, "path", target)
		return
	}
	m.bundleProcs.Delete(id)
	if err := os.RemoveAll(m.bundle(id)); err != nil {
		m.log.Warn("removing bundle", "id", id, "err", err)
	}
}

func (m *Manager) shutdownShim(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return natsbus.Call(ctx, m.cfg.Conn, m.shimSubject(id, bus.ShimShutdown), struct{}{}, nil)
}

// Start is `docker start`.
func (m *Manager) Start(ctx context.Context, ref string) error {
	c, err := m.resolve(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.manualStart(c)
	err = m.startLocked(ctx, c)
	if err != nil && !errdefs.Is(err, errdefs.NotModified) {
		m.mu.Lock()
		autoRemove := c.rec.HostConfig != nil && c.rec.HostConfig.AutoRemove && !c.removed
		m.mu.Unlock()
		if autoRemove {
			if rerr := m.removeLocked(c); rerr != nil {
				m.log.Error("auto-remove after a failed start", "id", c.rec.ID, "err", rerr)
			}
		}
	}
	return err
}

func (m *Manager) startLocked(ctx context.Context, c *ctr) error {
	m.mu.Lock()
	if c.removed {
		m.mu.Unlock()
		return errdefs.NoSuchContainer(c.rec.ID)
	}
	if isRunningState(c.rec.State.Status) {
		m.mu.Unlock()
		return errdefs.New(errdefs.NotModified, "container %s is already running", c.rec.ID)
	}
	rec := c.rec
	c.starting = true
	c.pendingExit = nil
	c.oomSeen = false
	m.mu.Unlock()
	t0 := time.Now()
	id := rec.ID

	initPid, err := m.launch(ctx, &rec)
	if err != nil {
		m.cleanupRun(id)
		m.teardownMounts(&rec)
		code := 128
		msg := err.Error()
		switch {
		case strings.Contains(msg, "no such file or directory"), strings.Contains(msg, "executable file not found"):
			code = 127
		case strings.Contains(msg, "permission denied"):
			code = 126
		}
		m.mu.Lock()
		c.starting = false
		c.rec.State = dockermsg.State{Status: "exited", ExitCode: code, Error: msg, StartedAt: c.rec.State.StartedAt, FinishedAt: time.Now().UTC()}
		if c.rec.State.StartedAt.IsZero() {
			// Docker leaves a container whose first start failed created,
			// never finished
			c.rec.State.Status, c.rec.State.FinishedAt = "created", time.Time{}
		}
		m.mu.Unlock()
		if serr := m.save(c); serr != nil {
			m.log.Error("saving record", "id", id, "err", serr)
		}
		if errdefs.KindOf(err) == errdefs.Unknown && code != 128 {
			err = errdefs.New(errdefs.InvalidParameter, "%s", msg)
		}
		return err
	}

	now := time.Now().UTC()
	m.mu.Lock()
	c.starting = false
	c.exited = make(chan struct{})
	c.rec.State = dockermsg.State{Status: "running", Running: true, Pid: initPid, StartedAt: now, FinishedAt: c.rec.State.FinishedAt}
	pending := c.pendingExit
	c.pendingExit = nil
	m.mu.Unlock()
	// The record is written (and synced) off the reply's path: the state is
	// in memory for every reader, and a supervisor that crashes before the
	// write finds a live shim with a record not saying running, which
	// restore adopts (adopt). save always writes the latest state, so
	// a later save cannot be undone by this one.
	go func() {
		if err := m.save(c); err != nil {
			m.log.Error("saving record", "id", id, "err", err)
		}
	}()
	if m.cfg.OnRunning != nil {
		m.cfg.OnRunning(time.Since(t0))
	}
	m.volumeEvents(&rec, "mount")
	m.event(c, "start")
	m.startHealth(c)
	m.log.Debug("start: done", "id", id)
	if pending != nil {
		m.applyExit(c, *pending)
	}
	return nil
}

// launch builds the bundle, runs `berth-shim start` and asks the shim to
// start the container. It returns the container's init pid.
func (m *Manager) launch(ctx context.Context, rec *dockermsg.Container) (int, error) {
	id := rec.ID
	m.log.Debug("start: launching", "id", id)
	layers, err := m.layerDirs(rec)
	if err != nil {
		return 0, err
	}
	if err := m.mountRootfs(id, layers, rec.HostConfig != nil && rec.HostConfig.AutoRemove); err != nil {
		return 0, err
	}
	mounts, err := m.setupMounts(rec, m.rootfs(id))
	if err != nil {
		return 0, err
	}
	if wd := rec.Config.WorkingDir; wd != "" && wd != "/" {
		if err := makeWorkdir(m.rootfs(id), wd); err != nil {
			return 0, err
		}
	}
	m.log.Debug("start: rootfs mounted", "id", id)
	etc, err := m.writeEtcFiles(rec)
	if err != nil {
		return 0, err
	}
	opts := specconv.Options{ID: id, HostConfig: rec.HostConfig, Rootfs: m.rootfs(id), EtcFiles: etc}
	if err := m.namespaceOptions(rec.HostConfig, id, &opts); err != nil {
		return 0, err
	}
	netw, err := m.setupNetwork(rec)
	if err != nil {
		return 0, err
	}
	if err := m.usernsOptions(rec.HostConfig, id, &opts); err != nil {
		return 0, err
	}
	for dst, src := range netw.etc {
		etc[dst] = src
	}
	cfg := rec.Config
	if netw.hostname != "" {
		cp := *cfg
		cp.Hostname = netw.hostname
		cfg = &cp
	}
	opts.Config, opts.NetNSPath, opts.Mounts, opts.InitPath = cfg, netw.nsPath, mounts, m.cfg.InitPath
	spec, err := specconv.Spec(opts)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}
	// The bundle and the shim's state live under the exec root (/run, normally a
	// tmpfs): rebuilt on every start, of no use after a reboot: no fsync.
	if err := os.WriteFile(filepath.Join(m.bundle(id), "config.json"), data, 0o600); err != nil {
		m.bundleProcs.Delete(id)
		return 0, err
	}
	m.bundleProcs.Store(id, spec.Process)
	stateDir := m.shimDir(id)
	if m.shimAlive(id) {
		// the shim of the previous run may still be deleting its runtime
		// container (it does that after reporting the exit): shutdown
		// answers once it is done
		_ = m.shutdownShim(id)
	}
	// what a previous shim left (exit.json…) goes; an empty directory
	// (made by prepare) is kept
	if ents, err := os.ReadDir(stateDir); err != nil || len(ents) > 0 {
		_ = os.RemoveAll(stateDir)
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return 0, err
		}
	}
	size, files, _ := logLimits(rec.HostConfig)
	attrs, err := logAttrs(rec)
	if err != nil {
		return 0, fmt.Errorf("failed to initialize logging driver: %w", err)
	}
	shimUser, shimPass := m.shimCredentials(id)
	sc := bus.ShimConfig{
		ID:           id,
		Node:         m.cfg.Node,
		Bundle:       m.bundle(id),
		Runtime:      m.cfg.RuntimeBin,
		RuntimeRoot:  m.runtimeRoot(),
		NATSURL:      m.cfg.NATSURL,
		NATSUser:     shimUser,
		NATSPassword: shimPass,
		LogPath:      m.logPath(id),
		LogMaxSize:   size,
		LogMaxFiles:  files,
		LogAttrs:     attrs,
		Tty:          rec.Config.Tty,
		OpenStdin:    rec.Config.OpenStdin,
		StdinOnce:    rec.Config.StdinOnce,
		StateDir:     stateDir,
		// the shim creates, brings up lo and starts in one go: no launcher,
		// no ShimStart round trip on the bus
		StartOnCreate: true,
		LoopbackUp:    netw.loopbackUp,
	}
	scData, err := json.Marshal(sc)
	if err != nil {
		return 0, err
	}
	scPath := filepath.Join(stateDir, bus.ShimConfigFile)
	if err := os.WriteFile(scPath, scData, 0o600); err != nil {
		return 0, err
	}
	m.log.Debug("start: bundle written, spawning the shim", "id", id)
	ready, err := m.spawnShim(&sc, scPath)
	m.log.Debug("start: the shim is ready", "id", id, "err", err)
	if err != nil {
		m.runtimeDelete(id)
		return 0, fmt.Errorf("failed to create task for container: %s: unknown", err)
	}
	if ready.Error != "" {
		if ready.Stage == bus.ShimStageStart {
			return 0, fmt.Errorf("failed to start container: %s: unknown", ready.Error)
		}
		return 0, fmt.Errorf("failed to create task for container: %s: unknown", ready.Error)
	}
	started := ready.ShimStarted
	m.mu.Lock()
	if c := m.byID[id]; c != nil {
		c.rec.State.Pid = started.InitPid
	}
	m.mu.Unlock()
	if started.Started {
		return started.InitPid, nil
	}
	// a shim that only created the container: the loopback, then ShimStart
	if sc.LoopbackUp {
		if err := netns.LoopbackUp(started.InitPid); err != nil {
			m.log.Warn("could not bring up the container's loopback", "id", id, "err", err)
		}
	}
	var resp bus.ShimStartResponse
	var callErr error
	for attempt := 0; attempt < 20; attempt++ {
		cctx, ccancel := context.WithTimeout(ctx, m.cfg.ShimTimeout)
		callErr = natsbus.Call(cctx, m.cfg.Conn, m.shimSubject(id, bus.ShimStart), struct{}{}, &resp)
		ccancel()
		if callErr == nil || !strings.Contains(callErr.Error(), "no responders") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if callErr != nil {
		m.killShim(id)
		return 0, fmt.Errorf("failed to start container: %s: unknown", callErr.Error())
	}
	pid := resp.Pid
	if pid == 0 {
		pid = started.InitPid
	}
	return pid, nil
}

// writeEtcFiles writes the container's hostname, hosts and resolv.conf
// into its directory, to be bind-mounted over the image's.
func (m *Manager) writeEtcFiles(rec *dockermsg.Container) (map[string]string, error) {
	hostNet := rec.HostConfig != nil && rec.HostConfig.NetworkMode.IsHost()
	hosts := []byte(bnet.DefaultHosts)
	if hostNet {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts = b
		}
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	files := map[string][]byte{
		"hostname":    []byte(rec.Config.Hostname + "\n"),
		"hosts":       hosts,
		"resolv.conf": []byte(specconv.ResolvConf(hostResolv, hostNet, specconv.DNSOf(rec.HostConfig))),
	}
	out := map[string]string{}
	for name, data := range files {
		p := filepath.Join(m.dir(rec.ID), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
		out["/etc/"+name] = p
	}
	return out, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	lines := strings.Split(s, "\n")
	// the shim may log JSON lines before its message; prefer the last
	// non-JSON line, else the "msg"/"err" of the last JSON one
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "{") {
			var v map[string]any
			if json.Unmarshal([]byte(l), &v) == nil {
				if e, ok := v["err"].(string); ok && e != "" {
					return e
				}
				if e, ok := v["error"].(string); ok && e != "" {
					return e
				}
				continue
			}
		}
		return l
	}
	return s
}

// killShim gets rid of a shim whose container never ran.
func (m *Manager) killShim(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = natsbus.Call(ctx, m.cfg.Conn, m.shimSubject(id, bus.ShimKill), bus.ShimKillRequest{Signal: 9, All: true}, nil)
	cancel()
	_ = m.shutdownShim(id)
	if data, err := os.ReadFile(filepath.Join(m.shimDir(id), bus.ShimPidFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
			_ = unix.Kill(pid, syscall.SIGKILL)
		}
	}
	m.runtimeDelete(id)
}

func (m *Manager) runtimeDelete(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = exec.CommandContext(ctx, m.cfg.RuntimeBin, "--root", m.runtimeRoot(), "delete", "--force", id).Run()
}

// HandleExit applies a shim's exit report. It is idempotent: a report for
// an exit already applied (or for an older run) changes nothing.
func (m *Manager) HandleExit(rep bus.ExitReport) error {
	if err := m.checkExitReport(rep); err != nil {
		return err
	}
	m.mu.Lock()
	c, ok := m.byID[rep.ID]
	if !ok {
		m.mu.Unlock()
		return nil // removed meanwhile: nothing to record
	}
	if c.starting {
		r := rep
		c.pendingExit = &r
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	m.applyExit(c, rep)
	return nil
}

// HandleOOM records a shim's OOM report and publishes the oom event.
func (m *Manager) HandleOOM(id string) {
	m.mu.Lock()
	c, ok := m.byID[id]
	if !ok || c.oomSeen || !isRunningState(c.rec.State.Status) {
		m.mu.Unlock()
		return
	}
	c.oomSeen = true
	c.rec.State.OOMKilled = true // as Docker's, from the OOM on (also when the container survives it)
	m.mu.Unlock()
	if err := m.save(c); err != nil {
		m.log.Error("saving record", "id", id, "err", err)
	}
	m.event(c, "oom")
}

func (m *Manager) applyExit(c *ctr, rep bus.ExitReport) {
	m.mu.Lock()
	if !isRunningState(c.rec.State.Status) || (rep.Pid != 0 && c.rec.State.Pid != 0 && rep.Pid != c.rec.State.Pid) {
		m.mu.Unlock()
		return
	}
	at := rep.ExitedAt.UTC()
	if at.IsZero() {
		at = time.Now().UTC()
	}
	st := c.rec.State
	c.rec.State = dockermsg.State{Status: "exited", ExitCode: rep.ExitCode, OOMKilled: rep.OOMKilled || c.oomSeen, Error: rep.Error, StartedAt: st.StartedAt, FinishedAt: at, Health: st.Health}
	clearRuntimeNetwork(&c.rec)
	m.stopHealthLocked(c)
	oom := rep.OOMKilled && !c.oomSeen
	c.oomSeen = c.oomSeen || rep.OOMKilled
	ch := c.exited
	id := c.rec.ID
	rec := c.rec
	autoRemove := c.rec.HostConfig != nil && c.rec.HostConfig.AutoRemove
	m.mu.Unlock()
	m.log.Debug("exit: applying", "id", id)
	// An auto-removed container's record is deleted next: writing (and
	// syncing) its exited state first would only delay the removal. Should
	// the supervisor die before the removal, the shim's report (it keeps it
	// until acknowledged, after this) or restore settles it again.
	if !autoRemove {
		if err := m.save(c); err != nil {
			m.log.Error("saving record", "id", id, "err", err)
		}
	}
	m.cleanupRun(id)
	m.log.Debug("exit: saved, rootfs unmounted", "id", id)
	if oom {
		m.event(c, "oom")
	}
	m.event(c, "die", "exitCode", strconv.Itoa(rep.ExitCode), "execDuration", strconv.Itoa(int(at.Sub(st.StartedAt).Seconds())))
	m.teardownMounts(&rec)
	m.volumeEvents(&rec, "unmount")
	m.log.Debug("exit: die published", "id", id)
	select {
	case <-ch:
	default:
		close(ch)
	}
	if !autoRemove {
		m.maybeRestart(c, rep.ExitCode, at.Sub(st.StartedAt))
	}
	if autoRemove {
		go func() {
			c.op.Lock()
			defer c.op.Unlock()
			m.mu.Lock()
			ok := !c.removed && !isRunningState(c.rec.State.Status)
			m.mu.Unlock()
			if ok {
				if err := m.removeLocked(c); err != nil {
					m.log.Error("auto-remove", "id", id, "err", err)
					if err := m.save(c); err != nil {
						m.log.Error("saving record", "id", id, "err", err)
					}
				}
			}
		}()
	}
}

// signal asks the shim to signal the container. A shim that has gone
// settles the container as exited.
func (m *Manager) signal(ctx context.Context, c *ctr, sig int) error {
	id := c.rec.ID
	cctx, cancel := context.WithTimeout(ctx, m.cfg.ShimTimeout)
	defer cancel()
	err := m.callShim(cctx, id, bus.ShimKill, bus.ShimKillRequest{Signal: sig}, nil)
	if err != nil && errdefs.Is(err, errdefs.Unavailable) && !m.shimAlive(id) {
		m.shimGone(c)
		return nil
	}
	if err == nil {
		m.thawAfterSignal(c, sig)
	}
	return err
}

// shimGone settles a running container whose shim has disappeared.
func (m *Manager) shimGone(c *ctr) {
	id := c.rec.ID
	if rep, ok := m.readExitFile(id); ok {
		m.applyExit(c, rep)
		return
	}
	m.mu.Lock()
	pid := c.rec.State.Pid
	m.mu.Unlock()
	m.applyExit(c, m.lostShimExit(id, pid))
}

func (m *Manager) exitChan(c *ctr) (chan struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return c.exited, isRunningState(c.rec.State.Status)
}

// killAndWait sends sig and waits up to d for the exit.
func (m *Manager) killAndWait(ctx context.Context, c *ctr, sig int, d time.Duration) error {
	ch, running := m.exitChan(c)
	if !running {
		return nil
	}
	m.event(c, "kill", "signal", strconv.Itoa(sig))
	if err := m.signal(ctx, c, sig); err != nil {
		// the process may have exited just now, its report on the way
		if m.waitExit(ctx, c, ch, 2*time.Second) == nil {
			return nil
		}
		return err
	}
	return m.waitExit(ctx, c, ch, d)
}

func (m *Manager) waitExit(ctx context.Context, c *ctr, ch chan struct{}, d time.Duration) error {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	// poll the shim's liveness too, so that a vanished shim cannot hang us
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ch:
			return nil
		case <-timer:
			return errTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if !m.shimAlive(c.rec.ID) {
				time.Sleep(200 * time.Millisecond) // let a last report arrive
				select {
				case <-ch:
					return nil
				default:
				}
				m.shimGone(c)
			}
		}
	}
}

var errTimeout = errors.New("timed out waiting for the container to exit")

// Stop is `docker stop`: the stop signal, then SIGKILL after the timeout.
func (m *Manager) Stop(ctx context.Context, req *bus.StopRequest) error {
	c, err := m.resolve(req.ID)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.cancelRestart(c, true)
	return m.stopLocked(ctx, c, req.Timeout, req.Signal, true)
}

func (m *Manager) stopLocked(ctx context.Context, c *ctr, timeout *int, sigName string, notModified bool) error {
	m.mu.Lock()
	running := isRunningState(c.rec.State.Status)
	cfg := c.rec.Config
	id := c.rec.ID
	m.mu.Unlock()
	if !running {
		if notModified {
			return errdefs.New(errdefs.NotModified, "container %s is already stopped", id)
		}
		return nil
	}
	if sigName == "" && cfg != nil {
		sigName = cfg.StopSignal
	}
	sig := int(syscall.SIGTERM)
	if sigName != "" {
		n, err := ParseSignal(sigName)
		if err != nil {
			return err
		}
		sig = n
	}
	wait := 10
	if timeout != nil {
		wait = *timeout
	} else if cfg != nil && cfg.StopTimeout != nil {
		wait = *cfg.StopTimeout
	}
	d := time.Duration(wait) * time.Second
	if wait < 0 {
		d = -1
	}
	err := m.killAndWait(ctx, c, sig, d)
	if err != nil && !errors.Is(err, errTimeout) {
		m.log.Warn("stop signal failed, killing", "id", id, "err", err)
	}
	if err != nil {
		if err := m.killAndWait(ctx, c, int(syscall.SIGKILL), 30*time.Second); err != nil {
			return fmt.Errorf("cannot stop container %s: %w", id, err)
		}
	}
	m.event(c, "stop")
	return nil
}

// Kill is `docker kill`. With SIGKILL it waits for the exit. Every error
// names the container as the client did, as dockerd's router wraps them.
func (m *Manager) Kill(ctx context.Context, req *bus.KillRequest) error {
	if err := m.kill(ctx, req); err != nil {
		return errdefs.New(errdefs.KindOf(err), "cannot kill container: %s: %s", req.ID, err)
	}
	return nil
}

func (m *Manager) kill(ctx context.Context, req *bus.KillRequest) error {
	c, err := m.resolve(req.ID)
	if err != nil {
		return err
	}
	sig := int(syscall.SIGKILL)
	if req.Signal != "" {
		if sig, err = ParseSignal(req.Signal); err != nil {
			return err
		}
	}
	ch, running := m.exitChan(c)
	if !running {
		return errdefs.New(errdefs.Conflict, "container %s is not running", c.rec.ID)
	}
	m.cancelRestart(c, true)
	m.event(c, "kill", "signal", strconv.Itoa(sig))
	if err := m.signal(ctx, c, sig); err != nil {
		return err
	}
	if sig == int(syscall.SIGKILL) {
		return m.waitExit(ctx, c, ch, 10*time.Second)
	}
	return nil
}

// Restart is `docker restart`.
func (m *Manager) Restart(ctx context.Context, req *bus.StopRequest) error {
	c, err := m.resolve(req.ID)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.cancelRestart(c, true)
	// dockerd names the container in what fails once it is found
	cannot := func(err error) error {
		return errdefs.New(errdefs.KindOf(err), "Cannot restart container %s: %s", req.ID, err)
	}
	if err := m.stopLocked(ctx, c, req.Timeout, req.Signal, false); err != nil {
		return cannot(err)
	}
	m.manualStart(c)
	if err := m.startLocked(ctx, c); err != nil {
		return cannot(err)
	}
	m.event(c, "restart")
	return nil
}

// Running reports whether the container exists and runs (for log follow).
func (m *Manager) Running(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.byID[id]
	return ok && (isRunningState(c.rec.State.Status) || c.starting)
}

// LogInfo returns what a logs reader needs.
func (m *Manager) LogInfo(ref string) (id, path string, maxFiles int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.resolveLocked(ref)
	if err != nil {
		return "", "", 0, err
	}
	_, files, _ := logLimits(c.rec.HostConfig)
	return c.rec.ID, c.rec.LogPath, files, nil
}
