package natslite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A shim dials NATS without net.Dial: that, and anything else that takes a
// host name, links Go's whole resolver, a fifth of the shim's binary and
// so of every shim's resident memory. Host names (an external server's, as
// in docker-compose) are resolved here instead: /etc/hosts, then an A (or
// AAAA) query to the nameservers of /etc/resolv.conf, with its search
// domains.

// Files and port the resolver reads; tests point them elsewhere.
var (
	hostsFile   = "/etc/hosts"
	resolvConf  = "/etc/resolv.conf"
	dnsPort     = uint16(53)
	dnsTimeout  = 2 * time.Second
	errNotFound = errors.New("no such host")
)

// dialTCP connects to hostport ("host:port") within timeout.
func dialTCP(hostport string, timeout time.Duration) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	addrs, err := lookupHost(host)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", host, err)
	}
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		var c net.Conn
		if c, err = connectTCP(netip.AddrPortFrom(a, uint16(port)), time.Until(deadline)); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// connectTCP is a non-blocking connect(2) awaited with poll(2), handed to the
// net package as a file (net.FileConn needs no resolver).
func connectTCP(ap netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var sa unix.Sockaddr
	family := unix.AF_INET
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "nats")
	defer f.Close() // FileConn holds a dup
	if err := unix.Connect(fd, sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return nil, fmt.Errorf("connect %s: %w", ap, err)
	}
	for deadline := time.Now().Add(timeout); ; {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return nil, fmt.Errorf("connect %s: i/o timeout", ap)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("poll", err)
		}
		if n > 0 {
			break
		}
	}
	if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
		if err == nil {
			err = unix.Errno(soerr)
		}
		return nil, fmt.Errorf("connect %s: %w", ap, err)
	}
	return net.FileConn(f)
}

// lookupHost gives the addresses of host: an IP literal, an /etc/hosts
// entry, or what DNS answers.
func lookupHost(host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if b, err := os.ReadFile(hostsFile); err == nil {
		if addrs := hostsEntry(string(b), host); len(addrs) > 0 {
			return addrs, nil
		}
	}
	b, err := os.ReadFile(resolvConf)
	if err != nil {
		return nil, err
	}
	servers, search := parseResolvConf(string(b))
	if len(servers) == 0 {
		servers = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	names := []string{host}
	if !strings.HasSuffix(host, ".") {
		var withSearch []string
		for _, s := range search {
			withSearch = append(withSearch, host+"."+s)
		}
		if strings.Contains(host, ".") { // ndots:1: the name as given first
			names = append(names, withSearch...)
		} else {
			names = append(withSearch, host)
		}
	}
	for _, name := range names {
		for _, qtype := range []uint16{1, 28} { // A, AAAA
			for _, srv := range servers {
				if addrs, err := queryDNS(srv, name, qtype); err == nil && len(addrs) > 0 {
					return addrs, nil
				}
			}
		}
	}
	return nil, errNotFound
}

func hostsEntry(hosts, name string) []netip.Addr {
	var out []netip.Addr
	for _, line := range strings.Split(hosts, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		for _, n := range f[1:] {
			if strings.EqualFold(n, strings.TrimSuffix(name, ".")) {
				out = append(out, a)
			}
		}
	}
	return out
}

func parseResolvConf(conf string) (servers []netip.Addr, search []string) {
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil {
				servers = append(servers, a)
			}
		case "search", "domain":
			search = f[1:]
		}
	}
	return servers, search
}

// queryDNS asks srv for the qtype (A or AAAA) records of name, over UDP.
func queryDNS(srv netip.Addr, name string, qtype uint16) ([]netip.Addr, error) {
	id := uint16(rand.Uint32())
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0) // recursion desired; one question
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 {
			return nil, fmt.Errorf("bad name %q", name)
		}
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0)
	q = binary.BigEndian.AppendUint16(q, qtype)
	q = binary.BigEndian.AppendUint16(q, 1) // IN
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(srv, dnsPort)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(dnsTimeout))
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if n >= 12 && binary.BigEndian.Uint16(buf) == id {
			return parseAnswer(buf[:n], qtype)
		}
	}
}

// parseAnswer reads the address records of a DNS response.
func parseAnswer(m []byte, qtype uint16) ([]netip.Addr, error) {
	if m[3]&0x0f != 0 {
		return nil, fmt.Errorf("dns rcode %d", m[3]&0x0f)
	}
	qd, an := int(binary.BigEndian.Uint16(m[4:])), int(binary.BigEndian.Uint16(m[6:]))
	off := 12
	skipName := func() bool {
		for off < len(m) {
			l := int(m[off])
			switch {
			case l == 0:
				off++
				return true
			case l&0xc0 == 0xc0: // compression pointer ends the name
				off += 2
				return off <= len(m)
			default:
				off += 1 + l
			}
		}
		return false
	}
	for i := 0; i < qd; i++ {
		if !skipName() || off+4 > len(m) {
			return nil, errors.New("dns: truncated question")
		}
		off += 4
	}
	var out []netip.Addr
	for i := 0; i < an; i++ {
		if !skipName() || off+10 > len(m) {
			return nil, errors.New("dns: truncated answer")
		}
		typ, rdlen := binary.BigEndian.Uint16(m[off:]), int(binary.BigEndian.Uint16(m[off+8:]))
		off += 10
		if off+rdlen > len(m) {
			return nil, errors.New("dns: truncated record")
		}
		if typ == qtype {
			if a, ok := netip.AddrFromSlice(m[off : off+rdlen]); ok {
				out = append(out, a)
			}
		}
		off += rdlen
	}
	return out, nil
}
