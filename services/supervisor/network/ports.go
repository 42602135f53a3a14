package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/go-connections/nat"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

// portReq is one port to publish: a host port, or a range to pick one
// from (0-0: any ephemeral port).
type portReq struct {
	proto        string
	hostIP       string
	hostLo       int
	hostHi       int
	ctrPort      int
	rangeGiven   bool // HostPort "a-b"
	explicitPort bool
}

// portRequests reads -p (PortBindings) and -P (PublishAll: every exposed
// port not bound otherwise gets an ephemeral host port).
func portRequests(bindings nat.PortMap, exposed nat.PortSet, publishAll bool) ([]portReq, error) {
	var out []portReq
	keys := make([]string, 0, len(bindings))
	for p := range bindings {
		keys = append(keys, string(p))
	}
	if publishAll {
		for p := range exposed {
			if _, ok := bindings[p]; !ok {
				keys = append(keys, string(p))
			}
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := nat.Port(k)
		proto := p.Proto()
		if proto != "tcp" && proto != "udp" {
			return nil, errdefs.New(errdefs.InvalidParameter, "unsupported protocol %s for port %s (tcp and udp are)", proto, p)
		}
		lo, hi, err := p.Range()
		if err != nil || lo != hi || lo < 1 || lo > 65535 {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid port specification: %q", k)
		}
		bs := bindings[p]
		if len(bs) == 0 {
			bs = []nat.PortBinding{{}}
		}
		for _, b := range bs {
			r := portReq{proto: proto, hostIP: b.HostIP, ctrPort: lo}
			if r.hostIP == "" {
				r.hostIP = "0.0.0.0"
			}
			ip := net.ParseIP(r.hostIP)
			if ip == nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid host IP address %q for port %s", b.HostIP, p)
			}
			if ip.To4() == nil {
				// IPv6 is not configured on berth's networks: Docker,
				// with IPv6 off, skips the IPv6 part of a binding too
				continue
			}
			r.hostIP = ip.To4().String()
			if b.HostPort != "" {
				hlo, hhi, err := nat.ParsePortRange(b.HostPort)
				if err != nil || hlo < 1 || hhi > 65535 || hlo > hhi {
					return nil, errdefs.New(errdefs.InvalidParameter, "invalid port specification: %q", b.HostPort)
				}
				r.hostLo, r.hostHi = int(hlo), int(hhi)
				r.rangeGiven = hlo != hhi
				r.explicitPort = true
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// portKey names a taken host port.
type portKey struct {
	proto string
	ip    string
	port  int
}

// reservation holds a host port for a container: the bound socket keeps
// any other program (or another berth) from taking it; the packets
// themselves go to the container through DNAT before they could reach it.
type reservation struct {
	key   portKey
	owner string
	fd    *os.File
}

// ports allocates host ports, Docker's way: a port asked for is taken or
// refused ("port is already allocated"); an ephemeral one is the next free
// in the kernel's local port range.
type ports struct {
	taken map[portKey]*reservation
	next  map[string]int // proto → next ephemeral port to try
	lo    int
	hi    int
}

func newPorts() *ports {
	p := &ports{taken: map[portKey]*reservation{}, next: map[string]int{}, lo: 49153, hi: 60999}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, e1 := strconv.Atoi(f[0])
			hi, e2 := strconv.Atoi(f[1])
			if e1 == nil && e2 == nil && lo > 0 && hi >= lo {
				p.lo, p.hi = lo, hi
			}
		}
	}
	return p
}

// conflict reports whether k clashes with a port taken by berth: the same
// port and protocol on the same address, or either on every address.
func (p *ports) conflict(k portKey) bool {
	for t := range p.taken {
		if t.proto == k.proto && t.port == k.port && (t.ip == k.ip || t.ip == "0.0.0.0" || k.ip == "0.0.0.0") {
			return true
		}
	}
	return false
}

var errAllocated = errors.New("port is already allocated")

// reserve takes one host port of r for owner.
func (p *ports) reserve(r portReq, ctrIP string, owner string) (*reservation, error) {
	try := func(port int) (*reservation, error) {
		k := portKey{r.proto, r.hostIP, port}
		if p.conflict(k) {
			return nil, errAllocated
		}
		fd, err := bindPort(k)
		if err != nil {
			return nil, err
		}
		res := &reservation{key: k, owner: owner, fd: fd}
		p.taken[k] = res
		return res, nil
	}
	if r.explicitPort && !r.rangeGiven {
		res, err := try(r.hostLo)
		if errors.Is(err, errAllocated) {
			return nil, fmt.Errorf("Bind for %s:%d failed: port is already allocated", r.hostIP, r.hostLo)
		}
		if err != nil {
			return nil, fmt.Errorf("failed to bind host port for %s:%d:%s:%d/%s: %w", r.hostIP, r.hostLo, ctrIP, r.ctrPort, r.proto, err)
		}
		return res, nil
	}
	lo, hi := p.lo, p.hi
	if r.rangeGiven {
		lo, hi = r.hostLo, r.hostHi
	}
	start := p.next[r.proto]
	if start < lo || start > hi {
		start = lo
	}
	for i, port := 0, start; i <= hi-lo; i++ {
		if res, err := try(port); err == nil {
			p.next[r.proto] = port + 1
			return res, nil
		}
		if port++; port > hi {
			port = lo
		}
	}
	if r.rangeGiven {
		return nil, fmt.Errorf("Bind for %s:%d-%d failed: port is already allocated", r.hostIP, lo, hi)
	}
	return nil, fmt.Errorf("Bind for %s failed: all ports are allocated", r.hostIP)
}

// rebind takes again, after a supervisor restart, a port a running
// container had; a port meanwhile taken by another program stays mapped
// (the DNAT rule wins) but unreserved, which is logged.
func (p *ports) rebind(m PortMapping, owner string) error {
	k := portKey{m.Proto, m.HostIP, m.HostPort}
	res := &reservation{key: k, owner: owner}
	p.taken[k] = res
	fd, err := bindPort(k)
	res.fd = fd
	return err
}

func (p *ports) releaseOwner(owner string) {
	for k, r := range p.taken {
		if r.owner == owner {
			if r.fd != nil {
				r.fd.Close()
			}
			delete(p.taken, k)
		}
	}
}

// flushConntrack deletes the conntrack entries of the flows to the host
// ports of ps that are UDP, once their rules changed (published, released,
// moved to another address), as Docker does: NAT is decided when an entry
// is made, so a client that keeps sending from the same port would stay
// with the old destination (a container gone, or the host itself) for as
// long as it sends. TCP connections end; they are left alone.
func (m *Manager) flushConntrack(ps []PortMapping) {
	if !m.cfg.IPTables {
		return
	}
	var filters []netlink.CustomConntrackFilter
	for _, p := range ps {
		if p.Proto != "udp" {
			continue
		}
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
			continue
		}
		if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(p.HostPort)); err != nil {
			continue
		}
		filters = append(filters, f)
	}
	if len(filters) == 0 {
		return
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		m.log.Warn("flushing the conntrack entries of published UDP ports", "err", err)
	}
}

// bindPort binds (and for TCP listens on, as Docker does, so that the port
// shows in netstat) a socket on the host port.
func bindPort(k portKey) (*os.File, error) {
	typ := unix.SOCK_STREAM
	if k.proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	sa := &unix.SockaddrInet4{Port: k.port}
	copy(sa.Addr[:], net.ParseIP(k.ip).To4())
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 1); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("%s/%s:%d", k.proto, k.ip, k.port)), nil
}
