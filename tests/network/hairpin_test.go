package network

import (
	"testing"
	"time"
)

// TestHairpin: a container reaches a published port through the host's
// address, both another container's (on the same bridge) and its own, as
// with Docker: the DNAT'd connection comes back out the bridge it came in
// by, so it is masqueraded for the answer to return the same way.
func TestHairpin(t *testing.T) {
	s := shared(t)
	ip := hostAddr(t)
	if ip == "" {
		t.Skip("the host has no address outside loopback and 10/8")
	}
	port := freePort(t)
	s.MustDocker("run", "-d", "--name", "hairpin", "-p", port+":80", "busybox", "sh", "-c",
		"mkdir -p /www && echo hairpin > /www/index.html && exec httpd -f -p 80 -h /www")
	defer s.Docker("rm", "-f", "hairpin")
	url := "http://" + ip + ":" + port + "/"
	var out string
	if !eventually(10*time.Second, func() bool { out, _ = httpGet(url); return out == "hairpin\n" }) {
		t.Fatalf("GET %s from the host: %q", url, out)
	}
	out, errOut, code := s.Docker("run", "--rm", "busybox", "timeout", "5", "wget", "-q", "-O", "-", url)
	if code != 0 || out != "hairpin" {
		t.Errorf("another container's wget %s: %d %q %s", url, code, out, errOut)
	}
	out, errOut, code = s.Docker("exec", "hairpin", "timeout", "5", "wget", "-q", "-O", "-", url)
	if code != 0 || out != "hairpin" {
		t.Errorf("the container's own wget %s: %d %q %s", url, code, out, errOut)
	}
}
