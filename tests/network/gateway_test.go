package network

import (
	"strings"
	"testing"
	"time"
)

// TestGatewayFollowsNetworks: the default route and the published ports of
// a running container follow its networks as Docker's gateway endpoint
// does: the first network by name that has a gateway. Connecting a network
// that sorts after the current one changes nothing, one that sorts first
// takes them; disconnecting the network that holds them hands them to a
// remaining one, so that the container still gets out (to another host)
// and its published port still answers. A container started on several
// networks gets the same choice.
func TestGatewayFollowsNetworks(t *testing.T) {
	s := shared(t)
	r := newRemoteHost(t, s.Net.N, s.Net.Pool)
	for _, n := range []string{"a-gw", "z-gw"} {
		s.MustDocker("network", "create", n)
		defer s.Docker("network", "rm", n)
	}
	port := freePort(t)
	s.MustDocker("run", "-d", "--name", "gwc", "-p", port+":80", "busybox", "sh", "-c",
		"mkdir -p /www && echo gw-ok > /www/index.html && exec httpd -f -p 80 -h /www")
	defer s.Docker("rm", "-f", "gwc")
	gateway := func(net string) string {
		return s.MustDocker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", net)
	}
	check := func(step, wantGW string) {
		t.Helper()
		var route string
		for _, l := range lines(s.MustDocker("exec", "gwc", "ip", "route")) {
			if strings.HasPrefix(l, "default ") {
				route += l
			}
		}
		if !strings.HasPrefix(route, "default via "+wantGW+" ") {
			t.Fatalf("%s: default route %q, want one via %s", step, route, wantGW)
		}
		if out, errOut, code := s.Docker("exec", "gwc", "ping", "-c", "1", "-W", "2", r.ip); code != 0 {
			t.Fatalf("%s: the container does not reach another host: %s %s", step, out, errOut)
		}
		var body string
		if !eventually(5*time.Second, func() bool { body, _ = httpGet("http://127.0.0.1:" + port + "/"); return body == "gw-ok\n" }) {
			t.Fatalf("%s: the published port: %q", step, body)
		}
	}
	bridgeGW := gateway("bridge")
	check("on bridge", bridgeGW)
	s.MustDocker("network", "connect", "z-gw", "gwc")
	check("z-gw connected", bridgeGW)
	s.MustDocker("network", "connect", "a-gw", "gwc")
	check("a-gw connected", gateway("a-gw"))
	s.MustDocker("network", "disconnect", "a-gw", "gwc")
	check("a-gw disconnected", bridgeGW)
	s.MustDocker("network", "disconnect", "bridge", "gwc")
	check("bridge disconnected", gateway("z-gw"))
	// the same choice at the start of a container of two networks
	out := s.MustDocker("run", "--rm", "--network", "z-gw", "--network", "a-gw", "busybox", "ip", "route")
	if !strings.Contains(out, "default via "+gateway("a-gw")+" ") {
		t.Fatalf("started on z-gw and a-gw: %s", out)
	}
}
