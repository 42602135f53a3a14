package network

import (
	"encoding/binary"
	"fmt"
	"net"

	"berth/pkg/errdefs"
)

// pool hands out the IPv4 addresses of one network. Allocations are kept in
// memory and rebuilt, after a supervisor restart, from the sandboxes of the
// containers that still run (the sandbox file is the persistent record of
// an allocation).
type pool struct {
	subnet *net.IPNet
	rng    *net.IPNet // where addresses come from (the subnet, or --ip-range)
	gw     net.IP
	used   map[uint32]string // address → container ID
	next   uint32            // addresses are handed out in turn, not reused at once
}

func ip2u(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func u2ip(u uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, u)
	return ip
}

func newPool(subnet, ipRange, gateway string) (*pool, error) {
	_, sn, err := net.ParseCIDR(subnet)
	if err != nil || sn.IP.To4() == nil {
		return nil, fmt.Errorf("invalid IPv4 subnet %q", subnet)
	}
	p := &pool{subnet: sn, rng: sn, used: map[uint32]string{}}
	if ipRange != "" {
		_, r, err := net.ParseCIDR(ipRange)
		if err != nil || !sn.Contains(r.IP) {
			return nil, fmt.Errorf("invalid ip range %q for subnet %s", ipRange, subnet)
		}
		p.rng = r
	}
	if p.gw = net.ParseIP(gateway).To4(); p.gw == nil {
		return nil, fmt.Errorf("invalid gateway %q", gateway)
	}
	return p, nil
}

func (p *pool) bounds() (first, last uint32) {
	ones, bits := p.rng.Mask.Size()
	base := ip2u(p.rng.IP)
	size := uint32(1) << (bits - ones)
	first, last = base, base+size-1
	sOnes, _ := p.subnet.Mask.Size()
	if sOnes < 31 {
		// the subnet's network and broadcast addresses are no hosts
		snBase := ip2u(p.subnet.IP)
		snLast := snBase + (uint32(1) << (32 - sOnes)) - 1
		if first == snBase {
			first++
		}
		if last == snLast {
			last--
		}
	}
	return first, last
}

// allocate takes a free address for id, or the one asked for.
func (p *pool) allocate(id string, want net.IP) (net.IP, error) {
	if want != nil {
		u := ip2u(want)
		if !p.subnet.Contains(want) {
			return nil, errdefs.New(errdefs.InvalidParameter, "no configured subnet or ip-range contain the IP address %s", want)
		}
		if owner, ok := p.used[u]; (ok && owner != id) || want.Equal(p.gw) {
			return nil, errdefs.New(errdefs.Conflict, "Address already in use")
		}
		p.used[u] = id
		return want, nil
	}
	first, last := p.bounds()
	if p.next < first || p.next > last {
		p.next = first
	}
	gw := ip2u(p.gw)
	for i, n := uint32(0), last-first+1; i < n; i++ {
		u := p.next
		p.next++
		if p.next > last {
			p.next = first
		}
		if _, taken := p.used[u]; taken || u == gw {
			continue
		}
		p.used[u] = id
		return u2ip(u), nil
	}
	return nil, errdefs.New(errdefs.Unavailable, "no available IPv4 addresses on this network's address pools: %s", p.rng)
}

func (p *pool) release(ip net.IP, id string) {
	if ip == nil || ip.To4() == nil {
		return
	}
	if u := ip2u(ip); p.used[u] == id {
		delete(p.used, u)
	}
}

// overlaps reports whether two IPv4 networks share an address.
func overlaps(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }
