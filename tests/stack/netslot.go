package stack

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth/services/supervisor/network"
)

// NetSlot is the networking a test stack gets for itself, so that stacks
// running at once (this package's tests, other packages', other
// engineers') never share or remove each other's bridge, addresses or
// iptables rules: a bridge name, a /20 of 10.128.0.0/9 (its first /24 for
// the default bridge, the rest for user networks) and a chain prefix, all
// derived from a slot number held with a lock file while the stack lives.
type NetSlot struct {
	N           int
	Bridge      string // bt<N>
	BIP         string // 10.a.b.1/24
	Pool        string // 10.a.b.0/20
	ChainPrefix string // BT<N>
	lock        string
}

const slotDir = "/tmp/berth-test-netslots"

// slots is how many /20s 10.128.0.0/9 holds.
const slots = 2048

func (n NetSlot) base() net.IP {
	u := uint32(10)<<24 | uint32(128)<<16 + uint32(n.N)<<12
	return net.IPv4(byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

// TakeNetSlot takes a free slot: its lock file is made with O_EXCL and
// names this process; one whose process is gone is taken over (after
// removing what that stack left). A slot whose /20 is routed on the host
// already is skipped.
func TakeNetSlot() (*NetSlot, error) {
	if err := os.MkdirAll(slotDir, 0o755); err != nil {
		return nil, err
	}
	start := (os.Getpid() * 7) % slots
	for i := 0; i < slots; i++ {
		n := NetSlot{N: (start + i) % slots}
		n.Bridge = "bt" + strconv.Itoa(n.N)
		n.ChainPrefix = "BT" + strconv.Itoa(n.N)
		b := n.base()
		n.BIP = fmt.Sprintf("%d.%d.%d.1/24", b[12], b[13], b[14])
		n.Pool = fmt.Sprintf("%d.%d.%d.0/20", b[12], b[13], b[14])
		n.lock = filepath.Join(slotDir, strconv.Itoa(n.N))
		f, err := os.OpenFile(n.lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			if !stale(n.lock) {
				continue
			}
			// the stack that held it died without its cleanup
			network.Cleanup("", "", n.ChainPrefix)
			deleteLink(n.Bridge)
			_ = os.Remove(n.lock)
			if f, err = os.OpenFile(n.lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err != nil {
				continue
			}
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Close()
		if routed(n.Pool) {
			_ = os.Remove(n.lock)
			continue
		}
		return &n, nil
	}
	return nil, fmt.Errorf("no free network slot in %s", slotDir)
}

// Release frees the slot.
func (n *NetSlot) Release() { _ = os.Remove(n.lock) }

func stale(lock string) bool {
	b, err := os.ReadFile(lock)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return true
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}

func routed(cidr string) bool {
	_, sn, _ := net.ParseCIDR(cidr)
	data, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] == "00000000" {
			continue
		}
		dst, e1 := strconv.ParseUint(f[1], 16, 32)
		mask, e2 := strconv.ParseUint(f[7], 16, 32)
		if e1 != nil || e2 != nil {
			continue
		}
		// /proc/net/route is little-endian
		ip := net.IPv4(byte(dst), byte(dst>>8), byte(dst>>16), byte(dst>>24))
		m := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
		r := &net.IPNet{IP: ip.Mask(m), Mask: m}
		if r.Contains(sn.IP) || sn.Contains(r.IP) {
			return true
		}
	}
	return false
}

func deleteLink(name string) {
	if _, err := net.InterfaceByName(name); err == nil {
		_ = runQuiet("ip", "link", "del", name)
	}
}
