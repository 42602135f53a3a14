package network

import (
	"os"
	"strings"
	"testing"
)

// TestResolvAndHostsOptions: --dns, --dns-search and --dns-option make the
// container's resolv.conf as Docker does; --domainname is the container's
// NIS domain and names its hosts line; --network host takes the host's
// hostname.
func TestResolvAndHostsOptions(t *testing.T) {
	s := shared(t)
	out := s.MustDocker("run", "--rm", "--dns", "10.1.2.3", "--dns", "10.1.2.4", "--dns-search", "example.com",
		"--dns-option", "ndots:2", "busybox", "cat", "/etc/resolv.conf")
	if want := "search example.com\nnameserver 10.1.2.3\nnameserver 10.1.2.4\noptions ndots:2"; out != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", out, want)
	}
	out = s.MustDocker("run", "--rm", "--hostname", "web", "--domainname", "example.com", "busybox", "sh", "-c",
		`cat /proc/sys/kernel/domainname; grep -w web /etc/hosts | cut -f2`)
	if want := "example.com\nweb.example.com web"; out != want {
		t.Errorf("domainname and hosts line: %q, want %q", out, want)
	}
	host, _ := os.Hostname()
	if out := s.MustDocker("run", "--rm", "--network", "host", "busybox", "hostname"); out != host {
		t.Errorf("hostname with --network host: %q, want the host's %q", out, host)
	}
	// with --network host, --dns still rewrites the file
	out = s.MustDocker("run", "--rm", "--network", "host", "--dns-option", "ndots:3", "busybox", "cat", "/etc/resolv.conf")
	if !strings.HasSuffix(out, "options ndots:3") {
		t.Errorf("resolv.conf with --network host --dns-option:\n%s", out)
	}
}
