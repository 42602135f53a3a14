package natslite

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeDNS answers A queries for the names in records (FQDN without the
// final dot) on a loopback UDP port, and records the names asked.
func fakeDNS(t *testing.T, records map[string]string) (port uint16, asked func() []string) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			var labels []string
			off := 12
			for q[off] != 0 {
				l := int(q[off])
				labels = append(labels, string(q[off+1:off+1+l]))
				off += 1 + l
			}
			name := strings.Join(labels, ".")
			qtype := binary.BigEndian.Uint16(q[off+1:])
			got <- name
			resp := append([]byte{}, q[:off+5]...)
			resp[2], resp[3] = 0x81, 0x80 // response, recursion available
			ip, ok := records[name]
			if !ok || qtype != 1 {
				resp[3] |= 3 // NXDOMAIN
			} else {
				// a CNAME (to the name itself: rdata is a pointer) before the A
				resp[7] = 2
				resp = append(resp, 0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12)
				resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
				a := netip.MustParseAddr(ip).As4()
				resp = append(resp, a[:]...)
			}
			c.WriteToUDP(resp, from)
		}
	}()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port), func() []string {
		var out []string
		for {
			select {
			case n := <-got:
				out = append(out, n)
			default:
				return out
			}
		}
	}
}

func TestLookupHost(t *testing.T) {
	dir := t.TempDir()
	oldHosts, oldConf, oldPort := hostsFile, resolvConf, dnsPort
	t.Cleanup(func() { hostsFile, resolvConf, dnsPort = oldHosts, oldConf, oldPort })
	hostsFile, resolvConf = filepath.Join(dir, "hosts"), filepath.Join(dir, "resolv.conf")
	os.WriteFile(hostsFile, []byte("127.0.0.1 localhost\n10.0.0.7 natsbox nats-alias # comment\n"), 0o644)
	var asked func() []string
	dnsPort, asked = fakeDNS(t, map[string]string{"nats.svc.test": "10.1.2.3", "other.example": "10.9.9.9"})
	os.WriteFile(resolvConf, []byte("nameserver 127.0.0.1\nsearch svc.test\noptions ndots:1\n"), 0o644)

	// in this order: the first name that reaches the server is the bare
	// one's, with the search domain
	for _, c := range [][2]string{
		{"192.0.2.1", "192.0.2.1"},
		{"::1", "::1"},
		{"nats-alias", "10.0.0.7"},    // /etc/hosts
		{"nats", "10.1.2.3"},          // search domain first for a bare name
		{"other.example", "10.9.9.9"}, // a dotted name as given first
	} {
		host, want := c[0], c[1]
		addrs, err := lookupHost(host)
		if err != nil || len(addrs) == 0 || addrs[0].String() != want {
			t.Errorf("%s: %v %v, want %s", host, addrs, err, want)
		}
	}
	if q := asked(); len(q) == 0 || q[0] != "nats.svc.test" {
		t.Errorf("names asked %v", q)
	}
	if _, err := lookupHost("missing"); err == nil {
		t.Error("a name nobody knows resolved")
	}
}

func TestDialTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("INFO {}\r\n"))
			c.Close()
		}
	}()
	c, err := dialTCP(l.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	c.Close()
	if string(buf[:n]) != "INFO {}\r\n" {
		t.Fatalf("read %q", buf[:n])
	}
	// nobody listening: refused at once
	addr := l.Addr().String()
	l.Close()
	if _, err := dialTCP(addr, time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial to a closed port: %v", err)
	}
	// an address that never answers: the timeout holds
	start := time.Now()
	if _, err := dialTCP("192.0.2.1:4222", 300*time.Millisecond); err == nil {
		t.Fatal("dial to a black hole succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dial timeout of 300ms took %v", d)
	}
}
