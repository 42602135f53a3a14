package containers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/securejoin"
	"berth/pkg/specconv"
	"berth/services/supervisor/containerfs"
)

// docker cp, export and diff. A container's file system is reached through
// a containerfs.View: its root as mounted for its run (or mounted for the
// view alone when it is stopped), with its binds and volumes, in a private
// mount namespace. The container's operation lock is held meanwhile, so no
// start, stop or remove changes the file system under the view (as
// dockerd holds the container's lock until an archive is read).

func fileNotFound(path, ref string) error {
	return errdefs.New(errdefs.NotFound, "Could not find the file %s in container %s", path, ref)
}

// viewError gives the errors of the file system the Docker kinds: a missing
// path is Docker's "Could not find the file".
func viewError(err error, path, ref string) error {
	if err == nil || errdefs.KindOf(err) != errdefs.Unknown {
		return err
	}
	if errors.Is(err, os.ErrNotExist) {
		return fileNotFound(path, ref)
	}
	return err
}

// overlayData is the overlayfs mount data of a container's root: its
// image's layers (lowest first) below its upper and work directories.
func (m *Manager) overlayData(id string, layers []string) string {
	lower := make([]string, 0, len(layers))
	for i := len(layers) - 1; i >= 0; i-- { // overlayfs lists the top layer first
		lower = append(lower, layers[i])
	}
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), filepath.Join(m.dir(id), "upper"), filepath.Join(m.dir(id), "work"))
}

// openView locks the container and opens the view of its file system;
// binds adds its binds and volumes. done releases both.
func (m *Manager) openView(ref string, binds bool) (c *ctr, v *containerfs.View, done func(), err error) {
	c, err = m.resolve(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	c.op.Lock()
	defer func() {
		if err != nil {
			c.op.Unlock()
		}
	}()
	m.mu.Lock()
	rec := c.rec
	removed := c.removed
	m.mu.Unlock()
	if removed {
		return nil, nil, nil, errdefs.NoSuchContainer(ref)
	}
	id := rec.ID
	cfg := containerfs.Config{Root: m.rootfs(id)}
	madeBundle := false
	if !isMountPoint(cfg.Root) {
		layers, err := m.layerDirs(&rec)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, d := range []string{filepath.Join(m.dir(id), "upper"), filepath.Join(m.dir(id), "work")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, nil, nil, err
			}
		}
		if _, err := os.Stat(m.bundle(id)); errors.Is(err, os.ErrNotExist) {
			madeBundle = true
		}
		// work/work/incompat/volatile, left by a volatile mount, makes
		// overlayfs refuse the layer (see mountRootfs)
		_ = os.RemoveAll(filepath.Join(m.dir(id), "work", "work", "incompat"))
		cfg.Overlay = m.overlayData(id, layers)
	}
	var mounted []string // volumes mounted for the view (mount options)
	release := func() {
		for _, n := range mounted {
			m.cfg.Volumes.Unmount(n, id+"/view")
		}
		if madeBundle {
			_ = os.RemoveAll(m.bundle(id))
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	copied := false
	if binds {
		for _, mp := range rec.Mounts {
			src := mp.Source
			switch mp.Type {
			case mount.TypeVolume:
				if m.cfg.Volumes == nil {
					continue
				}
				if src, err = m.cfg.Volumes.Mount(mp.Name, id+"/view"); err != nil {
					return nil, nil, nil, err
				}
				mounted = append(mounted, mp.Name)
				if mp.Subpath != "" {
					// the volume's content is the containers': resolved
					// inside it
					if src, err = securejoin.Join(src, mp.Subpath); err != nil {
						return nil, nil, nil, err
					}
				}
			case mount.TypeBind:
			default:
				continue // tmpfs: only the container has its content
			}
			// a volume of a container that never ran gets the image's
			// content before anything is copied in or out (Docker fills it
			// at create)
			copyUp := mp.Type == mount.TypeVolume && mp.CopyData
			copied = copied || copyUp
			cfg.Binds = append(cfg.Binds, containerfs.Bind{Source: src, Destination: mp.Destination, ReadOnly: !mp.RW, CopyUp: copyUp})
		}
		for dst, src := range map[string]string{"/etc/hostname": rec.HostnamePath, "/etc/hosts": rec.HostsPath, "/etc/resolv.conf": rec.ResolvConfPath} {
			if src != "" && !hasMountFor(rec.Mounts, dst) {
				cfg.Binds = append(cfg.Binds, containerfs.Bind{Source: src, Destination: dst, ReadOnly: rec.HostConfig != nil && rec.HostConfig.ReadonlyRootfs})
			}
		}
	}
	v, err = containerfs.Open(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	if copied {
		m.copiedUp(c)
	}
	return c, v, func() {
		v.Close()
		release()
		c.op.Unlock()
	}, nil
}

func hasMountFor(mps []dockermsg.MountPoint, dst string) bool {
	for _, mp := range mps {
		if mp.Destination == dst {
			return true
		}
	}
	return false
}

// ArchiveStat is HEAD /containers/{id}/archive.
func (m *Manager) ArchiveStat(ref, path string) (*container.PathStat, error) {
	_, v, done, err := m.openView(ref, true)
	if err != nil {
		return nil, err
	}
	defer done()
	var st *container.PathStat
	err = v.Do(func() (err error) {
		st, _, err = containerfs.Stat(path)
		return err
	})
	return st, viewError(err, path, ref)
}

// ArchiveGet is GET /containers/{id}/archive: the stat of path and its
// tar, which the caller must read to the end or close.
func (m *Manager) ArchiveGet(ref, path string) (*container.PathStat, io.ReadCloser, error) {
	c, v, done, err := m.openView(ref, true)
	if err != nil {
		return nil, nil, err
	}
	var st *container.PathStat
	if err := v.Do(func() (err error) { st, _, err = containerfs.Stat(path); return err }); err != nil {
		done()
		return nil, nil, viewError(err, path, ref)
	}
	pr, pw := io.Pipe()
	go func() {
		defer done()
		pw.CloseWithError(v.Do(func() error { return containerfs.Archive(pw, path) }))
	}()
	m.event(c, "archive-path")
	return st, pr, nil
}

// ArchivePut is PUT /containers/{id}/archive: path is checked (an existing
// directory, not read-only) and extract returned, which unpacks a tar into
// it and ends the operation (it must be called).
func (m *Manager) ArchivePut(ref, path string, noOverwriteDirNonDir, copyUIDGID bool) (extract func(io.Reader) error, err error) {
	c, v, done, err := m.openView(ref, true)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	rec := c.rec
	m.mu.Unlock()
	var dir string
	opts := containerfs.ExtractOptions{NoOverwriteDirNonDir: noOverwriteDirNonDir}
	err = v.Do(func() error {
		var err error
		if dir, err = containerfs.ExtractDir(path); err != nil {
			return err
		}
		if copyUIDGID && rec.Config != nil && rec.Config.User != "" {
			u, _, err := specconv.ResolveUser("/", rec.Config.User, nil)
			if err != nil {
				return err
			}
			opts.Chown = &[2]int{int(u.UID), int(u.GID)}
		}
		return nil
	})
	if err == nil {
		err = writableAt(&rec, dir)
	}
	if err != nil {
		done()
		return nil, viewError(err, path, ref)
	}
	return func(r io.Reader) error {
		defer done()
		if err := v.Do(func() error { return containerfs.Extract(r, dir, opts) }); err != nil {
			return viewError(err, path, ref)
		}
		m.event(c, "extract-to-dir")
		return nil
	}, nil
}

// writableAt refuses a path (resolved in the container) in a read-only
// mount, or in a read-only root outside any mount, with Docker's messages.
func writableAt(rec *dockermsg.Container, p string) error {
	best := -1
	for i, mp := range rec.Mounts {
		d := mp.Destination
		if (p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/")) && (best < 0 || len(d) > len(rec.Mounts[best].Destination)) {
			best = i
		}
	}
	if best >= 0 {
		if !rec.Mounts[best].RW {
			return errdefs.New(errdefs.InvalidParameter, "mounted volume is marked read-only")
		}
		return nil
	}
	if rec.HostConfig != nil && rec.HostConfig.ReadonlyRootfs {
		return errdefs.New(errdefs.InvalidParameter, "container rootfs is marked read-only")
	}
	return nil
}

// Export is GET /containers/{id}/export: the tar of the container's root
// file system, without its volumes and binds (like Docker's).
func (m *Manager) Export(ref string) (io.ReadCloser, error) {
	c, v, done, err := m.openView(ref, false)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer done()
		pw.CloseWithError(v.Do(func() error { return containerfs.Export(pw) }))
	}()
	m.event(c, "export")
	return pr, nil
}

// Changes is GET /containers/{id}/changes.
func (m *Manager) Changes(ref string) ([]container.FilesystemChange, error) {
	c, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	rec := c.rec
	m.mu.Unlock()
	layers, err := m.layerDirs(&rec)
	if err != nil {
		return nil, err
	}
	return containerfs.Changes(filepath.Join(m.dir(rec.ID), "upper"), layers)
}
