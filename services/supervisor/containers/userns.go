package containers

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
	"berth/pkg/idmap"
	"berth/pkg/specconv"
)

// remapped reports whether a container with hc runs in a remapped user
// namespace: the supervisor has --userns-remap and the container did not
// opt out with --userns host.
func (m *Manager) remapped(hc *container.HostConfig) bool {
	return m.cfg.UsernsRemap != nil && (hc == nil || !hc.UsernsMode.IsHost())
}

// validateUserns refuses, at create, what cannot run in a remapped user
// namespace (Docker's messages).
func (m *Manager) validateUserns(hc *container.HostConfig) error {
	if hc.UsernsMode != "" && !hc.UsernsMode.IsHost() {
		return errdefs.New(errdefs.InvalidParameter, "invalid USER mode: %v", hc.UsernsMode)
	}
	if !m.remapped(hc) {
		return nil
	}
	switch {
	case hc.Privileged:
		return errdefs.New(errdefs.InvalidParameter, "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode")
	case hc.NetworkMode.IsHost():
		return errdefs.New(errdefs.InvalidParameter, "cannot share the host's network namespace when user namespaces are enabled")
	case hc.PidMode.IsHost():
		return errdefs.New(errdefs.InvalidParameter, "cannot share the host PID namespace when user namespaces are enabled")
	}
	return nil
}

// joinedUserns is the user namespace a remapped container joins because
// it shares another container's PID, IPC or network namespace (which that
// one's user namespace owns); "" when it has one of its own.
func (m *Manager) joinedUserns(hc *container.HostConfig) (string, error) {
	for _, mode := range []string{string(hc.PidMode), string(hc.IpcMode), string(hc.NetworkMode)} {
		if ref, ok := cutContainer(mode); ok {
			pid, _, err := m.runningPid(ref)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("/proc/%d/ns/user", pid), nil
		}
	}
	return "", nil
}

// usernsPin is where a remapped container's own user namespace is pinned
// when its network namespace is made before it starts (bridge networks).
func (m *Manager) usernsPin(id string) string { return filepath.Join(m.cfg.ExecRoot, "userns", id) }

// remapNetns is the network package's hook for a remapped container: its
// network namespace belongs to a user namespace of its own, both made (and
// pinned) now, so that the veths go in before the start and the
// container's root is root over them.
func (m *Manager) remapNetns(hc *container.HostConfig, id string) (func(string) error, error) {
	if !m.remapped(hc) {
		return nil, nil
	}
	joined, err := m.joinedUserns(hc)
	if err != nil {
		return nil, err
	}
	if joined != "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "with user namespaces enabled, a container sharing the PID or IPC namespace of another needs --network none or --network container:<that one>")
	}
	return func(netPath string) error {
		if err := os.MkdirAll(filepath.Dir(m.usernsPin(id)), 0o700); err != nil {
			return err
		}
		idmap.Unpin(m.usernsPin(id)) // a leftover of an interrupted run
		return m.cfg.UsernsRemap.PinNamespaces(m.usernsPin(id), netPath)
	}, nil
}

// usernsOptions puts a remapped container in its user namespace: the one
// pinned with its network namespace, another container's it shares
// namespaces with, or else a new one with the supervisor's mapping.
func (m *Manager) usernsOptions(hc *container.HostConfig, id string, o *specconv.Options) error {
	if !m.remapped(hc) {
		return nil
	}
	path, err := m.joinedUserns(hc)
	if err != nil {
		return err
	}
	if _, serr := os.Stat(m.usernsPin(id)); path == "" && serr == nil {
		path = m.usernsPin(id)
	}
	if path == "" {
		o.UIDMappings, o.GIDMappings = m.cfg.UsernsRemap.UIDs, m.cfg.UsernsRemap.GIDs
		return nil
	}
	if o.NamespacePaths == nil {
		o.NamespacePaths = map[specs.LinuxNamespaceType]string{}
	}
	o.NamespacePaths[specs.UserNamespace] = path
	return nil
}

func cutContainer(mode string) (string, bool) {
	if len(mode) > len("container:") && mode[:len("container:")] == "container:" {
		return mode[len("container:"):], true
	}
	return "", false
}

// remapLayers makes a remapped container's root file system: its image
// layers as idmapped mounts (their /proc/self/fd paths; closed by the
// returned func once overlayfs holds them), its writable layer owned by
// the remapped root, and its directory (the /etc files bind-mounted from
// there) searchable by it.
func (m *Manager) remapLayers(id string, lower []string, upper, work string) ([]string, func(), error) {
	m.mu.Lock()
	c := m.byID[id]
	var hc *container.HostConfig
	if c != nil {
		hc = c.rec.HostConfig
	}
	m.mu.Unlock()
	if c == nil || !m.remapped(hc) {
		return lower, func() {}, nil
	}
	r := m.cfg.UsernsRemap
	var fds []int
	done := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	out := make([]string, len(lower))
	for i, l := range lower {
		fd, err := r.Clone(l)
		if err != nil {
			done()
			return nil, nil, err
		}
		fds = append(fds, fd)
		out[i] = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	for _, d := range []string{upper, work} {
		if err := os.Chown(d, int(r.RootUID), int(r.RootGID)); err != nil {
			done()
			return nil, nil, err
		}
	}
	if err := os.Chown(m.dir(id), 0, int(r.RootGID)); err != nil {
		done()
		return nil, nil, err
	}
	return out, done, nil
}
