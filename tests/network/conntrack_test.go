package network

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUDPPortReusedByNewContainer: a client that keeps sending to a
// published UDP port from the same source port reaches the next container
// that publishes that port once the first is gone: the conntrack entries
// of the old mapping (and of the time between) are flushed, as Docker
// does, where they would keep sending its datagrams to the old address.
func TestUDPPortReusedByNewContainer(t *testing.T) {
	s := shared(t)
	port := freeUDPPort(t)
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	// receive reports whether a datagram of the client reaches the
	// container's port 9999 (a socket of the test in its namespace)
	receive := func(name string) bool {
		t.Helper()
		ns := s.MustDocker("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name)
		c := listenUDPIn(t, ns, 9999)
		defer c.Close()
		buf := make([]byte, 16)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := c.ReadFromUDP(buf)
		return err == nil && string(buf[:n]) == "ping"
	}
	p := itoa(int64(port)) + ":9999/udp"
	s.MustDocker("run", "-d", "--name", "udp-a", "-p", p, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "udp-a")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 600; i++ { // 30 s at most
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			client.WriteToUDP([]byte("ping"), to)
		}
	}()
	defer func() { close(stop); <-done }()

	if !receive("udp-a") {
		t.Fatal("the first container gets nothing: the test's path is broken")
	}
	s.MustDocker("rm", "-f", "udp-a")
	time.Sleep(300 * time.Millisecond) // the client goes on sending meanwhile
	s.MustDocker("run", "-d", "--name", "udp-b", "-p", p, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "udp-b")
	if !receive("udp-b") {
		t.Fatal("the second container publishing the port gets nothing from the client")
	}
}

// freeUDPPort is a UDP port nothing is bound to now.
func freeUDPPort(t *testing.T) int {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// listenUDPIn binds a UDP socket on port in the network namespace at path
// (the socket stays in that namespace).
func listenUDPIn(t *testing.T, path string, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := inNetns(path, func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// inNetns runs f on a thread of this process that joins the network
// namespace at path, and returns to this one after. The thread must not
// die: the stack's daemons, started with a parent-death signal, are killed
// when the thread that started them ends, and that may be this one; so a
// thread that cannot return stays locked to a goroutine that never ends.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("returning to the test's network namespace: %w", err)
			select {} // this thread stays where it is, and alive
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
