package network

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// remoteHost is another host for the test: a network namespace of its own
// joined to this one by a veth pair on a /30 of the stack's slot.
type remoteHost struct {
	ns, hostIP, ip string
}

func newRemoteHost(t *testing.T, slot int, pool string) *remoteHost {
	_, sn, _ := net.ParseCIDR(pool)
	b := sn.IP.To4()
	// the last /24 of the slot's /20, which user networks do not reach here
	prefix := fmt.Sprintf("%d.%d.%d.", b[0], b[1], b[2]+15)
	r := &remoteHost{ns: "bnr" + strconv.Itoa(slot), hostIP: prefix + "1", ip: prefix + "2"}
	hv, rv := "bnrh"+strconv.Itoa(slot), "bnrr"+strconv.Itoa(slot)
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	exec.Command("ip", "netns", "del", r.ns).Run()
	run("ip", "netns", "add", r.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", r.ns).Run(); exec.Command("ip", "link", "del", hv).Run() })
	run("ip", "link", "add", hv, "type", "veth", "peer", "name", rv, "netns", r.ns)
	run("ip", "addr", "add", r.hostIP+"/30", "dev", hv)
	run("ip", "link", "set", hv, "up")
	run("ip", "netns", "exec", r.ns, "ip", "addr", "add", r.ip+"/30", "dev", rv)
	run("ip", "netns", "exec", r.ns, "ip", "link", "set", rv, "up")
	run("ip", "netns", "exec", r.ns, "ip", "link", "set", "lo", "up")
	run("ip", "netns", "exec", r.ns, "ip", "route", "add", "default", "via", r.hostIP)
	return r
}

// TestTrafficFromAnotherHost: a published port answers a connection from
// another host to this host's address (DNAT in PREROUTING), and a
// container's own connection to that host leaves masqueraded with this
// host's address.
func TestTrafficFromAnotherHost(t *testing.T) {
	s := shared(t)
	r := newRemoteHost(t, s.Net.N, s.Net.Pool)
	port := freePort(t)
	s.MustDocker("run", "-d", "--name", "pub", "-p", port+":80", "busybox", "sh", "-c",
		"mkdir -p /www && echo from-afar > /www/index.html && exec httpd -f -p 80 -h /www")
	defer s.Docker("rm", "-f", "pub")
	var out []byte
	if !eventually(10*time.Second, func() bool {
		out, _ = exec.Command("ip", "netns", "exec", r.ns, "busybox", "wget", "-q", "-O", "-", "http://"+r.hostIP+":"+port+"/").Output()
		return string(out) == "from-afar\n"
	}) {
		t.Fatalf("wget from the other host: %q", out)
	}
	// the other host runs a server that tells the address it sees
	www := t.TempDir()
	os.MkdirAll(filepath.Join(www, "cgi-bin"), 0o755)
	os.WriteFile(filepath.Join(www, "cgi-bin", "ip"), []byte("#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho $REMOTE_ADDR\n"), 0o755)
	srv := exec.Command("ip", "netns", "exec", r.ns, "busybox", "httpd", "-f", "-p", r.ip+":9999", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var seen string
	if !eventually(10*time.Second, func() bool {
		seen, _, _ = s.Docker("run", "--rm", "busybox", "wget", "-q", "-O", "-", "http://"+r.ip+":9999/cgi-bin/ip")
		return seen != ""
	}) {
		t.Fatal("the container does not reach the other host")
	}
	if strings.TrimSpace(seen) != r.hostIP {
		t.Fatalf("the other host sees %q, want the host's %s (masquerade)", seen, r.hostIP)
	}
}
