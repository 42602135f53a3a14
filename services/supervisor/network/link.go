package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The links are made with netlink directly (github.com/vishvananda/netlink):
// each is one or two messages to the kernel from the supervisor itself, where
// CNI's plugins would cost a process each (bridge, host-local, portmap,
// loopback) on every container start.

// ensureBridge creates (or adopts) the bridge of n, gives it the gateway
// address and brings it up.
func ensureBridge(n *Network) error {
	_, sn, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("looking up bridge %s: %w", n.Bridge, err)
		}
		if err := checkRouteOverlap(sn, ""); err != nil {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating bridge %s: %w", n.Bridge, err)
		}
		if link, err = netlink.LinkByName(n.Bridge); err != nil {
			return err
		}
	} else if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is not a bridge (%s)", n.Bridge, link.Type())
	}
	ones, _ := sn.Mask.Size()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(n.Gateway).To4(), Mask: net.CIDRMask(ones, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("setting %s on bridge %s: %w", addr.IPNet, n.Bridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing up bridge %s: %w", n.Bridge, err)
	}
	// the host's own connections to published ports on 127.0.0.1 are
	// DNAT'd out through the bridge: this bridge, not the host, allows it
	_ = writeSysctl(filepath.Join("/proc/sys/net/ipv4/conf", n.Bridge, "route_localnet"), "1")
	return nil
}

func writeSysctl(path, v string) error { return os.WriteFile(path, []byte(v), 0o644) }

// checkRouteOverlap refuses a subnet that overlaps a route of the host
// (another engine's bridge, a VPN, the LAN), except one through dev.
func checkRouteOverlap(sn *net.IPNet, dev string) error {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			continue
		}
		if overlaps(r.Dst, sn) {
			if dev != "" {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().Name == dev {
					continue
				}
			}
			return fmt.Errorf("the subnet %s overlaps the host's route to %s", sn, r.Dst)
		}
	}
	return nil
}

func deleteLink(name string) {
	if l, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(l)
	}
}

// hostVethName is the host's end of the veth of container id on network
// netID: derived, so a restarted supervisor finds it without a record; "bv"
// (berth veth) and 11 hex digits fit IFNAMSIZ.
func hostVethName(id, netID string) string {
	h := sha256.Sum256([]byte(id + "/" + netID))
	return "bv" + hex.EncodeToString(h[:])[:11]
}

// attachEndpoint makes the veth pair of ep: the host end on the bridge,
// the other end ep.IfName in the namespace at nsPath, with the address,
// the MAC and (defaultRoute) the default route through the gateway.
func attachEndpoint(n *Network, ep *Endpoint, nsPath string, defaultRoute bool) error {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	mac, _ := net.ParseMAC(ep.MAC)
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: ep.HostVeth, MasterIndex: br.Attrs().Index, MTU: br.Attrs().MTU, TxQLen: -1},
		PeerName:         ep.IfName,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s: %w", ep.HostVeth, err)
	}
	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return err
	}
	// a container's own connection to its published port at the host's
	// address comes back through its own port once DNAT'd (bridged, with
	// br_netfilter): as Docker without its userland proxy
	if err := netlink.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin mode on %s: %w", ep.HostVeth, err)
	}
	if !n.ICC {
		// containers of this network cannot reach each other, only the
		// host and beyond
		if err := netlink.LinkSetIsolated(host, true); err != nil {
			return fmt.Errorf("isolating %s: %w", ep.HostVeth, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if lo, err := h.LinkByName("lo"); err == nil {
		if err := h.LinkSetUp(lo); err != nil {
			return err
		}
	}
	link, err := h.LinkByName(ep.IfName)
	if err != nil {
		return err
	}
	ip := net.ParseIP(ep.IP).To4()
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(ep.PrefixLen, 32)}}); err != nil {
		return fmt.Errorf("adding %s/%d: %w", ep.IP, ep.PrefixLen, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return err
	}
	if defaultRoute && !n.Internal {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP(ep.Gateway).To4()}); err != nil {
			return fmt.Errorf("adding the default route via %s: %w", ep.Gateway, err)
		}
	}
	return nil
}

// setDefaultRoute makes the default route of the namespace at nsPath go
// through ep's gateway, in place of any other.
func setDefaultRoute(nsPath string, ep *Endpoint) error {
	h, err := handleAt(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(ep.IfName)
	if err != nil {
		return err
	}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP(ep.Gateway).To4()}); err != nil {
		return fmt.Errorf("the default route via %s: %w", ep.Gateway, err)
	}
	return nil
}

// loopbackUp brings up lo in the namespace at nsPath.
func loopbackUp(nsPath string) error {
	h, err := handleAt(nsPath)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}

// handleAt is a netlink handle in the namespace at nsPath (its sockets
// keep the namespace: the path's fd is not needed after).
func handleAt(nsPath string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}
