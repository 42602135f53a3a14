package network

import (
	"strings"
	"testing"
)

// TestDefaultBridgePing: two containers on the default bridge get
// addresses of its subnet and reach each other.
func TestDefaultBridgePing(t *testing.T) {
	s := shared(t)
	s.MustDocker("run", "-d", "--name", "ping-a", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "ping-a")
	ipA := s.MustDocker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "ping-a")
	gw := s.MustDocker("inspect", "-f", "{{.NetworkSettings.Networks.bridge.Gateway}}", "ping-a")
	if ipA == "" || gw+"/24" != s.Net.BIP {
		t.Fatalf("address %q gateway %q, bridge %s", ipA, gw, s.Net.BIP)
	}
	out, errOut, code := s.Docker("run", "--rm", "busybox", "ping", "-c", "2", "-W", "2", ipA)
	if code != 0 || !strings.Contains(out, "2 packets received") {
		t.Fatalf("ping %s: %d %s %s", ipA, code, out, errOut)
	}
	// a default route via the bridge
	out = s.MustDocker("run", "--rm", "busybox", "ip", "route")
	if !strings.Contains(out, "default via "+gw+" dev eth0") {
		t.Fatalf("routes: %s", out)
	}
}
