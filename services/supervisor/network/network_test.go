package network

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/docker/go-connections/nat"
	"github.com/vishvananda/netlink"
)

func TestPool(t *testing.T) {
	p, err := newPool("10.9.0.0/29", "", "10.9.0.1")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 5; i++ { // .2 … .6: not the network, gateway or broadcast
		ip, err := p.allocate("c", nil)
		if err != nil || seen[ip.String()] || ip.String() == "10.9.0.1" || ip.String() == "10.9.0.7" {
			t.Fatalf("allocation %d: %v %v", i, ip, err)
		}
		seen[ip.String()] = true
	}
	if _, err := p.allocate("c", nil); err == nil {
		t.Fatal("a full pool allocated")
	}
	p.release(net.ParseIP("10.9.0.4"), "c")
	if ip, err := p.allocate("d", nil); err != nil || ip.String() != "10.9.0.4" {
		t.Fatalf("after a release: %v %v", ip, err)
	}
	if _, err := p.allocate("e", net.ParseIP("10.9.0.4")); err == nil {
		t.Fatal("an address in use given twice")
	}
}

type (
	natPort    = nat.Port
	natBinding = nat.PortBinding
)

func TestPortRequests(t *testing.T) {
	// -p 8080:80 -p 127.0.0.1::81/udp -P with 82 exposed
	reqs, err := portRequests(map[natPort][]natBinding{
		"80/tcp": {{HostPort: "8080"}},
		"81/udp": {{HostIP: "127.0.0.1"}},
	}, map[natPort]struct{}{"82/tcp": {}}, true)
	if err != nil || len(reqs) != 3 {
		t.Fatalf("%v %+v", err, reqs)
	}
	if r := reqs[0]; r.ctrPort != 80 || r.hostLo != 8080 || r.hostIP != "0.0.0.0" || !r.explicitPort {
		t.Errorf("80: %+v", r)
	}
	if r := reqs[1]; r.ctrPort != 81 || r.proto != "udp" || r.hostIP != "127.0.0.1" || r.explicitPort {
		t.Errorf("81: %+v", r)
	}
	if r := reqs[2]; r.ctrPort != 82 || r.explicitPort {
		t.Errorf("82: %+v", r)
	}
	if _, err := portRequests(map[natPort][]natBinding{"80/sctp": {{}}}, nil, false); err == nil {
		t.Error("sctp accepted")
	}
}

// TestSetupTeardown makes a real bridge and sandbox (as root) and checks
// that Teardown leaves nothing; it logs what each step costs.
func TestSetupTeardown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a bridge, a network namespace and veths")
	}
	dir := t.TempDir()
	m, err := New(Config{Root: dir, ExecRoot: dir, Bridge: "btunit" + itoa3(os.Getpid()), BIP: "10.127.250.1/24", ChainPrefix: "BTU"})
	if err != nil {
		t.Fatal(err)
	}
	defer Cleanup(dir, dir, "BTU")
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for i := 0; i < 3; i++ {
		t0 := time.Now()
		sb, err := m.Setup(SetupRequest{ContainerID: id, Name: "/c", Hostname: "h", Networks: []EndpointRequest{{Network: NameBridge}}})
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if _, err := netlink.LinkByName(sb.Endpoints[0].HostVeth); err != nil {
			t.Fatalf("no host veth: %v", err)
		}
		m.Teardown(id)
		t2 := time.Now()
		m.Wait()
		t.Logf("setup %v, teardown %v (then %v in the background)", t1.Sub(t0), t2.Sub(t1), time.Since(t2))
		if _, err := netlink.LinkByName(sb.Endpoints[0].HostVeth); err == nil {
			t.Fatal("the host veth is left")
		}
		if _, err := os.Stat(sb.NetNS); err == nil {
			t.Fatal("the namespace is left")
		}
	}
}

func itoa3(i int) string {
	return string(rune('a'+i%26)) + string(rune('a'+(i/26)%26)) + string(rune('a'+(i/676)%26))
}
