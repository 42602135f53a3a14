package containers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
	"berth/pkg/specconv"
)

// resolveSharedNamespaces checks, at create, the containers named by
// --pid and --ipc container:X and records them by ID, as Docker does, so
// that a rename of X keeps the link. A missing X is a bad parameter (400),
// not a 404, which the docker CLI would take for a missing image to pull.
func (m *Manager) resolveSharedNamespaces(hc *container.HostConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	resolve := func(ref string) (string, error) {
		c, err := m.resolveLocked(ref)
		if err != nil {
			return "", errdefs.New(errdefs.InvalidParameter, "%s", err.Error())
		}
		return "container:" + c.rec.ID, nil
	}
	if hc.PidMode.IsContainer() {
		mode, err := resolve(hc.PidMode.Container())
		if err != nil {
			return err
		}
		hc.PidMode = container.PidMode(mode)
	}
	if hc.IpcMode.IsContainer() {
		mode, err := resolve(hc.IpcMode.Container())
		if err != nil {
			return err
		}
		hc.IpcMode = container.IpcMode(mode)
	}
	return nil
}

// shmDir is where the /dev/shm of a shareable IPC namespace is mounted
// on the host, for the containers that join it to bind-mount.
func (m *Manager) shmDir(id string) string { return filepath.Join(m.dir(id), "shm") }

// namespaceOptions fills in the spec options that --pid and --ipc decide
// at start: the namespaces of another container to join (which must run),
// and what /dev/shm is. A shareable container's /dev/shm is mounted here
// (undone by cleanupRun).
func (m *Manager) namespaceOptions(hc *container.HostConfig, id string, o *specconv.Options) error {
	if hc == nil {
		return nil
	}
	if hc.PidMode.IsContainer() {
		pid, _, err := m.runningPid(hc.PidMode.Container())
		if err != nil {
			return err
		}
		o.NamespacePaths = map[specs.LinuxNamespaceType]string{specs.PIDNamespace: fmt.Sprintf("/proc/%d/ns/pid", pid)}
	}
	switch {
	case hc.IpcMode.IsHost():
		o.ShmPath = "/dev/shm"
	case hc.IpcMode.IsShareable():
		if err := m.mountShm(id, hc.ShmSize); err != nil {
			return err
		}
		o.ShmPath = m.shmDir(id)
	case hc.IpcMode.IsContainer():
		donor := hc.IpcMode.Container()
		pid, dhc, err := m.runningPid(donor)
		if err != nil {
			return err
		}
		shm := ""
		switch {
		case dhc.IpcMode.IsShareable():
			shm = m.shmDir(donor)
		case dhc.IpcMode.IsHost():
			shm = "/dev/shm"
		}
		if st, err := os.Stat(shm); shm == "" || err != nil || !st.IsDir() {
			return errdefs.New(errdefs.InvalidParameter, "container %s: non-shareable IPC (hint: use IpcMode:shareable for the donor container)", donor)
		}
		if o.NamespacePaths == nil {
			o.NamespacePaths = map[specs.LinuxNamespaceType]string{}
		}
		if !dhc.IpcMode.IsHost() {
			o.NamespacePaths[specs.IPCNamespace] = fmt.Sprintf("/proc/%d/ns/ipc", pid)
		}
		o.ShmPath = shm
	}
	return nil
}

// runningPid is the init pid and HostConfig of a container another one
// joins; Docker's errors when it does not run.
func (m *Manager) runningPid(ref string) (int, *container.HostConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.resolveLocked(ref)
	if err != nil {
		return 0, nil, errdefs.New(errdefs.InvalidParameter, "%s", err.Error())
	}
	st := c.rec.State
	if st.Restarting || st.Status == "restarting" {
		return 0, nil, errdefs.New(errdefs.Conflict, "Container %s is restarting, wait until the container is running", c.rec.ID)
	}
	if !isRunningState(st.Status) || st.Pid <= 0 || c.starting {
		return 0, nil, errdefs.New(errdefs.Conflict, "container %s is not running", c.rec.ID)
	}
	hc := c.rec.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	return st.Pid, hc, nil
}

// mountShm mounts the tmpfs of a shareable /dev/shm.
func (m *Manager) mountShm(id string, size int64) error {
	dir := m.shmDir(id)
	if isMountPoint(dir) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if size <= 0 {
		size = specconv.DefaultShmSize
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, fmt.Sprintf("mode=1777,size=%d", size)); err != nil {
		return fmt.Errorf("mounting the shareable /dev/shm: %w", err)
	}
	return nil
}

// unmountShm undoes mountShm (the containers that joined keep their
// mount of it).
func (m *Manager) unmountShm(id string) {
	dir := m.shmDir(id)
	for isMountPoint(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			m.log.Warn("unmounting the shareable /dev/shm", "id", id, "err", err)
			return
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("removing the shareable /dev/shm", "id", id, "err", err)
	}
}
