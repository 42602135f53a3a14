package network

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// berth's iptables rules live in chains of its own, named after the
// supervisor's chain prefix (--iptables-chain-prefix) so that several
// supervisors on one host never share one, jumped to from the built-in
// chains by one rule each. Every change rebuilds those chains whole from the
// supervisor's state with one `iptables-restore --noflush` (a chain declared
// there is flushed and refilled in the same transaction: no moment without
// rules, and nothing of anyone else's touched). The built-in chains' policies
// and other rules are never changed.

type chains struct{ prefix string }

func (c chains) forward() string   { return c.prefix + "-FORWARD" }
func (c chains) isolation() string { return c.prefix + "-ISOLATION" }
func (c chains) dnat() string      { return c.prefix + "-DNAT" }
func (c chains) raw() string       { return c.prefix + "-RAW" }
func (c chains) postrouting() string {
	return c.prefix + "-POSTROUTING"
}

// jump is one rule in a built-in chain that sends packets to ours.
type jump struct {
	table, chain string
	rule         []string
}

func (c chains) jumps() []jump {
	return []jump{
		{"raw", "PREROUTING", []string{"-j", c.raw()}},
		{"filter", "FORWARD", []string{"-j", c.forward()}},
		{"nat", "PREROUTING", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", c.dnat()}},
		// the host's own connections to a published port, 127.0.0.1 included
		{"nat", "OUTPUT", []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", c.dnat()}},
		{"nat", "POSTROUTING", []string{"-j", c.postrouting()}},
	}
}

func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ensureJumps adds the jumps to berth's chains that are missing (the chains
// must exist).
func (c chains) ensureJumps() error {
	for _, j := range c.jumps() {
		if iptables(append([]string{"-t", j.table, "-C", j.chain}, j.rule...)...) == nil {
			continue
		}
		// first in the chain, like Docker's: a DROP policy or a reject rule
		// further down does not hide the containers
		if err := iptables(append([]string{"-t", j.table, "-I", j.chain, "1"}, j.rule...)...); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the jumps and berth's chains (all of them, whatever they
// hold): what a supervisor added, and nothing else.
func (c chains) remove() {
	for _, j := range c.jumps() {
		for i := 0; i < 10 && iptables(append([]string{"-t", j.table, "-D", j.chain}, j.rule...)...) == nil; i++ {
		}
	}
	for _, t := range []struct{ table, chain string }{
		{"raw", c.raw()}, {"filter", c.forward()}, {"filter", c.isolation()}, {"nat", c.dnat()}, {"nat", c.postrouting()},
	} {
		if iptables("-t", t.table, "-F", t.chain) == nil {
			_ = iptables("-t", t.table, "-X", t.chain)
		}
	}
}

// ruleNet is what the rules need of one bridge network.
type ruleNet struct {
	bridge     string
	subnet     string
	icc        bool
	masquerade bool
	internal   bool
}

// rulePort is one published port.
type rulePort struct {
	proto    string
	hostIP   string // "" or 0.0.0.0: every address of the host
	hostPort int
	ctrIP    string
	ctrPort  int
}

// ruleset renders berth's chains for iptables-restore.
func (c chains) ruleset(nets []ruleNet, ports []rulePort) []byte {
	sort.Slice(nets, func(i, j int) bool { return nets[i].bridge < nets[j].bridge })
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	// route_localnet on a bridge (see link.go) would also let a container
	// reach the host's 127.0.0.1-only services by sending to 127.0.0.1
	// through the bridge (CVE-2020-8558): before conntrack, nothing arriving
	// from a bridge legitimately has a loopback destination (the replies to
	// the host's own 127.0.0.1 connections are addressed to the gateway
	// until they are de-NAT'd).
	w("*raw")
	w(":%s - [0:0]", c.raw())
	for _, n := range nets {
		w("-A %s -i %s -d 127.0.0.0/8 -j DROP", c.raw(), n.bridge)
	}
	w("COMMIT")
	w("*filter")
	w(":%s - [0:0]", c.forward())
	w(":%s - [0:0]", c.isolation())
	w("-A %s -j %s", c.forward(), c.isolation())
	for _, n := range nets {
		// isolation between networks: nothing crosses from one of berth's
		// bridges to another
		for _, o := range nets {
			if o.bridge != n.bridge {
				w("-A %s -i %s -o %s -j DROP", c.isolation(), n.bridge, o.bridge)
			}
		}
		if n.internal {
			w("-A %s -i %s ! -o %s -j DROP", c.forward(), n.bridge, n.bridge)
			w("-A %s ! -i %s -o %s -j DROP", c.forward(), n.bridge, n.bridge)
		} else {
			w("-A %s -o %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", c.forward(), n.bridge)
			// published ports (DNAT'd by our nat chain)
			w("-A %s -o %s -m conntrack --ctstate DNAT -j ACCEPT", c.forward(), n.bridge)
			w("-A %s -i %s ! -o %s -j ACCEPT", c.forward(), n.bridge, n.bridge)
		}
		// between containers of one bridge (seen here when br_netfilter
		// is loaded; without it the bridge ports' isolation does it)
		if n.icc {
			w("-A %s -i %s -o %s -j ACCEPT", c.forward(), n.bridge, n.bridge)
		} else {
			w("-A %s -i %s -o %s -j DROP", c.forward(), n.bridge, n.bridge)
		}
	}
	w("COMMIT")
	w("*nat")
	w(":%s - [0:0]", c.dnat())
	w(":%s - [0:0]", c.postrouting())
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].hostPort != ports[j].hostPort {
			return ports[i].hostPort < ports[j].hostPort
		}
		return ports[i].proto+ports[i].hostIP < ports[j].proto+ports[j].hostIP
	})
	for _, p := range ports {
		dst := ""
		if p.hostIP != "" && p.hostIP != "0.0.0.0" {
			dst = "-d " + p.hostIP + "/32 "
		}
		w("-A %s %s-p %s -m %s --dport %d -j DNAT --to-destination %s:%d", c.dnat(), dst, p.proto, p.proto, p.hostPort, p.ctrIP, p.ctrPort)
	}
	for _, n := range nets {
		if n.masquerade && !n.internal {
			w("-A %s -s %s ! -o %s -j MASQUERADE", c.postrouting(), n.subnet, n.bridge)
		}
		// connections from the host's loopback to a published port leave
		// with 127.0.0.1 (route_localnet on the bridge): the container
		// must see an address it can answer
		w("-A %s -s 127.0.0.0/8 -o %s -j MASQUERADE", c.postrouting(), n.bridge)
		// hairpin: a container's connection to a published port at the
		// host's address, DNAT'd back onto its own bridge (to itself or a
		// neighbour), must be answered through the host to be de-NAT'd
		// (what Docker's userland proxy gives)
		w("-A %s -s %s -o %s -m conntrack --ctstate DNAT -j MASQUERADE", c.postrouting(), n.subnet, n.bridge)
	}
	w("COMMIT")
	return b.Bytes()
}

func (c chains) apply(nets []ruleNet, ports []rulePort) error {
	cmd := exec.Command("iptables-restore", "-w", "--noflush")
	cmd.Stdin = bytes.NewReader(c.ruleset(nets, ports))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// validPrefix checks a chain prefix: iptables chain names are at most 28
// characters, the longest suffix is "-POSTROUTING".
func validPrefix(p string) error {
	if p == "" || len(p) > 28-len("-POSTROUTING") || strings.ContainsAny(p, " \t!") {
		return fmt.Errorf("invalid iptables chain prefix %q (1 to %d characters)", p, 28-len("-POSTROUTING"))
	}
	return nil
}
