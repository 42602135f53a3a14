// Package containers keeps the supervisor's container records (one JSON
// record per container under <root>/containers/<id>/, written atomically)
// and drives their lifecycle: create, start (overlayfs rootfs, OCI bundle,
// shim), stop, kill, restart, remove, rename, exit reports and restore.
package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/namesgenerator"
	"github.com/nats-io/nats.go"
	digest "github.com/opencontainers/go-digest"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/idmap"
	"berth/pkg/image"
	"berth/pkg/specconv"
	"berth/pkg/topdir"
	bnet "berth/services/supervisor/network"
)

// Config configures a Manager.
type Config struct {
	Root       string // --root
	ExecRoot   string // --exec-root
	Node       string
	ShimBin    string
	RuntimeBin string
	InitPath   string // the init of --init
	NATSURL    string // handed to shims
	NATSUser   string // handed to shims when ShimCredentials is nil
	NATSPass   string
	// ShimCredentials returns the NATS user and password of the shim of a
	// container (the embedded server's own per-shim users); nil hands every
	// shim NATSUser and NATSPass.
	ShimCredentials func(id string) (user, password string)
	Images          *image.Store
	Volumes         Volumes // nil: no volumes (a container asking for one fails)
	Conn            *nats.Conn
	Logger          *slog.Logger
	Event           func(typ, action, id string, attrs map[string]string)
	OnRunning       func(createToRunning time.Duration)
	OnHealthCheck   func(healthy bool) // each healthcheck probe's result
	ShimTimeout     time.Duration      // for shim requests; 0 means 10s
	// Network sets up the containers' networks (bridge, user networks,
	// published ports); nil leaves host, none and container: only.
	Network *bnet.Manager
	// UsernsRemap, when set, runs containers in user namespaces with its
	// mapping (--userns-remap; see userns.go).
	UsernsRemap *idmap.Remap
}

// Manager owns every container of the node.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	restoring bool // restore runs: restart policies wait for its end
	byID      map[string]*ctr
	names     map[string]string // "/name" → ID
	keys      map[string]string // idempotency key of the create → ID (survives restarts)
	execs     map[string]*execProc

	// bundleProcs holds, by container ID, the process of the bundle's
	// config.json as this supervisor wrote or last read it: an exec builds
	// on it, and decoding the whole spec for each exec costs more than the
	// rest of its bookkeeping.
	bundleProcs sync.Map // string → *specs.Process
}

type ctr struct {
	op  sync.Mutex // one lifecycle operation (start, stop, restart, remove) at a time
	wmu sync.Mutex // orders record writes

	// guarded by Manager.mu
	rec         dockermsg.Container
	starting    bool
	pendingExit *bus.ExitReport
	exited      chan struct{} // closed when the current run ends
	oomSeen     bool
	removed     bool
	rmVolumes   bool         // docker rm -v: the removal takes the anonymous volumes (c.op held)
	restart     restartState // the restart policy's back-off and pending restart
	health      *healthMonitor
}

// New creates the manager and restores the records found on disk.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShimTimeout == 0 {
		cfg.ShimTimeout = 10 * time.Second
	}
	if cfg.Event == nil {
		cfg.Event = func(string, string, string, map[string]string) {}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, byID: map[string]*ctr{}, names: map[string]string{}, keys: map[string]string{}}
	for _, d := range []string{m.containersDir(), filepath.Join(cfg.ExecRoot, "bundles"), filepath.Join(cfg.ExecRoot, "shims"), filepath.Join(cfg.ExecRoot, "runtime")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
		topdir.Mark(d) // a container's directories are made and removed by the thousand
	}
	m.restoring = true
	err := m.restore()
	m.restoring = false
	if err != nil {
		return nil, err
	}
	m.restoreRestartPolicies()
	m.restoreHealth()
	return m, nil
}

func (m *Manager) containersDir() string           { return filepath.Join(m.cfg.Root, "containers") }
func (m *Manager) dir(id string) string            { return filepath.Join(m.containersDir(), id) }
func (m *Manager) bundle(id string) string         { return filepath.Join(m.cfg.ExecRoot, "bundles", id) }
func (m *Manager) shimDir(id string) string        { return filepath.Join(m.cfg.ExecRoot, "shims", id) }
func (m *Manager) logPath(id string) string        { return filepath.Join(m.dir(id), id+"-json.log") }
func (m *Manager) rootfs(id string) string         { return filepath.Join(m.bundle(id), "rootfs") }
func (m *Manager) runtimeRoot() string             { return filepath.Join(m.cfg.ExecRoot, "runtime") }
func closedChan() chan struct{}                    { c := make(chan struct{}); close(c); return c }
func shortID(id string) string                     { return id[:12] }
func (c *ctr) name() string                        { return strings.TrimPrefix(c.rec.Name, "/") }
func isRunningState(s string) bool                 { return s == "running" || s == "paused" || s == "restarting" }
func (m *Manager) shimSubject(id, v string) string { return bus.Shim(m.cfg.Node, id, v) }

// save writes the container's record atomically.
func (m *Manager) save(c *ctr) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	m.mu.Lock()
	rec := c.rec
	removed := c.removed
	m.mu.Unlock()
	if removed {
		return nil
	}
	return writeRecord(m.dir(rec.ID), &rec)
}

// restore loads every record from disk and settles those whose shim is gone.
func (m *Manager) restore() error {
	ents, err := os.ReadDir(m.containersDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() || !idPattern.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(m.containersDir(), e.Name())
		rec, err := readRecord(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				// a create that never finished: nothing to keep
				m.log.Warn("removing container directory without a record", "dir", dir)
				_ = os.RemoveAll(dir)
				continue
			}
			m.log.Error("unreadable container record, skipped", "dir", dir, "err", err)
			continue
		}
		if rec.ID != e.Name() {
			m.log.Error("container record ID does not match its directory, skipped", "dir", dir)
			continue
		}
		c := &ctr{rec: *rec, exited: closedChan()}
		m.byID[rec.ID] = c
		m.names[rec.Name] = rec.ID
		m.restoreVolumes(c)
		if k, err := os.ReadFile(filepath.Join(dir, keyFile)); err == nil && time.Since(rec.Created) < KeyTTL {
			m.keys[string(k)] = rec.ID
		}
	}
	var autoRemove, adopt []*ctr
	for _, c := range m.byID {
		id := c.rec.ID
		if isRunningState(c.rec.State.Status) {
			if m.shimAlive(id) {
				c.exited = make(chan struct{})
				continue
			}
			if rep, ok := m.readExitFile(id); ok {
				m.log.Info("restore: applying the exit report the shim left", "id", id)
				c.exited = make(chan struct{})
				m.applyExit(c, rep)
				continue
			}
			m.log.Warn("restore: the shim of a running container is gone", "id", id)
			c.exited = make(chan struct{})
			m.applyExit(c, m.lostShimExit(id, c.rec.State.Pid))
			continue
		}
		_, scErr := os.Stat(filepath.Join(m.shimDir(id), bus.ShimConfigFile))
		if m.shimAlive(id) || (c.rec.State.Status == "created" && scErr == nil) {
			// a start cut short by a crash: the shim exists (or is being
			// spawned) but the record never said running (settled once
			// the shim is back on the bus, or seen dead for a while)
			adopt = append(adopt, c)
			continue
		}
		// not running: no mount or bundle should be left
		_, berr := os.Stat(m.bundle(id))
		startCut := berr == nil && c.rec.State.Status == "created"
		if startCut {
			m.runtimeDelete(id) // a shim that died while creating
		}
		m.cleanupRun(id)
		if c.rec.HostConfig != nil && c.rec.HostConfig.AutoRemove && (c.rec.State.Status == "exited" || startCut) {
			// an --rm container whose removal, or start, was cut short
			autoRemove = append(autoRemove, c)
		}
	}
	m.sweepOrphans()
	m.reconcileNetwork()
	if len(adopt) > 0 {
		go m.adoptAll(adopt)
	}
	if len(autoRemove) > 0 {
		go func() {
			for _, c := range autoRemove {
				c.op.Lock()
				m.mu.Lock()
				ok := !c.removed && !isRunningState(c.rec.State.Status)
				m.mu.Unlock()
				if ok {
					m.log.Info("restore: removing an --rm container that exited", "id", c.rec.ID)
					if err := m.removeLocked(c); err != nil {
						m.log.Error("auto-remove", "id", c.rec.ID, "err", err)
					}
				}
				c.op.Unlock()
			}
		}()
	}
	return nil
}

func (m *Manager) readExitFile(id string) (bus.ExitReport, bool) {
	var rep bus.ExitReport
	data, err := os.ReadFile(filepath.Join(m.shimDir(id), bus.ShimExitFile))
	if err != nil {
		return rep, false
	}
	if json.Unmarshal(data, &rep) != nil {
		return rep, false
	}
	return rep, true
}

// shimAlive reports whether the shim of id still runs (its pid file names a
// live process).
func (m *Manager) shimAlive(id string) bool {
	data, err := os.ReadFile(filepath.Join(m.shimDir(id), bus.ShimPidFile))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return false
	}
	if err := syscallKill(pid); err != nil {
		return false
	}
	// a zombie or a recycled pid is not our shim
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
		return false
	}
	// a recycled pid: the shim runs `<shim> daemon --config <its dir>/shim.json`
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && !strings.Contains(string(cmdline), id) {
		return false
	}
	return true
}

// resolveLocked finds a container by full ID, name (with or without "/"),
// or unique ID prefix.
func (m *Manager) resolveLocked(ref string) (*ctr, error) {
	if ref == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "missing container ID or name")
	}
	if c, ok := m.byID[ref]; ok {
		return c, nil
	}
	name := ref
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	if id, ok := m.names[name]; ok {
		return m.byID[id], nil
	}
	var found *ctr
	if len(ref) <= 64 && strings.Trim(ref, "0123456789abcdef") == "" {
		for id, c := range m.byID {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil, errdefs.New(errdefs.NotFound, "No such container: %s (multiple IDs found with provided prefix)", ref)
				}
				found = c
			}
		}
	}
	if found == nil {
		return nil, errdefs.NoSuchContainer(ref)
	}
	return found, nil
}

func (m *Manager) resolve(ref string) (*ctr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolveLocked(ref)
}

// attrs are an event's attributes: the container's labels, name and image.
func (m *Manager) attrsLocked(c *ctr, extra ...string) map[string]string {
	a := map[string]string{}
	if c.rec.Config != nil {
		for k, v := range c.rec.Config.Labels {
			a[k] = v
		}
		a["image"] = c.rec.Config.Image
	}
	a["name"] = c.name()
	for i := 0; i+1 < len(extra); i += 2 {
		a[extra[i]] = extra[i+1]
	}
	return a
}

func (m *Manager) event(c *ctr, action string, extra ...string) {
	m.mu.Lock()
	a := m.attrsLocked(c, extra...)
	id := c.rec.ID
	m.mu.Unlock()
	m.cfg.Event("container", action, id, a)
}

// Layers lists the layers every container holds (see
// dockermsg.Container.Layers): the image store's hook.
func (m *Manager) Layers() map[digest.Digest]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[digest.Digest]bool{}
	for _, c := range m.byID {
		for _, d := range c.rec.Layers {
			out[d] = true
		}
	}
	return out
}

// layerDirs are the directories of rec's layers, lowest first: those it
// holds, or for a record made before containers held their layers, its
// image's.
func (m *Manager) layerDirs(rec *dockermsg.Container) ([]string, error) {
	layers := rec.Layers
	if len(layers) == 0 {
		img, err := m.cfg.Images.Get(rec.Image)
		if err != nil {
			return nil, fmt.Errorf("the container's image %s: %w", rec.Image, err)
		}
		layers = img.RootFS.DiffIDs
	}
	dirs := make([]string, len(layers))
	for i, d := range layers {
		dirs[i] = m.cfg.Images.LayerDir(d.String())
	}
	return dirs, nil
}

// Users lists the containers using image id (the image store's hook).
func (m *Manager) Users(imageID string) []image.User {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []image.User
	for _, c := range m.byID {
		if c.rec.Image == imageID {
			out = append(out, image.User{ID: c.rec.ID, Running: isRunningState(c.rec.State.Status) || c.starting})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Counts returns the number of containers by state.
func (m *Manager) Counts() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, c := range m.byID {
		out[c.rec.State.Status]++
	}
	return out
}

// Create is `docker create`.
func (m *Manager) Create(req *dockermsg.CreateRequest) (*dockermsg.CreateResponse, error) {
	if req.Config == nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "Config cannot be empty in order to create a container")
	}
	if req.Config.Image == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "no image specified: the config's Image field is empty")
	}
	if req.Name != "" && !namePattern.MatchString(strings.TrimPrefix(req.Name, "/")) {
		return nil, errdefs.New(errdefs.InvalidParameter, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name)
	}
	if req.Key != "" {
		m.mu.Lock()
		id, ok := m.keys[req.Key]
		if c := m.byID[id]; ok && c != nil && time.Since(c.rec.Created) < KeyTTL {
			m.mu.Unlock()
			return &dockermsg.CreateResponse{ID: id, Warnings: []string{}}, nil
		}
		m.mu.Unlock()
	}
	img, err := m.cfg.Images.Get(req.Config.Image)
	if err != nil {
		if errdefs.Is(err, errdefs.NotFound) {
			return nil, errdefs.NoSuchImage(image.RefForError(req.Config.Image))
		}
		return nil, err
	}
	// deep copy of the caller's config, merged with the image's
	var cfg container.Config
	if err := copyJSON(req.Config, &cfg); err != nil {
		return nil, err
	}
	hc := &container.HostConfig{}
	if req.HostConfig != nil {
		if err := copyJSON(req.HostConfig, hc); err != nil {
			return nil, err
		}
	}
	// as dockerd: the client's stop signal is checked, not the image's
	if cfg.StopSignal != "" {
		if _, err := ParseSignal(cfg.StopSignal); err != nil {
			return nil, err
		}
	}
	specconv.Merge(&cfg, img.Config)
	specconv.MergeHealthcheck(&cfg, img.Healthcheck)
	if err := specconv.ValidateHealthcheck(cfg.Healthcheck); err != nil {
		return nil, err
	}
	args := specconv.Args(&cfg)
	if len(args) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "no command specified")
	}
	if err := validateHostConfig(hc); err != nil {
		return nil, err
	}
	// one runtime, under the name `docker info` gives it, or runc's (which
	// it stands in for); dockerd records the default when none is named
	switch rt := filepath.Base(m.cfg.RuntimeBin); hc.Runtime {
	case "":
		hc.Runtime = rt
	case rt, "runc", "io.containerd.runc.v2":
	default:
		return nil, errdefs.New(errdefs.InvalidParameter, "unknown or invalid runtime name: %s", hc.Runtime)
	}
	if err := m.validateUserns(hc); err != nil {
		return nil, err
	}
	adaptWarnings := specconv.AdaptHostConfig(hc)
	if err := m.resolveSharedNamespaces(hc); err != nil {
		return nil, err
	}
	from, err := m.volumesFrom(hc.VolumesFrom)
	if err != nil {
		return nil, err
	}
	mounts, err := specconv.ParseMounts(&cfg, hc, pathExists, from...)
	if err != nil {
		return nil, err
	}
	netSettings, warnings, err := m.configureNetworks(&cfg, hc, req.NetworkingConfig, len(req.Config.ExposedPorts) > 0)
	if err != nil {
		return nil, err
	}
	id := NewID()
	if cfg.Hostname == "" && hc.NetworkMode.IsHost() {
		// the host's network, the host's name (as dockerd)
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.Hostname == "" {
		cfg.Hostname = shortID(id)
	}
	// a dry run of the spec catches bad mounts, capabilities, working dirs
	dry, dryHC := cfg, *hc
	dry.User, dryHC.GroupAdd = "", nil // names are looked up in the image's files at start
	if _, err := specconv.Spec(specconv.Options{ID: id, Config: &dry, HostConfig: &dryHC, InitPath: m.cfg.InitPath}); err != nil {
		return nil, err
	}

	m.mu.Lock()
	name := req.Name
	if name == "" {
		for i := 0; ; i++ {
			name = "/" + namesgenerator.GetRandomName(i)
			if _, used := m.names[name]; !used {
				break
			}
		}
	} else if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	if other, used := m.names[name]; used {
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.Conflict, "Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, other)
	}
	m.names[name] = id // reserved
	m.mu.Unlock()

	now := time.Now().UTC()
	c := &ctr{exited: closedChan(), rec: dockermsg.Container{
		ID:         id,
		Name:       name,
		Created:    now,
		Path:       args[0],
		Args:       append([]string{}, args[1:]...),
		Config:     &cfg,
		HostConfig: hc,
		Image:      img.ID,
		Layers:     img.RootFS.DiffIDs,
		State:      dockermsg.State{Status: "created"},
		LogPath:    m.logPath(id),
		Driver:     "overlayfs",

		HostnamePath:   filepath.Join(m.dir(id), "hostname"),
		HostsPath:      filepath.Join(m.dir(id), "hosts"),
		ResolvConfPath: filepath.Join(m.dir(id), "resolv.conf"),

		NetworkSettings: netSettings,
	}}
	fail := func(err error) (*dockermsg.CreateResponse, error) {
		m.mu.Lock()
		delete(m.names, name)
		m.mu.Unlock()
		_ = os.RemoveAll(m.dir(id))
		m.releaseVolumes(id, mounts, true)
		return nil, err
	}
	if err := m.acquireVolumes(id, hc, mounts); err != nil {
		return fail(err)
	}
	c.rec.Mounts = mounts
	if err := os.Mkdir(m.dir(id), 0o710); err != nil {
		return fail(err)
	}
	if req.Key != "" {
		if err := os.WriteFile(filepath.Join(m.dir(id), keyFile), []byte(req.Key), 0o600); err != nil {
			return fail(err)
		}
	}
	if err := writeRecord(m.dir(id), &c.rec); err != nil {
		return fail(fmt.Errorf("writing the container record: %w", err))
	}
	m.mu.Lock()
	m.byID[id] = c
	if req.Key != "" {
		m.keys[req.Key] = id
	}
	m.mu.Unlock()
	// as dockerd's create, a new volume gets the image's content at its
	// path now: a container borrowing it (--volumes-from) finds it there
	// before this one ever runs
	if slices.ContainsFunc(mounts, func(mp dockermsg.MountPoint) bool { return mp.Type == mount.TypeVolume && mp.CopyData }) {
		if _, _, done, err := m.openView(id, true); err != nil {
			m.log.Warn("filling the volumes at create: left to the start", "id", id, "err", err)
		} else {
			done()
		}
	}
	m.event(c, "create")
	return &dockermsg.CreateResponse{ID: id, Warnings: append(append([]string{}, adaptWarnings...), warnings...)}, nil
}

// prepare makes, right after the create, what the first start needs in the
// container's directory and can have before it: the overlay's upper and
// work directories, the /etc files and the log file (the bundle and the
// shim's directory belong to a run, and are made by the start). `docker run` sends attach and wait between
// create and start: the directories are made meanwhile, off the start's
// path (making an inode costs up to milliseconds on a busy ext4). It holds
// the container's operation lock, so a start (or a remove) waits for it and
// finds everything made, or nothing left; whatever fails here, the start
// does again.
//
// The supervisor's server calls it once the create's reply is sent.
func (m *Manager) Prepare(id string) {
	m.mu.Lock()
	c := m.byID[id]
	m.mu.Unlock()
	if c != nil {
		m.prepare(c)
	}
}

func (m *Manager) prepare(c *ctr) {
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	skip := c.removed || c.starting || isRunningState(c.rec.State.Status)
	rec := c.rec
	m.mu.Unlock()
	if skip {
		return
	}
	id := rec.ID
	for _, d := range []struct {
		path string
		perm os.FileMode
	}{
		{filepath.Join(m.dir(id), "upper"), 0o755},
		{filepath.Join(m.dir(id), "work"), 0o755},
	} {
		if err := os.MkdirAll(d.path, d.perm); err != nil {
			return
		}
	}
	if _, err := m.writeEtcFiles(&rec); err != nil {
		return
	}
	if f, err := os.OpenFile(m.logPath(id), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640); err == nil {
		f.Close()
	}
}

func validateHostConfig(hc *container.HostConfig) error {
	switch hc.LogConfig.Type {
	case "", "json-file":
	default:
		return errdefs.New(errdefs.InvalidParameter, "logging driver %q is not supported (only json-file)", hc.LogConfig.Type)
	}
	for k, v := range hc.LogConfig.Config {
		switch k {
		case "max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "max-buffer-size":
		case "mode":
			// dockerd's logger options, taken by every driver
			if v != "" && v != string(container.LogModeBlocking) && v != string(container.LogModeNonBlock) {
				return errdefs.New(errdefs.InvalidParameter, "logger: logging mode not supported: %s", v)
			}
		default:
			return errdefs.New(errdefs.InvalidParameter, "unknown log opt '%s' for json-file log driver", k)
		}
	}
	if _, _, err := logLimits(hc); err != nil {
		return err
	}
	if err := validateRestartPolicy(hc.RestartPolicy); err != nil {
		return err
	}
	switch hc.RestartPolicy.Name {
	case "", container.RestartPolicyDisabled:
	default:
		if hc.AutoRemove {
			return errdefs.New(errdefs.InvalidParameter, "can't create 'AutoRemove' container with restart policy")
		}
	}
	if err := specconv.ValidateResources(&hc.Resources, false); err != nil {
		return err
	}
	if err := specconv.ValidateModes(hc); err != nil {
		return err
	}
	if err := specconv.ValidateCapabilities(hc); err != nil {
		return err
	}
	return nil
}

func copyJSON(in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidParameter, err)
	}
	return json.Unmarshal(data, out)
}

// Inspect returns a container's record.
func (m *Manager) Inspect(ref string) (*dockermsg.Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	rec := c.rec
	return &rec, nil
}

// List returns the records, newest first; only running ones unless all.
func (m *Manager) List(all bool) []dockermsg.Container {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []dockermsg.Container{}
	for _, c := range m.byID {
		if all || isRunningState(c.rec.State.Status) {
			out = append(out, c.rec)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// Rename is `docker rename`.
func (m *Manager) Rename(ref, newName string) error {
	if newName == "" {
		return errdefs.New(errdefs.InvalidParameter, "Neither old nor new names may be empty")
	}
	if !namePattern.MatchString(strings.TrimPrefix(newName, "/")) {
		return errdefs.New(errdefs.InvalidParameter, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", newName)
	}
	nn := "/" + strings.TrimPrefix(newName, "/")
	m.mu.Lock()
	c, err := m.resolveLocked(ref)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	old := c.rec.Name
	if old == nn {
		m.mu.Unlock()
		return errdefs.New(errdefs.InvalidParameter, "Renaming a container with the same name as its current name")
	}
	if other, used := m.names[nn]; used {
		m.mu.Unlock()
		return errdefs.New(errdefs.Conflict, "Conflict. The container name %q is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", nn, other)
	}
	delete(m.names, old)
	m.names[nn] = c.rec.ID
	c.rec.Name = nn
	m.mu.Unlock()
	// a running container's networks take the new name (Docker renames
	// its sandbox): the others of its user networks resolve it
	renameNet := func(name string) {
		if m.cfg.Network == nil {
			return
		}
		if sb := m.cfg.Network.Rename(c.rec.ID, strings.TrimPrefix(name, "/")); sb != nil {
			m.mu.Lock()
			applySandbox(&c.rec, sb)
			m.mu.Unlock()
		}
	}
	renameNet(nn)
	if err := m.save(c); err != nil {
		m.mu.Lock()
		delete(m.names, nn)
		m.names[old] = c.rec.ID
		c.rec.Name = old
		m.mu.Unlock()
		renameNet(old)
		return err
	}
	m.event(c, "rename", "oldName", old)
	return nil
}

// Remove is `docker rm`; removeVolumes (-v) takes its anonymous volumes too.
func (m *Manager) Remove(ctx context.Context, ref string, force, removeVolumes bool) error {
	c, err := m.resolve(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	if c.removed {
		m.mu.Unlock()
		return errdefs.NoSuchContainer(ref)
	}
	running := isRunningState(c.rec.State.Status)
	name := c.rec.Name
	m.mu.Unlock()
	if running && force {
		m.cancelRestart(c, true)
	}
	if running {
		if !force {
			return errdefs.New(errdefs.Conflict, "cannot remove container %q: container is running: stop the container before removing or force remove", name)
		}
		if err := m.killAndWait(ctx, c, 9, 15*time.Second); err != nil {
			return fmt.Errorf("could not kill running container %s, cannot remove: %w", c.rec.ID, err)
		}
	}
	m.cancelRestart(c, false)
	c.rmVolumes = removeVolumes
	return m.removeLocked(c)
}

// removeLocked deletes everything of a stopped container (c.op held).
func (m *Manager) removeLocked(c *ctr) error {
	id := c.rec.ID
	m.log.Debug("remove: begin", "id", id)
	m.cleanupRun(id)
	if isMountPoint(m.rootfs(id)) {
		return fmt.Errorf("cannot remove container %s: its root filesystem is still mounted at %s", id, m.rootfs(id))
	}
	// The shim may still be finishing (its runtime delete runs after its
	// exit report): it is shut down while the record and the container's
	// directory go, and waited for before its own directory goes and the
	// destroy event is out.
	shimDone := make(chan struct{})
	go func() {
		defer close(shimDone)
		if err := m.shutdownShim(id); err != nil && m.shimAlive(id) {
			// a shim out of reach (the bus away, or it not back on it
			// yet) would outlive the removal, its credentials gone
			m.killShimProcess(id)
		}
		m.log.Debug("remove: the shim is gone", "id", id)
		if err := os.RemoveAll(m.shimDir(id)); err != nil {
			m.log.Warn("removing shim state", "id", id, "err", err)
		}
	}()
	defer func() { <-shimDone }()
	// the record goes first, atomically, so a crash halfway leaves no
	// record pointing at a half-deleted directory
	c.wmu.Lock()
	err := os.Remove(filepath.Join(m.dir(id), RecordFile))
	if err == nil || errors.Is(err, os.ErrNotExist) {
		m.mu.Lock()
		c.removed = true
		m.mu.Unlock()
	}
	c.wmu.Unlock()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the container record: %w", err)
	}
	if err := os.RemoveAll(m.dir(id)); err != nil {
		m.log.Warn("removing container directory", "id", id, "err", err)
	}
	<-shimDone
	m.dropExecs(id)
	m.mu.Lock()
	delete(m.byID, id)
	for k, v := range m.keys {
		if v == id {
			delete(m.keys, k)
		}
	}
	if m.names[c.rec.Name] == id {
		delete(m.names, c.rec.Name)
	}
	m.mu.Unlock()
	m.releaseVolumes(id, c.rec.Mounts, c.rmVolumes || (c.rec.HostConfig != nil && c.rec.HostConfig.AutoRemove))
	// after m.mu is released: the store calls back into the manager
	m.cfg.Images.ReleaseLayers(c.rec.Layers)
	m.event(c, "destroy")
	m.log.Debug("remove: destroy published", "id", id)
	return nil
}

// Prune removes every stopped container matching the filters.
func (m *Manager) Prune(ctx context.Context, filters map[string][]string) (*bus.PruneResponse, error) {
	var until time.Time
	if u := filters["until"]; len(u) > 0 {
		t, err := parseTime(u[0])
		if err != nil {
			return nil, err
		}
		until = t
	}
	m.mu.Lock()
	var cands []*ctr
	for _, c := range m.byID {
		if isRunningState(c.rec.State.Status) || c.starting {
			continue
		}
		if !until.IsZero() && !c.rec.Created.Before(until) {
			continue
		}
		if !matchLabels(c.rec.Config, filters["label"], true) || !matchLabels(c.rec.Config, filters["label!"], false) {
			continue
		}
		cands = append(cands, c)
	}
	m.mu.Unlock()
	resp := &bus.PruneResponse{Deleted: []string{}}
	for _, c := range cands {
		c.op.Lock()
		m.mu.Lock()
		ok := !c.removed && !isRunningState(c.rec.State.Status)
		m.mu.Unlock()
		if ok {
			if err := m.removeLocked(c); err == nil {
				resp.Deleted = append(resp.Deleted, c.rec.ID)
			}
		}
		c.op.Unlock()
	}
	return resp, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, errdefs.New(errdefs.InvalidParameter, "invalid until filter %q", s)
}

// matchLabels: with want, every filter must match; without, none may.
func matchLabels(cfg *container.Config, filters []string, want bool) bool {
	var labels map[string]string
	if cfg != nil {
		labels = cfg.Labels
	}
	for _, f := range filters {
		k, v, hasV := strings.Cut(f, "=")
		lv, ok := labels[k]
		match := ok && (!hasV || lv == v)
		if match != want {
			return false
		}
	}
	return true
}

// Info fills the container counts of bus.Info.
func (m *Manager) Info(info *bus.Info) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		info.Containers++
		switch {
		case c.rec.State.Paused:
			info.ContainersPaused++
		case isRunningState(c.rec.State.Status):
			info.ContainersRunning++
		default:
			info.ContainersStopped++
		}
	}
}
