// Package netns brings up a container's loopback from outside the
// container, on a thread that enters its network namespace. It imports
// nothing but x/sys, so the shim (see CONVENTIONS.md) can use it as the
// supervisor does.
package netns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// LoopbackUp brings up "lo" in the network namespace of pid, so that a
// container with a network namespace of its own (--network none) has a
// working loopback, as with Docker.
func LoopbackUp(pid int) error {
	return Do(fmt.Sprintf("/proc/%d/ns/net", pid), func() error { return setLinkUp("lo") })
}

// Do runs fn in the network namespace at path, on a locked OS thread that
// joins it and returns to the caller's namespace; a thread that cannot
// return stays locked, so Go discards it rather than reuse it.
func Do(path string, fn func() error) error {
	nsFd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(nsFd)
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
		if err := unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		err = fn()
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			errc <- fmt.Errorf("returning to the host network namespace: %w", rerr)
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

func setLinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s: %w", name, err)
	}
	return nil
}
