package network

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoopbackUnreachableFromBridge: route_localnet, which the bridge needs
// for the host's own connections to 127.0.0.1:published-port, must not let
// a machine on the bridge reach a service of the host's that listens on
// 127.0.0.1 only (CVE-2020-8558). The attacker is a namespace with a veth
// on the stack's bridge and a route to 127.0.0.1 through the gateway, as a
// container with CAP_NET_ADMIN could make.
func TestLoopbackUnreachableFromBridge(t *testing.T) {
	s := shared(t)
	gw := strings.Split(s.Net.BIP, "/")[0]
	ip := gw[:strings.LastIndex(gw, ".")] + ".250"
	ns, hv, cv := "bnl"+strconv.Itoa(s.Net.N), "bnlh"+strconv.Itoa(s.Net.N), "bnlc"+strconv.Itoa(s.Net.N)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run(); exec.Command("ip", "link", "del", hv).Run() })
	run("ip", "link", "add", hv, "type", "veth", "peer", "name", cv, "netns", ns)
	run("ip", "link", "set", hv, "master", s.Net.Bridge, "up")
	in := func(args ...string) { t.Helper(); run(append([]string{"ip", "netns", "exec", ns}, args...)...) }
	in("ip", "addr", "add", ip+"/24", "dev", cv)
	in("ip", "link", "set", cv, "up")
	// lo stays down: 127.0.0.1 is not local here and goes to the gateway
	in("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf."+cv+".route_localnet=1")
	in("ip", "route", "add", "127.0.0.1/32", "via", gw, "dev", cv, "onlink")

	listen := func(addr string) *net.UDPConn {
		t.Helper()
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	local, control := listen("127.0.0.1"), listen(gw)
	sendFrom(t, ns, local.LocalAddr().(*net.UDPAddr), control.LocalAddr().(*net.UDPAddr))

	buf := make([]byte, 64)
	control.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := control.ReadFromUDP(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("the gateway's address got nothing from the bridge (%v): the test's path is broken", err)
	}
	local.SetReadDeadline(time.Now().Add(time.Second))
	if n, from, err := local.ReadFromUDP(buf); err == nil {
		t.Fatalf("a service on 127.0.0.1 got %q from %v through the bridge", buf[:n], from)
	}
}

// sendFrom sends a few datagrams to each address from network namespace ns.
func sendFrom(t *testing.T, ns string, to ...*net.UDPAddr) {
	t.Helper()
	err := inNetns("/run/netns/"+ns, func() error {
		for i := 0; i < 3; i++ {
			for _, a := range to {
				c, err := net.DialUDP("udp4", nil, a)
				if err != nil {
					return err
				}
				c.Write([]byte("hello"))
				c.Close()
			}
			time.Sleep(50 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
