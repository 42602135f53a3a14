package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// newNetns creates a network namespace and pins it by bind-mounting it on
// path (a new file), as `ip netns add` and Docker's sandboxes do: the
// namespace lives on after the process that made it, the container joins it
// by path, and a restarted supervisor finds it again. The namespace is made
// on a locked OS thread that returns to the host's namespace; a thread that
// cannot return stays locked, so Go discards it.
func newNetns(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("returning to the host network namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("creating the network namespace %s: %w", path, err)
	}
	return nil
}

// removeNetns unmounts and deletes a pinned namespace; the kernel frees it
// (and the veth ends inside it) once no process is left in it.
func removeNetns(path string) {
	for i := 0; i < 3 && unix.Unmount(path, unix.MNT_DETACH) == nil; i++ {
	}
	_ = os.Remove(path)
}
