// The copy of services/supervisor/containers/netns.go the shim uses with
// bus.ShimConfig.LoopbackUp.

package shim

import (
	"fmt"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// loopbackUp brings up "lo" in the network namespace of pid, so that a
// container with a network namespace of its own (--network none) has a
// working loopback, as with Docker. It runs on a locked OS thread that
// joins the namespace and returns; if it cannot return, the thread is
// left locked so that Go discards it.
func loopbackUp(pid int) error {
	nsFd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(nsFd)
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			goruntime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		err = setLinkUp("lo")
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			errc <- fmt.Errorf("returning to the host network namespace: %w", rerr)
			return // the thread stays locked and dies with the goroutine
		}
		goruntime.UnlockOSThread()
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
