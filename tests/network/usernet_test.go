package network

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestUserNetworkNames: containers of one user-defined network reach each
// other by name and alias; a container of another network cannot reach
// them (isolation); network inspect lists the running containers; rm of a
// network in use fails as Docker's does; events for the network's life.
func TestUserNetworkNames(t *testing.T) {
	s := shared(t)
	since := time.Now().Unix()
	id := s.MustDocker("network", "create", "appnet")
	defer s.Docker("network", "rm", "appnet")
	s.MustDocker("network", "create", "othernet")
	defer s.Docker("network", "rm", "othernet")
	if out := s.MustDocker("network", "ls", "--filter", "name=appnet", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); out != "appnet bridge local" {
		t.Fatalf("network ls: %q", out)
	}
	s.MustDocker("run", "-d", "--name", "db", "--network", "appnet", "--network-alias", "database", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "db")
	for _, name := range []string{"db", "database"} {
		out, errOut, code := s.Docker("run", "--rm", "--network", "appnet", "busybox", "ping", "-c", "1", "-W", "2", name)
		if code != 0 || !strings.Contains(out, "1 packets received") {
			t.Fatalf("ping %s on appnet: %d %s %s", name, code, out, errOut)
		}
	}
	// another network: the name is unknown there, the address unreachable
	dbIP := s.MustDocker("inspect", "-f", "{{.NetworkSettings.Networks.appnet.IPAddress}}", "db")
	if _, _, code := s.Docker("run", "--rm", "--network", "othernet", "busybox", "ping", "-c", "1", "-W", "1", "db"); code == 0 {
		t.Fatal("the name db resolves on othernet")
	}
	if out, _, code := s.Docker("run", "--rm", "--network", "othernet", "busybox", "ping", "-c", "1", "-W", "1", dbIP); code == 0 {
		t.Fatalf("othernet reaches appnet's %s: %s", dbIP, out)
	}
	// the default bridge neither
	if _, _, code := s.Docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", dbIP); code == 0 {
		t.Fatalf("the default bridge reaches appnet's %s", dbIP)
	}
	var nets []struct {
		ID         string `json:"Id"`
		Containers map[string]struct{ Name, IPv4Address string }
		IPAM       struct {
			Config []struct{ Subnet, Gateway string }
		}
	}
	if err := json.Unmarshal([]byte(s.MustDocker("network", "inspect", "appnet")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect: %v", err)
	}
	if nets[0].ID != id || len(nets[0].Containers) != 1 || len(nets[0].IPAM.Config) != 1 {
		t.Fatalf("network inspect: %+v", nets[0])
	}
	for _, c := range nets[0].Containers {
		if c.Name != "db" || !strings.HasPrefix(c.IPv4Address, dbIP+"/") {
			t.Fatalf("network inspect containers: %+v", nets[0].Containers)
		}
	}
	_, errOut, code := s.Docker("network", "rm", "appnet")
	if code != 1 || !strings.Contains(errOut, `error while removing network: network appnet has active endpoints (name:"db" id:`) {
		t.Fatalf("rm of a network in use: %d %s", code, errOut)
	}
	// connect and disconnect a running container
	s.MustDocker("network", "connect", "othernet", "db")
	if out := s.MustDocker("inspect", "-f", "{{len .NetworkSettings.Networks}} {{.NetworkSettings.Networks.othernet.IPAddress}}", "db"); !strings.HasPrefix(out, "2 10.") {
		t.Fatalf("after connect: %q", out)
	}
	if out, errOut, code := s.Docker("run", "--rm", "--network", "othernet", "busybox", "ping", "-c", "1", "-W", "2", "db"); code != 0 {
		t.Fatalf("db on othernet after connect: %s %s", out, errOut)
	}
	s.MustDocker("network", "disconnect", "othernet", "db")
	if out := s.MustDocker("inspect", "-f", "{{len .NetworkSettings.Networks}}", "db"); out != "1" {
		t.Fatalf("after disconnect: %q networks", out)
	}
	s.MustDocker("rm", "-f", "db")
	s.MustDocker("network", "rm", "appnet")
	ev := s.MustDocker("events", "--since", itoa(since), "--until", itoa(time.Now().Unix()+1), "--filter", "type=network", "--filter", "network=appnet", "--format", "{{.Action}}")
	got := strings.Join(lines(ev), " ")
	for _, want := range []string{"create", "connect", "disconnect", "destroy"} {
		if !strings.Contains(got, want) {
			t.Errorf("network events %q: no %s", got, want)
		}
	}
}

// TestNetworkErrors: Docker's messages and statuses.
func TestNetworkErrors(t *testing.T) {
	s := shared(t)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "--rm", "--network", "nosuchnet", "busybox", "true"}, 125, "network nosuchnet not found"},
		{[]string{"network", "inspect", "nosuchnet"}, 1, "network nosuchnet not found"},
		{[]string{"network", "rm", "nosuchnet"}, 1, "network nosuchnet not found"},
		{[]string{"network", "rm", "bridge"}, 1, "bridge is a pre-defined network and cannot be removed"},
		{[]string{"network", "create", "bridge"}, 1, "network with name bridge already exists"},
		{[]string{"run", "--rm", "--network", "container:nosuch", "busybox", "true"}, 125, "No such container: nosuch"},
		{[]string{"run", "--rm", "--ip", "10.1.2.3", "busybox", "true"}, 125, "user specified IP address is supported on user defined networks only"},
		{[]string{"run", "--rm", "-h", "x", "--network", "container:nosuch", "busybox", "true"}, 125, "conflicting options: hostname and the network mode"},
	} {
		_, errOut, code := s.Docker(c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("docker %s: exit %d %q, want %d %q", strings.Join(c.args, " "), code, errOut, c.code, c.msg)
		}
	}
	// the HTTP statuses
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/networks/nosuchnet", "", 404},
		{"DELETE", "/networks/bridge", "", 403},
		{"POST", "/networks/create", `{"Name":"bridge"}`, 409},
	} {
		if got := apiStatus(t, s, c.method, c.path, c.body); got != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, got, c.status)
		}
	}
	s.MustDocker("network", "create", "busy")
	defer s.Docker("network", "rm", "busy")
	s.MustDocker("run", "-d", "--name", "busy-c", "--network", "busy", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "busy-c")
	if got := apiStatus(t, s, "DELETE", "/networks/busy", ""); got != 403 {
		t.Errorf("DELETE a network in use: %d, want 403", got)
	}
}

// TestNoneAndContainerModes: --network none has only lo; --network
// container:X shares X's interfaces (the same address, and X's hostname).
func TestNoneAndContainerModes(t *testing.T) {
	s := shared(t)
	out := s.MustDocker("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net; ip -o -4 addr")
	if got := strings.Fields(out); len(got) < 1 || got[0] != "lo" || strings.Contains(out, "eth0") || !strings.Contains(out, "127.0.0.1") {
		t.Fatalf("--network none: %q", out)
	}
	s.MustDocker("run", "-d", "--name", "nsowner", "-h", "owner", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "nsowner")
	ip := s.MustDocker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "nsowner")
	out = s.MustDocker("run", "--rm", "--network", "container:nsowner", "busybox", "sh", "-c", "ip -o -4 addr show eth0; hostname")
	if !strings.Contains(out, " "+ip+"/") || !strings.HasSuffix(out, "owner") {
		t.Fatalf("container:nsowner (%s): %q", ip, out)
	}
	// host mode: the host's interfaces
	out = s.MustDocker("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
	if !strings.Contains(out, s.Net.Bridge) {
		t.Fatalf("--network host does not see the host's %s: %q", s.Net.Bridge, out)
	}
	s.MustDocker("stop", "-t", "0", "nsowner")
	_, errOut, code := s.Docker("run", "--rm", "--network", "container:nsowner", "busybox", "true")
	if code != 125 || !strings.Contains(errOut, "cannot join network namespace of a non running container: container nsowner is exited") {
		t.Fatalf("container: of a stopped container: %d %s", code, errOut)
	}
}
