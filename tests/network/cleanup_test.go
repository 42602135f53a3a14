package network

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/tests/stack"
)

// leftovers lists what of the stack's networking remains with no container
// running: ports on its bridges, pinned namespaces, sandbox records,
// published-port rules, veths of berth's on its bridges.
func leftovers(t *testing.T, s *stack.Stack, bridges ...string) []string {
	t.Helper()
	var out []string
	for _, br := range append(bridges, s.Net.Bridge) {
		ports, _ := os.ReadDir(filepath.Join("/sys/class/net", br, "brif"))
		for _, p := range ports {
			out = append(out, "port "+p.Name()+" on "+br)
		}
	}
	for _, m := range stack.Mounts(s.ExecRoot) {
		if strings.Contains(m, "/netns/") {
			out = append(out, "namespace "+m)
		}
	}
	sbs, _ := filepath.Glob(filepath.Join(s.ExecRoot, "network", "sandboxes", "*.json"))
	out = append(out, sbs...)
	rules, err := exec.Command("iptables", "-w", "-t", "nat", "-S", s.Net.ChainPrefix+"-DNAT").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables: %v %s", err, rules)
	}
	for _, l := range lines(string(rules)) {
		if !strings.HasPrefix(l, "-N ") {
			out = append(out, "rule "+l)
		}
	}
	return out
}

// noLeftovers fails t unless, within a few seconds (veths and namespaces
// are deleted in the background after a container's end), nothing is left.
func noLeftovers(t *testing.T, s *stack.Stack, bridges ...string) {
	t.Helper()
	var got []string
	if !eventually(5*time.Second, func() bool { got = leftovers(t, s, bridges...); return len(got) == 0 }) {
		t.Fatalf("left after removing every container: %q", got)
	}
}

// bridgeOf is the interface name of a user network.
func bridgeOf(s *stack.Stack, net string) string {
	return s.MustDocker("network", "inspect", "-f", "br-{{printf \"%.12s\" .Id}}", net)
}

// TestNothingLeftAfterRemoval: with every container removed, no veth,
// namespace, address or iptables rule of the stack's remains, and each
// bridge keeps only its own address.
func TestNothingLeftAfterRemoval(t *testing.T) {
	s := stack.Start(t)
	s.ImportBusybox()
	s.MustDocker("network", "create", "leaknet")
	br := bridgeOf(s, "leaknet")
	s.MustDocker("run", "-d", "--name", "l1", "-p", freePort(t)+":80", "busybox", "sleep", "300")
	s.MustDocker("run", "-d", "--name", "l2", "--network", "leaknet", "-P", "--expose", "81", "busybox", "sleep", "300")
	s.MustDocker("network", "connect", "leaknet", "l1")
	s.MustDocker("run", "-d", "--name", "l3", "--network", "container:l1", "busybox", "sleep", "300")
	s.MustDocker("run", "--rm", "busybox", "true")
	if got := leftovers(t, s, br); len(got) < 3 {
		t.Fatalf("while running, expected ports and rules, got %q", got)
	}
	s.MustDocker("rm", "-f", "l3", "l2", "l1")
	noLeftovers(t, s, br)
	addrs, _ := exec.Command("ip", "-o", "-4", "addr", "show", "dev", br).Output()
	if n := len(lines(string(addrs))); n != 1 {
		t.Fatalf("%s has %d addresses: %s", br, n, addrs)
	}
	s.MustDocker("network", "rm", "leaknet")
	if _, err := os.Stat(filepath.Join("/sys/class/net", br)); err == nil {
		t.Fatalf("bridge %s still there after network rm", br)
	}
}

// TestSupervisorKillReconciles: a supervisor SIGKILLed and restarted keeps
// the network of the containers that still run (port still answered, the
// same address, rules not doubled, the address not handed out again) and
// takes apart that of one that exited meanwhile.
func TestSupervisorKillReconciles(t *testing.T) {
	s := stack.Start(t)
	s.ImportBusybox()
	port := freePort(t)
	s.MustDocker("run", "-d", "--name", "keep", "-p", port+":80", "busybox", "sh", "-c",
		"mkdir -p /www && echo kept > /www/index.html && exec httpd -f -p 80 -h /www")
	s.MustDocker("run", "-d", "--name", "goes", "-p", freePort(t)+":80", "busybox", "sleep", "4")
	keepIP := s.MustDocker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "keep")
	goesID := s.MustDocker("inspect", "-f", "{{.Id}}", "goes")
	before := len(leftovers(t, s))
	s.KillSupervisor(syscall.SIGKILL)
	time.Sleep(5 * time.Second) // "goes" exits while no supervisor runs
	s.StartSupervisor()
	if !eventually(20*time.Second, func() bool {
		st, _, _ := s.Docker("inspect", "-f", "{{.State.Status}}", "goes")
		return st == "exited"
	}) {
		t.Fatal("goes not seen exited after the restart")
	}
	if !eventually(10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(s.ExecRoot, "netns", goesID))
		return os.IsNotExist(err)
	}) {
		t.Fatal("the namespace of the exited container is left")
	}
	var body string
	if !eventually(10*time.Second, func() bool { body, _ = httpGet("http://127.0.0.1:" + port + "/"); return body == "kept\n" }) {
		t.Fatalf("the running container's port after the restart: %q", body)
	}
	if ip := s.MustDocker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "keep"); ip != keepIP {
		t.Fatalf("address %s became %s", keepIP, ip)
	}
	// one port, one namespace, one sandbox, one rule fewer: goes' went
	var after []string
	if !eventually(5*time.Second, func() bool { after = leftovers(t, s); return len(after) == before-4 }) {
		t.Fatalf("before the kill %d items, after %d: %q", before, len(after), after)
	}
	// the kept address is not handed out twice
	for i := 0; i < 3; i++ {
		if ip := s.MustDocker("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0 | awk '{print $4}'"); strings.HasPrefix(ip, keepIP+"/") {
			t.Fatalf("%s handed out again", keepIP)
		}
	}
	// the port is still reserved: another container cannot take it
	if _, errOut, code := s.Docker("run", "--rm", "-p", port+":80", "busybox", "true"); code == 0 || !strings.Contains(errOut, "port is already allocated") {
		t.Fatalf("the kept port was given again: %d %s", code, errOut)
	}
	s.MustDocker("rm", "-f", "keep", "goes")
	noLeftovers(t, s)
}
