package network

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
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

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPublishedPort: busybox httpd published with -p answers on the host's
// loopback and on the host's own address; docker port and inspect show the
// binding; the port is released (rule and socket) when the container stops.
func TestPublishedPort(t *testing.T) {
	s := shared(t)
	port := freePort(t)
	s.MustDocker("run", "-d", "--name", "web", "-p", port+":80", "busybox", "sh", "-c",
		"mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p 80 -h /www")
	defer s.Docker("rm", "-f", "web")
	var body string
	if !eventually(10*time.Second, func() bool { body, _ = httpGet("http://127.0.0.1:" + port + "/"); return body == "hello-berth\n" }) {
		t.Fatalf("GET 127.0.0.1:%s: %q", port, body)
	}
	// wget, as the issue says, from the host
	if out, err := exec.Command("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:"+port+"/").Output(); err != nil || string(out) != "hello-berth\n" {
		t.Fatalf("wget: %v %q", err, out)
	}
	if ip := hostAddr(t); ip != "" {
		if body, err := httpGet("http://" + ip + ":" + port + "/"); body != "hello-berth\n" {
			t.Fatalf("GET %s:%s: %q %v", ip, port, body, err)
		}
	}
	if out := s.MustDocker("port", "web"); out != "80/tcp -> 0.0.0.0:"+port {
		t.Fatalf("docker port: %q", out)
	}
	if out := s.MustDocker("inspect", "-f", `{{json .NetworkSettings.Ports}}`, "web"); out != `{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"`+port+`"}]}` {
		t.Fatalf("Ports: %s", out)
	}
	if out := s.MustDocker("ps", "--filter", "name=web", "--format", "{{.Ports}}"); out != "0.0.0.0:"+port+"->80/tcp" {
		t.Fatalf("ps ports: %q", out)
	}
	// a second container cannot take the same port: Docker's error
	_, errOut, code := s.Docker("run", "-d", "--name", "web2", "-p", port+":80", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "web2")
	if code != 125 || !strings.Contains(errOut, "Bind for 0.0.0.0:"+port+" failed: port is already allocated") ||
		!strings.Contains(errOut, "failed to set up container networking: driver failed programming external connectivity on endpoint web2") {
		t.Fatalf("second -p %s: %d %s", port, code, errOut)
	}
	s.MustDocker("stop", "-t", "1", "web")
	if rules := natRules(t, s); strings.Contains(rules, "--dport "+port) {
		t.Fatalf("the DNAT rule is still there after the stop:\n%s", rules)
	}
	// the port is free again: the host can listen on it
	l, err := net.Listen("tcp", "0.0.0.0:"+port)
	if err != nil {
		t.Fatalf("the port is still held after the stop: %v", err)
	}
	l.Close()
	if out := s.MustDocker("port", "web"); out != "" {
		t.Fatalf("docker port of a stopped container: %q", out)
	}
	s.MustDocker("start", "web")
	if !eventually(10*time.Second, func() bool { body, _ = httpGet("http://127.0.0.1:" + port + "/"); return body == "hello-berth\n" }) {
		t.Fatalf("after a restart: %q", body)
	}
}

// TestPublishAllAndRanges: -P gives every exposed port an ephemeral host
// port; a host range gives one of the range; a UDP port and an address.
func TestPublishAllAndRanges(t *testing.T) {
	s := shared(t)
	s.MustDocker("run", "-d", "--name", "pall", "--expose", "7000", "--expose", "7001/udp", "-P",
		"-p", "127.0.0.1:40100-40110:8080", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "pall")
	out := lines(s.MustDocker("port", "pall"))
	if len(out) != 3 {
		t.Fatalf("docker port: %q", out)
	}
	got := strings.Join(out, "\n")
	for _, re := range []string{`7000/tcp -> 0\.0\.0\.0:\d+`, `7001/udp -> 0\.0\.0\.0:\d+`, `8080/tcp -> 127\.0\.0\.1:401(0\d|10)`} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("docker port: no %s in\n%s", re, got)
		}
	}
	rules := natRules(t, s)
	if !strings.Contains(rules, "-d 127.0.0.1/32 -p tcp -m tcp --dport 401") || !strings.Contains(rules, "-p udp -m udp --dport") {
		t.Fatalf("rules:\n%s", rules)
	}
}

// natRules lists the stack's DNAT chain.
func natRules(t *testing.T, s *stack.Stack) string {
	out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", s.Net.ChainPrefix+"-DNAT").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables: %v %s", err, out)
	}
	return string(out)
}

// hostAddr is the host's first non-loopback IPv4 address, or "".
func hostAddr(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !strings.HasPrefix(n.IP.String(), "10.") {
			return n.IP.String()
		}
	}
	return ""
}
