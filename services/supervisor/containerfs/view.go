// Package containerfs gives the supervisor a container's file system as
// the container sees it, for docker cp, export and the copy of an image's
// content into a new volume: a thread of its own in a private mount
// namespace, where the container's root is mounted (or already is) with the
// container's binds and volumes on it, chrooted into that root. Paths are
// then resolved by the kernel inside the container's root, so no symlink
// the container made can lead outside it, and every mount the view made
// disappears with the thread, whatever happens to the supervisor.
package containerfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"berth/pkg/securejoin"
)

// Bind is one of the container's binds or volumes.
type Bind struct {
	Source      string // host path
	Destination string // path in the container
	ReadOnly    bool
	// CopyUp fills an empty Source with the root's content at Destination
	// first (a volume of a container that never started: see CopyUp).
	CopyUp bool
}

// Config says what the view shows.
type Config struct {
	// Root is the host directory of the container's root file system:
	// mounted already (a running container), or where Overlay is mounted.
	Root string
	// Overlay, when not empty, is the overlayfs mount data (lowerdir,
	// upperdir, workdir) of the root, mounted at Root in the view only.
	Overlay string
	Binds   []Bind
}

// View is a container's file system seen from a thread of the supervisor.
type View struct {
	work chan func()
	done chan struct{}
}

// Open starts the view's thread and sets up its mounts.
func Open(c Config) (*View, error) {
	v := &View{work: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go v.run(c, ready)
	if err := <-ready; err != nil {
		<-v.done
		return nil, err
	}
	return v, nil
}

func (v *View) run(c Config, ready chan<- error) {
	defer close(v.done)
	// The thread is never unlocked: when this goroutine returns, Go ends
	// the thread, and its mount namespace (with every mount made here)
	// goes with it.
	runtime.LockOSThread()
	if err := setup(c); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for fn := range v.work {
		fn()
	}
}

func setup(c Config) error {
	// CLONE_FS: a root and working directory of this thread's own
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	// nothing mounted here may reach the host's namespace; the host's
	// unmounts still reach this one
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave: %w", err)
	}
	if c.Overlay != "" {
		if err := os.MkdirAll(c.Root, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("overlay", c.Root, "overlay", 0, c.Overlay); err != nil {
			return fmt.Errorf("mounting the container's root file system: %w", err)
		}
	}
	for _, b := range c.Binds {
		if err := bind(c.Root, b); err != nil {
			return err
		}
	}
	if err := unix.Chroot(c.Root); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

func bind(root string, b Bind) error {
	if b.CopyUp {
		if ents, err := os.ReadDir(b.Source); err == nil && len(ents) == 0 {
			if err := CopyUp(root, b.Destination, b.Source); err != nil {
				return fmt.Errorf("copying the image's content at %s into its volume: %w", b.Destination, err)
			}
		}
	}
	st, err := os.Stat(b.Source)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // a bind source made at start, not there yet: nothing to see
		}
		return err
	}
	dest, err := securejoin.Join(root, b.Destination)
	if err != nil {
		return err
	}
	if st.IsDir() {
		err = os.MkdirAll(dest, 0o755)
	} else if _, serr := os.Lstat(dest); errors.Is(serr, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(dest), 0o755); err == nil {
			var f *os.File
			if f, err = os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|unix.O_NOFOLLOW, 0o644); err == nil {
				f.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mount point %s: %w", b.Destination, err)
	}
	if err := unix.Mount(b.Source, dest, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding %s: %w", b.Destination, err)
	}
	if b.ReadOnly {
		if err := unix.Mount("", dest, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("binding %s read-only: %w", b.Destination, err)
		}
	}
	return nil
}

// Do runs fn on the view's thread: inside it, "/" is the container's root.
// fn must not start goroutines that touch the file system (they would run
// on other threads, in the supervisor's own root).
func (v *View) Do(fn func() error) error {
	errc := make(chan error, 1)
	select {
	case v.work <- func() { errc <- fn() }:
	case <-v.done:
		return errors.New("the container's file system view is closed")
	}
	return <-errc
}

// Close ends the view: its thread exits, and its mounts with it.
func (v *View) Close() {
	close(v.work)
	<-v.done
}
