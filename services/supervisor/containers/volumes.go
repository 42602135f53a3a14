package containers

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/securejoin"
	"berth/pkg/specconv"
	"berth/services/supervisor/containerfs"
)

// Volumes is what the manager needs of the volume store (package volumes).
type Volumes interface {
	// Acquire creates the volume if missing (an empty name: an anonymous
	// one) and references it for the container ref; it returns its name.
	Acquire(name, driver string, opts, labels map[string]string, ref string) (string, error)
	Release(name, ref string)
	// RemoveAnonymous removes a volume no container references any more.
	RemoveAnonymous(name string) error
	Path(name string) string
	// Mount and Unmount bracket a use of the volume's directory (a run,
	// a view): a volume with mount options is mounted meanwhile.
	Mount(name, ref string) (string, error)
	Unmount(name, ref string)
}

func pathExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// acquireVolumes creates (or finds) the volumes of mps for container id
// and fills in their names and directories. On error nothing stays
// acquired, and anonymous volumes made here are gone.
func (m *Manager) acquireVolumes(id string, hc *container.HostConfig, mps []dockermsg.MountPoint) error {
	for i := range mps {
		mp := &mps[i]
		if mp.Type != mount.TypeVolume {
			continue
		}
		if m.cfg.Volumes == nil {
			m.releaseVolumes(id, mps[:i], true)
			return errdefs.New(errdefs.NotImplemented, "volumes are not available")
		}
		var opts, labels map[string]string
		for _, hm := range hc.Mounts {
			if hm.Type == mount.TypeVolume && hm.VolumeOptions != nil && path.Clean(hm.Target) == mp.Destination {
				labels = hm.VolumeOptions.Labels
				if hm.VolumeOptions.DriverConfig != nil {
					opts = hm.VolumeOptions.DriverConfig.Options
				}
			}
		}
		name, err := m.cfg.Volumes.Acquire(mp.Name, mp.Driver, opts, labels, id)
		if err != nil {
			m.releaseVolumes(id, mps[:i], true)
			return err
		}
		mp.Name, mp.Driver, mp.Source = name, "local", m.cfg.Volumes.Path(name)
	}
	return nil
}

// releaseVolumes drops the container's references to its volumes; with
// anonymous, its anonymous volumes go too (docker rm -v, --rm), unless
// another container uses them.
func (m *Manager) releaseVolumes(id string, mps []dockermsg.MountPoint, anonymous bool) {
	if m.cfg.Volumes == nil {
		return
	}
	for _, mp := range mps {
		if mp.Type != mount.TypeVolume || mp.Name == "" {
			continue
		}
		m.cfg.Volumes.Release(mp.Name, id)
		if anonymous && mp.Anonymous {
			if err := m.cfg.Volumes.RemoveAnonymous(mp.Name); err != nil {
				m.log.Warn("removing an anonymous volume", "volume", mp.Name, "container", id, "err", err)
			}
		}
	}
}

// restoreVolumes takes again, after a supervisor restart, the references
// (and for a running container the mounts) the records say are held.
func (m *Manager) restoreVolumes(c *ctr) {
	if m.cfg.Volumes == nil {
		return
	}
	for _, mp := range c.rec.Mounts {
		if mp.Type != mount.TypeVolume || mp.Name == "" {
			continue
		}
		if _, err := m.cfg.Volumes.Acquire(mp.Name, "", nil, nil, c.rec.ID); err != nil {
			m.log.Error("restore: the volume of a container", "volume", mp.Name, "container", c.rec.ID, "err", err)
			continue
		}
		if isRunningState(c.rec.State.Status) {
			if _, err := m.cfg.Volumes.Mount(mp.Name, c.rec.ID); err != nil {
				m.log.Error("restore: mounting the volume of a running container", "volume", mp.Name, "container", c.rec.ID, "err", err)
			}
		}
	}
}

// setupMounts prepares the container's mounts for a start, its root file
// system mounted at rootfs: missing bind sources made (-v), volumes mounted
// (mount options) and, the first time, filled with the image's content at
// their destination. It returns the mount points to give the runtime.
func (m *Manager) setupMounts(rec *dockermsg.Container, rootfs string) ([]dockermsg.MountPoint, error) {
	id := rec.ID
	out := append([]dockermsg.MountPoint(nil), rec.Mounts...)
	var copied []string
	for i := range out {
		mp := &out[i]
		switch mp.Type {
		case mount.TypeBind:
			if mp.CreateSource {
				if _, err := os.Stat(mp.Source); errors.Is(err, os.ErrNotExist) {
					if err := os.MkdirAll(mp.Source, 0o755); err != nil {
						m.teardownMounts(rec)
						return nil, fmt.Errorf("error while creating mount source path '%s': %w", mp.Source, err)
					}
				}
			}
		case mount.TypeVolume:
			if m.cfg.Volumes == nil {
				return nil, errdefs.New(errdefs.NotImplemented, "volumes are not available")
			}
			dir, err := m.cfg.Volumes.Mount(mp.Name, id)
			if err != nil {
				m.teardownMounts(rec)
				return nil, err
			}
			mp.Source = dir
			if mp.Subpath != "" {
				sub, err := securejoin.Join(dir, mp.Subpath)
				if err == nil {
					_, err = os.Stat(sub)
				}
				if err != nil {
					m.teardownMounts(rec)
					return nil, errdefs.New(errdefs.InvalidParameter, "cannot access volume subpath %q of volume %s: %v", mp.Subpath, mp.Name, err)
				}
				mp.Source = sub
			}
			if mp.CopyData {
				if ents, err := os.ReadDir(mp.Source); err == nil && len(ents) == 0 {
					if err := containerfs.CopyUp(rootfs, mp.Destination, mp.Source); err != nil {
						m.teardownMounts(rec)
						return nil, fmt.Errorf("copying the image's content into volume %s: %w", mp.Name, err)
					}
				}
				copied = append(copied, mp.Destination)
			}
		}
	}
	if len(copied) > 0 {
		// copied once: later starts use what the volume holds (the
		// start saves the record)
		m.mu.Lock()
		if c := m.byID[id]; c != nil {
			for i := range c.rec.Mounts {
				for _, d := range copied {
					if c.rec.Mounts[i].Destination == d {
						c.rec.Mounts[i].CopyData = false
					}
				}
			}
		}
		m.mu.Unlock()
	}
	return out, nil
}

// copiedUp records that a view filled the container's volumes (containerfs
// Bind.CopyUp) so that its first start does not.
func (m *Manager) copiedUp(c *ctr) {
	m.mu.Lock()
	for i := range c.rec.Mounts {
		if c.rec.Mounts[i].Type == mount.TypeVolume {
			c.rec.Mounts[i].CopyData = false
		}
	}
	m.mu.Unlock()
	if err := m.save(c); err != nil {
		m.log.Error("saving record", "id", c.rec.ID, "err", err)
	}
}

// teardownMounts ends a run's use of its volumes (Mount).
func (m *Manager) teardownMounts(rec *dockermsg.Container) {
	if m.cfg.Volumes == nil {
		return
	}
	for _, mp := range rec.Mounts {
		if mp.Type == mount.TypeVolume && mp.Name != "" {
			m.cfg.Volumes.Unmount(mp.Name, rec.ID)
		}
	}
}

// volumeEvents publishes a volume's mount (at start) or unmount (at exit)
// event for each volume of the container, like dockerd.
func (m *Manager) volumeEvents(rec *dockermsg.Container, action string) {
	for _, mp := range rec.Mounts {
		if mp.Type != mount.TypeVolume || mp.Name == "" {
			continue
		}
		a := map[string]string{"container": rec.ID, "driver": mp.Driver}
		if action == "mount" {
			a["destination"] = mp.Destination
			a["propagation"] = string(mp.Propagation)
			a["read/write"] = strconv.FormatBool(mp.RW)
		}
		m.cfg.Event("volume", action, mp.Name, a)
	}
}

// volumesFrom copies the mounts of the containers --volumes-from names, as
// dockerd does: read-only when asked (or when they were), without the
// image-content copy, and not anonymous to this container (removing it
// leaves them to their owner).
func (m *Manager) volumesFrom(refs []string) ([]dockermsg.MountPoint, error) {
	var out []dockermsg.MountPoint
	for _, spec := range refs {
		ref, rw, err := specconv.VolumesFrom(spec)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		c, err := m.resolveLocked(ref)
		var mps []dockermsg.MountPoint
		if err == nil {
			mps = append(mps, c.rec.Mounts...)
		}
		m.mu.Unlock()
		if err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidParameter, err)
		}
		for _, mp := range mps {
			mp.RW = mp.RW && rw
			mp.Mode, mp.Anonymous, mp.CopyData = "", false, false
			out = append(out, mp)
		}
	}
	return out, nil
}
