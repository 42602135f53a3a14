// Package network is berth's container networking, the part libnetwork
// plays for dockerd: networks (the predefined bridge, host and none, and
// user-defined bridge networks), IPAM, a pinned network namespace per
// container with one veth per network, published ports (DNAT, with the
// host port held by a bound socket), masquerade, inter-container traffic
// and isolation between networks, hosts entries for name resolution on
// user networks, and the reconciliation of all of it after a supervisor
// restart. Links are made with netlink, rules with iptables in chains of
// berth's own.
package network

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-connections/nat"

	"berth/pkg/errdefs"
)

// Defaults of the supervisor's flags.
const (
	DefaultBridge      = "berth0"
	DefaultBIP         = "10.88.0.1/16" // not Docker's docker0 (172.17.0.0/16)
	DefaultAddressPool = "10.89.0.0/16" // user networks: /24s from here
	DefaultPoolSize    = 24
	DefaultChainPrefix = "BERTH"
)

// Config configures the Manager (the supervisor's network flags).
type Config struct {
	Root     string // <root>/networks holds the network records
	ExecRoot string // <exec-root>/netns and <exec-root>/network/sandboxes

	Bridge      string // --bridge: the default bridge's name
	BIP         string // --bip: the default bridge's address and prefix
	FixedCIDR   string // --fixed-cidr: where the default bridge's containers' addresses come from
	AddressPool string // --default-address-pool: where user networks' subnets come from
	PoolSize    int    // the prefix length of those subnets
	ChainPrefix string // --iptables-chain-prefix
	ICC         bool   // --icc: containers of the default bridge reach each other
	IPMasq      bool   // --ip-masq: outbound NAT
	IPTables    bool   // --iptables: berth manages iptables rules

	Logger *slog.Logger
	Event  func(typ, action, id string, attrs map[string]string)
}

// Manager owns the node's networks and the containers' sandboxes.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	chains chains

	mu        sync.Mutex
	nets      map[string]*Network // by ID
	pools     map[string]*pool    // by network ID (bridge networks)
	sandboxes map[string]*Sandbox // by container ID
	ports     *ports
	rulesMu   sync.Mutex // orders iptables-restore runs
	// dismantling: sandboxes whose links and namespace are being deleted
	// (off the container's exit path: deleting a netdev waits for the
	// kernel's RCU grace periods, tens of milliseconds); closed when done
	dismantling map[string]chan struct{}
}

func (m *Manager) netsDir() string      { return filepath.Join(m.cfg.Root, "networks") }
func (m *Manager) netnsDir() string     { return filepath.Join(m.cfg.ExecRoot, "netns") }
func (m *Manager) sandboxesDir() string { return filepath.Join(m.cfg.ExecRoot, "network", "sandboxes") }
func (m *Manager) sandboxFile(id string) string {
	return filepath.Join(m.sandboxesDir(), id+".json")
}

// NetNSPath is where the network namespace of container id is pinned.
func (m *Manager) NetNSPath(id string) string { return filepath.Join(m.netnsDir(), id) }

func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// New loads the network records and the sandboxes left by a previous run,
// creates the predefined networks and brings up the bridges. The sandboxes
// are settled by Reconcile, once the containers' state is known.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Event == nil {
		cfg.Event = func(string, string, string, map[string]string) {}
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.BIP == "" {
		cfg.BIP = DefaultBIP
	}
	if cfg.AddressPool == "" {
		cfg.AddressPool = DefaultAddressPool
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.ChainPrefix == "" {
		cfg.ChainPrefix = DefaultChainPrefix
	}
	if err := validPrefix(cfg.ChainPrefix); err != nil {
		return nil, err
	}
	if len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("--bridge %q: an interface name has at most 15 characters", cfg.Bridge)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, chains: chains{cfg.ChainPrefix},
		nets: map[string]*Network{}, pools: map[string]*pool{}, sandboxes: map[string]*Sandbox{}, ports: newPorts(),
		dismantling: map[string]chan struct{}{}}
	for _, d := range []string{m.netsDir(), m.netnsDir(), m.sandboxesDir()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	for _, p := range listJSON(m.netsDir()) {
		var n Network
		if err := readJSON(p, &n); err != nil || n.ID == "" {
			m.log.Error("unreadable network record, skipped", "path", p, "err", err)
			continue
		}
		m.nets[n.ID] = &n
	}
	if err := m.predefined(); err != nil {
		return nil, err
	}
	for _, n := range m.nets {
		if n.Driver != DriverBridge {
			continue
		}
		p, err := newPool(n.Subnet, n.IPRange, n.Gateway)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
		m.pools[n.ID] = p
		if err := ensureBridge(n); err != nil {
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	_ = writeSysctl("/proc/sys/net/ipv4/ip_forward", "1")
	for _, p := range listJSON(m.sandboxesDir()) {
		var sb Sandbox
		if err := readJSON(p, &sb); err != nil || sb.ContainerID == "" {
			m.log.Warn("unreadable sandbox file, removed", "path", p, "err", err)
			_ = os.Remove(p)
			continue
		}
		m.sandboxes[sb.ContainerID] = &sb
		for _, ep := range sb.Endpoints {
			if pl := m.pools[ep.NetworkID]; pl != nil {
				pl.used[ip2u(net.ParseIP(ep.IP))] = sb.ContainerID
			}
		}
	}
	return m, nil
}

// predefined makes sure bridge, host and none exist, the default bridge
// with the configuration of the flags.
func (m *Manager) predefined() error {
	ip, sn, err := net.ParseCIDR(m.cfg.BIP)
	if err != nil || ip.To4() == nil {
		return fmt.Errorf("--bip %q: an IPv4 address with its prefix length, like %s", m.cfg.BIP, DefaultBIP)
	}
	if ip.Equal(sn.IP) {
		return fmt.Errorf("--bip %q: the bridge's own address, not the network's (%s.1 say)", m.cfg.BIP, strings.TrimSuffix(sn.IP.String(), ".0"))
	}
	ipRange := ""
	if m.cfg.FixedCIDR != "" {
		_, fc, err := net.ParseCIDR(m.cfg.FixedCIDR)
		if err != nil || !sn.Contains(fc.IP) {
			return fmt.Errorf("--fixed-cidr %q: a subnet of --bip's %s", m.cfg.FixedCIDR, sn)
		}
		ipRange = fc.String()
	}
	want := map[string]*Network{
		NameBridge: {Name: NameBridge, Driver: DriverBridge, Bridge: m.cfg.Bridge, Subnet: sn.String(), Gateway: ip.String(), IPRange: ipRange,
			ICC: m.cfg.ICC, Masquerade: m.cfg.IPMasq},
		NameHost: {Name: NameHost, Driver: DriverHost},
		NameNone: {Name: NameNone, Driver: DriverNull},
	}
	for _, n := range m.nets {
		if w, ok := want[n.Name]; ok && n.Predefined() {
			w.ID, w.Created = n.ID, n.Created
		}
	}
	for _, w := range want {
		if w.ID == "" {
			w.ID, w.Created = newID(), time.Now().UTC()
		}
		if old := m.nets[w.ID]; old == nil || fmt.Sprint(*old) != fmt.Sprint(*w) {
			if err := writeJSON(filepath.Join(m.netsDir(), w.ID+".json"), w, true); err != nil {
				return err
			}
		}
		m.nets[w.ID] = w
	}
	return nil
}

// Reconcile settles the sandboxes found at start against the containers
// that still run (alive): those of the others are taken apart (veths,
// namespace, addresses, ports), those of the living get their ports
// reserved again; namespaces without a sandbox go; then the iptables rules
// are rebuilt from what is left, and their jumps checked, in the background:
// the kernel kept the previous run's rules meanwhile, and the supervisor
// is not kept from answering by a few iptables runs. done (if not nil) gets
// their outcome.
func (m *Manager) Reconcile(alive func(id string) bool, done func(error)) {
	m.mu.Lock()
	var dead []string
	for id, sb := range m.sandboxes {
		if !alive(id) {
			dead = append(dead, id)
			continue
		}
		for _, pm := range sb.Ports {
			if err := m.ports.rebind(pm, id); err != nil {
				m.log.Warn("could not reserve a published port again", "container", id, "port", pm.HostPort, "err", err)
			}
		}
	}
	m.mu.Unlock()
	for _, id := range dead {
		m.log.Info("reconcile: removing the network of a container that does not run", "id", id)
		m.Teardown(id)
	}
	ents, _ := os.ReadDir(m.netnsDir())
	for _, e := range ents {
		m.mu.Lock()
		_, ok := m.sandboxes[e.Name()]
		m.mu.Unlock()
		if !ok {
			m.log.Info("reconcile: removing a network namespace without a sandbox", "id", e.Name())
			removeNetns(filepath.Join(m.netnsDir(), e.Name()))
		}
	}
	go func() {
		err := m.applyRules()
		if done != nil {
			done(err)
		}
	}()
}

// applyRules rebuilds berth's iptables chains from the networks and the
// published ports, and makes sure the built-in chains jump to them.
func (m *Manager) applyRules() error {
	if !m.cfg.IPTables {
		return nil
	}
	m.rulesMu.Lock()
	defer m.rulesMu.Unlock()
	m.mu.Lock()
	var nets []ruleNet
	for _, n := range m.nets {
		if n.Driver == DriverBridge {
			nets = append(nets, ruleNet{bridge: n.Bridge, subnet: n.Subnet, icc: n.ICC, masquerade: n.Masquerade, internal: n.Internal})
		}
	}
	var ps []rulePort
	for _, sb := range m.sandboxes {
		for _, p := range sb.Ports {
			ps = append(ps, rulePort{proto: p.Proto, hostIP: p.HostIP, hostPort: p.HostPort, ctrIP: p.CtrIP, ctrPort: p.CtrPort})
		}
	}
	m.mu.Unlock()
	if err := m.chains.apply(nets, ps); err != nil {
		return err
	}
	return m.chains.ensureJumps()
}

// Lookup finds a network by ID, name or unique ID prefix.
func (m *Manager) Lookup(ref string) (*Network, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	cp := *n
	return &cp, nil
}

func (m *Manager) lookupLocked(ref string) (*Network, error) {
	if ref == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "network name cannot be empty")
	}
	if n, ok := m.nets[ref]; ok {
		return n, nil
	}
	for _, n := range m.nets {
		if n.Name == ref {
			return n, nil
		}
	}
	var found *Network
	for id, n := range m.nets {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "network %s is ambiguous (%d matches found based on ID prefix)", ref, 2)
			}
			found = n
		}
	}
	if found == nil {
		return nil, errdefs.New(errdefs.NotFound, "network %s not found", ref)
	}
	return found, nil
}

// List returns every network, sorted by name.
func (m *Manager) List() []Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Network, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EndpointInfo is one container on a network, for network inspect.
type EndpointInfo struct {
	ContainerID string
	Name        string
	Endpoint
}

// Endpoints lists the running containers attached to network id.
func (m *Manager) Endpoints(netID string) []EndpointInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []EndpointInfo
	for _, sb := range m.sandboxes {
		if ep := sb.endpoint(netID); ep != nil {
			out = append(out, EndpointInfo{ContainerID: sb.ContainerID, Name: sb.Name, Endpoint: *ep})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Sandbox returns a copy of the sandbox of container id, or nil.
func (m *Manager) Sandbox(id string) *Sandbox {
	m.mu.Lock()
	defer m.mu.Unlock()
	sb := m.sandboxes[id]
	if sb == nil {
		return nil
	}
	cp := *sb
	cp.Endpoints = append([]Endpoint(nil), sb.Endpoints...)
	cp.Ports = append([]PortMapping(nil), sb.Ports...)
	return &cp
}

func (m *Manager) event(n *Network, action string, attrs map[string]string) {
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["name"] = n.Name
	attrs["type"] = n.Driver
	m.cfg.Event("network", action, n.ID, attrs)
}

// CreateOptions is `docker network create`.
type CreateOptions struct {
	Name       string
	Driver     string
	Internal   bool
	Attachable bool
	EnableIPv6 bool
	Subnet     string
	IPRange    string
	Gateway    string
	Options    map[string]string
	Labels     map[string]string
}

// Docker's bridge driver options that berth reads.
const (
	OptBridgeName = "com.docker.network.bridge.name"
	OptICC        = "com.docker.network.bridge.enable_icc"
	OptMasquerade = "com.docker.network.bridge.enable_ip_masquerade"
)

// Create makes a user-defined bridge network.
func (m *Manager) Create(o CreateOptions) (*Network, error) {
	if o.Name == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "network name cannot be empty")
	}
	if o.Driver == "" {
		o.Driver = DriverBridge
	}
	if o.Driver != DriverBridge {
		return nil, errdefs.New(errdefs.NotFound, "plugin %q not found", o.Driver)
	}
	if o.EnableIPv6 {
		return nil, errdefs.New(errdefs.InvalidParameter, "IPv6 networks are not supported by berth")
	}
	n := &Network{ID: newID(), Name: o.Name, Driver: DriverBridge, Created: time.Now().UTC(),
		Internal: o.Internal, Attachable: o.Attachable, ICC: true, Masquerade: true,
		Options: o.Options, Labels: o.Labels, IPRange: o.IPRange, Gateway: o.Gateway, SubnetGiven: o.Subnet != ""}
	n.Bridge = "br-" + n.ID[:12]
	for k, v := range o.Options {
		switch k {
		case OptBridgeName:
			if v == "" || len(v) > 15 {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid bridge name %q", v)
			}
			n.Bridge = v
		case OptICC, OptMasquerade:
			b, err := parseBool(v)
			if err != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid value %q for option %s", v, k)
			}
			if k == OptICC {
				n.ICC = b
			} else {
				n.Masquerade = b
			}
		}
	}
	if err := m.addNetwork(n, o.Subnet); err != nil {
		return nil, err
	}
	if err := m.applyRules(); err != nil {
		m.log.Error("iptables rules for a new network", "network", n.Name, "err", err)
	}
	m.event(n, "create", nil)
	cp := *n
	return &cp, nil
}

// addNetwork checks n against the other networks, gives it its subnet and
// bridge, and records it.
func (m *Manager) addNetwork(n *Network, subnet string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, other := range m.nets {
		if other.Name == n.Name {
			return errdefs.New(errdefs.Conflict, "network with name %s already exists", n.Name)
		}
		if other.Bridge != "" && other.Bridge == n.Bridge {
			return errdefs.New(errdefs.Conflict, "bridge name %s is already used by network %s", n.Bridge, other.Name)
		}
	}
	if err := m.pickSubnet(n, subnet); err != nil {
		return err
	}
	p, err := newPool(n.Subnet, n.IPRange, n.Gateway)
	if err != nil {
		return errdefs.Wrap(errdefs.InvalidParameter, err)
	}
	if err := ensureBridge(n); err != nil {
		deleteLink(n.Bridge)
		return errdefs.Wrap(errdefs.Forbidden, err)
	}
	if err := writeJSON(filepath.Join(m.netsDir(), n.ID+".json"), n, true); err != nil {
		deleteLink(n.Bridge)
		return err
	}
	m.nets[n.ID] = n
	m.pools[n.ID] = p
	return nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "t", "true", "yes":
		return true, nil
	case "0", "f", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q", v)
}

// pickSubnet validates the subnet asked for, or takes the first free one
// of the pool: used by no other network of berth's, routed nowhere else on
// the host (m.mu held).
func (m *Manager) pickSubnet(n *Network, want string) error {
	taken := func(sn *net.IPNet) bool {
		for _, o := range m.nets {
			if o.Subnet == "" {
				continue
			}
			if _, osn, err := net.ParseCIDR(o.Subnet); err == nil && overlaps(osn, sn) {
				return true
			}
		}
		return false
	}
	setGateway := func(sn *net.IPNet) error {
		if n.Gateway == "" {
			n.Gateway = u2ip(ip2u(sn.IP) + 1).String()
		} else if gw := net.ParseIP(n.Gateway).To4(); gw == nil || !sn.Contains(gw) {
			return errdefs.New(errdefs.InvalidParameter, "invalid gateway %s for subnet %s", n.Gateway, sn)
		}
		n.Subnet = sn.String()
		return nil
	}
	if want != "" {
		_, sn, err := net.ParseCIDR(want)
		if err != nil || sn.IP.To4() == nil {
			return errdefs.New(errdefs.InvalidParameter, "invalid subnet %s : invalid CIDR address: %s", want, want)
		}
		if ones, _ := sn.Mask.Size(); ones > 30 {
			return errdefs.New(errdefs.InvalidParameter, "invalid subnet %s: too small", want)
		}
		if taken(sn) {
			return errdefs.New(errdefs.Forbidden, "invalid pool request: Pool overlaps with other one on this address space")
		}
		return setGateway(sn)
	}
	if n.Gateway != "" || n.IPRange != "" {
		return errdefs.New(errdefs.InvalidParameter, "an ip-range or a gateway needs a subnet (--subnet)")
	}
	_, base, err := net.ParseCIDR(m.cfg.AddressPool)
	if err != nil {
		return fmt.Errorf("--default-address-pool %q: %w", m.cfg.AddressPool, err)
	}
	ones, _ := base.Mask.Size()
	if m.cfg.PoolSize < ones || m.cfg.PoolSize > 30 {
		return fmt.Errorf("--default-address-pool: size %d does not fit %s", m.cfg.PoolSize, base)
	}
	step := uint32(1) << (32 - m.cfg.PoolSize)
	count := uint32(1) << (m.cfg.PoolSize - ones)
	for i := uint32(0); i < count; i++ {
		sn := &net.IPNet{IP: u2ip(ip2u(base.IP) + i*step), Mask: net.CIDRMask(m.cfg.PoolSize, 32)}
		if taken(sn) || checkRouteOverlap(sn, "") != nil {
			continue
		}
		return setGateway(sn)
	}
	return errdefs.New(errdefs.Forbidden, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
}

// Remove is `docker network rm`.
func (m *Manager) Remove(ref string) error {
	m.mu.Lock()
	n, err := m.lookupLocked(ref)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	if n.Predefined() {
		m.mu.Unlock()
		return errdefs.New(errdefs.Forbidden, "%s is a pre-defined network and cannot be removed", n.Name)
	}
	var active []string
	for _, sb := range m.sandboxes {
		if ep := sb.endpoint(n.ID); ep != nil {
			active = append(active, fmt.Sprintf("name:%q id:%q", sb.Name, ep.EndpointID[:12]))
		}
	}
	if len(active) > 0 {
		sort.Strings(active)
		m.mu.Unlock()
		return errdefs.New(errdefs.Forbidden, "error while removing network: network %s has active endpoints (%s)", n.Name, strings.Join(active, ", "))
	}
	if err := os.Remove(filepath.Join(m.netsDir(), n.ID+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.mu.Unlock()
		return err
	}
	delete(m.nets, n.ID)
	delete(m.pools, n.ID)
	m.mu.Unlock()
	deleteLink(n.Bridge)
	if err := m.applyRules(); err != nil {
		m.log.Error("iptables rules after a network's removal", "network", n.Name, "err", err)
	}
	m.event(n, "destroy", nil)
	return nil
}

// Prune removes the user-defined networks no container runs on (and that
// match the label and until filters), returning their names.
func (m *Manager) Prune(keep func(n *Network) bool) []string {
	var names []string
	for _, n := range m.List() {
		if n.Predefined() || (keep != nil && keep(&n)) || len(m.Endpoints(n.ID)) > 0 {
			continue
		}
		if m.Remove(n.ID) == nil {
			names = append(names, n.Name)
		}
	}
	return names
}

// EndpointRequest asks for one endpoint of a container.
type EndpointRequest struct {
	Network string   // ID or name
	IPv4    string   // --ip, optional
	Aliases []string // --network-alias
}

// SetupRequest is what a container's start asks of the network.
type SetupRequest struct {
	ContainerID string
	Name        string
	Hostname    string
	Domainname  string
	HostsPath   string
	ExtraHosts  []string
	Networks    []EndpointRequest // the first is eth0; the default route and the ports go to the gateway endpoint (gatewayLocked)
	Ports       nat.PortMap
	Exposed     nat.PortSet
	PublishAll  bool
	// NewNetNS makes the pinned namespace at path; nil: a new namespace of
	// the host's user namespace (a --userns-remap container's belongs to
	// its own user namespace).
	NewNetNS func(path string) error
}

// Setup makes the sandbox of a container about to start: a pinned network
// namespace, one veth per network with its address, the published ports,
// the hosts file. On failure nothing of it is left.
func (m *Manager) Setup(req SetupRequest) (_ *Sandbox, err error) {
	reqs, err := portRequests(req.Ports, req.Exposed, req.PublishAll)
	if err != nil {
		return nil, err
	}
	id := req.ContainerID
	sb := &Sandbox{ContainerID: id, Name: strings.TrimPrefix(req.Name, "/"), Hostname: hostNames(req.Hostname, req.Domainname),
		NetNS: m.NetNSPath(id), HostsPath: req.HostsPath, ExtraHosts: req.ExtraHosts}
	var nets []*Network
	m.waitDismantled(id)
	m.mu.Lock()
	if old := m.sandboxes[id]; old != nil {
		m.mu.Unlock()
		m.Teardown(id) // a leftover of a run whose end was missed
		m.mu.Lock()
	}
	for i, er := range req.Networks {
		n, lerr := m.lookupLocked(er.Network)
		if lerr != nil {
			m.mu.Unlock()
			m.releaseAddrs(sb)
			return nil, lerr
		}
		ep, aerr := m.newEndpointLocked(n, sb, er, i)
		if aerr != nil {
			m.mu.Unlock()
			m.releaseAddrs(sb)
			return nil, aerr
		}
		sb.Endpoints = append(sb.Endpoints, *ep)
		nets = append(nets, n)
	}
	gw := m.gatewayLocked(sb)
	if len(reqs) > 0 && len(sb.Endpoints) > 0 {
		ep := sb.Endpoints[max(gw, 0)]
		for _, r := range reqs {
			res, perr := m.ports.reserve(r, ep.IP, id)
			if perr != nil {
				m.ports.releaseOwner(id)
				m.mu.Unlock()
				m.releaseAddrs(sb)
				return nil, errdefs.New(errdefs.Unknown, "driver failed programming external connectivity on endpoint %s (%s): %v", sb.Name, ep.EndpointID, perr)
			}
			sb.Ports = append(sb.Ports, PortMapping{Proto: r.proto, HostIP: r.hostIP, HostPort: res.key.port, CtrPort: r.ctrPort, CtrIP: ep.IP})
		}
	}
	m.sandboxes[id] = sb
	m.mu.Unlock()
	defer func() {
		if err != nil {
			m.Teardown(id)
		}
	}()
	// the record first: a crash from here on leaves what reconcile undoes
	if err := writeJSON(m.sandboxFile(id), sb, false); err != nil {
		return nil, err
	}
	mkNetns := newNetns
	if req.NewNetNS != nil {
		mkNetns = req.NewNetNS
	}
	if err := mkNetns(sb.NetNS); err != nil {
		return nil, err
	}
	if len(sb.Endpoints) == 0 {
		if err := loopbackUp(sb.NetNS); err != nil {
			return nil, err
		}
	}
	for i := range sb.Endpoints {
		if err := attachEndpoint(nets[i], &sb.Endpoints[i], sb.NetNS, i == gw); err != nil {
			return nil, fmt.Errorf("setting up %s on network %s: %w", sb.Endpoints[i].IfName, nets[i].Name, err)
		}
	}
	if len(sb.Ports) > 0 {
		if err := m.applyRules(); err != nil {
			return nil, err
		}
		m.flushConntrack(sb.Ports)
	}
	m.updateHosts(sb.ContainerID, nets)
	for _, n := range nets {
		m.event(n, "connect", map[string]string{"container": id})
	}
	return m.Sandbox(id), nil
}

// newEndpointLocked allocates an endpoint of sb on n (m.mu held).
func (m *Manager) newEndpointLocked(n *Network, sb *Sandbox, er EndpointRequest, index int) (*Endpoint, error) {
	if n.Driver != DriverBridge {
		return nil, errdefs.New(errdefs.Forbidden, "container cannot be connected to network %s (driver %s) together with others", n.Name, n.Driver)
	}
	if sb.endpoint(n.ID) != nil {
		return nil, errdefs.New(errdefs.Forbidden, "endpoint with name %s already exists in network %s", sb.Name, n.Name)
	}
	p := m.pools[n.ID]
	var want net.IP
	if er.IPv4 != "" {
		if n.Name == NameBridge {
			return nil, errdefs.New(errdefs.InvalidParameter, "user specified IP address is supported on user defined networks only")
		}
		if want = net.ParseIP(er.IPv4).To4(); want == nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid IPv4 address: %s", er.IPv4)
		}
	}
	ip, err := p.allocate(sb.ContainerID, want)
	if err != nil {
		return nil, err
	}
	ones, _ := p.subnet.Mask.Size()
	ep := &Endpoint{NetworkID: n.ID, NetworkName: n.Name, EndpointID: newID(), IfName: fmt.Sprintf("eth%d", index),
		HostVeth: hostVethName(sb.ContainerID, n.ID), IP: ip.String(), PrefixLen: ones, Gateway: n.Gateway, MAC: macFor(ip).String()}
	if n.Name != NameBridge {
		// on a user network, a container answers to its name, its
		// aliases and its short ID (Docker's DNS names)
		ep.NetworkAliases = er.Aliases
		ep.Aliases = dnsNames(sb.Name, er.Aliases, sb.ContainerID)
	}
	return ep, nil
}

// dnsNames are the names a container answers to on a user network, as
// Docker's DNSNames: its name, its network aliases, its short ID.
func dnsNames(name string, aliases []string, id string) []string {
	return dedupe(append([]string{name}, append(append([]string(nil), aliases...), id[:12])...))
}

// gatewayLocked is the index of the endpoint of sb that holds its default
// route and its published ports, as Docker picks its gateway endpoint: of
// the networks that have a gateway (not --internal), the first by name; -1
// if there is none (m.mu held).
func (m *Manager) gatewayLocked(sb *Sandbox) int {
	gw := -1
	for i, ep := range sb.Endpoints {
		if n := m.nets[ep.NetworkID]; n == nil || n.Internal {
			continue
		}
		if gw < 0 || ep.NetworkName < sb.Endpoints[gw].NetworkName {
			gw = i
		}
	}
	return gw
}

// regateway moves the default route and the published ports of the
// running container id to its gateway endpoint, after a connect or a
// disconnect: Docker re-picks that endpoint then, so that a container
// keeps its way out and its ports while one network of it remains.
func (m *Manager) regateway(id string) error {
	m.mu.Lock()
	sb := m.sandboxes[id]
	if sb == nil {
		m.mu.Unlock()
		return nil
	}
	gw := m.gatewayLocked(sb)
	var route *Endpoint
	if gw >= 0 {
		e := sb.Endpoints[gw]
		route = &e
	}
	var moved []PortMapping
	if pi := max(gw, 0); pi < len(sb.Endpoints) {
		ports := append([]PortMapping(nil), sb.Ports...) // copies of sb may share the old slice
		for i := range ports {
			if ports[i].CtrIP != sb.Endpoints[pi].IP {
				ports[i].CtrIP = sb.Endpoints[pi].IP
				moved = append(moved, ports[i])
			}
		}
		sb.Ports = ports
	}
	cp := *sb
	cp.Endpoints = append([]Endpoint(nil), sb.Endpoints...)
	m.mu.Unlock()
	if route != nil {
		if err := setDefaultRoute(cp.NetNS, route); err != nil {
			return err
		}
	}
	if len(moved) == 0 {
		return nil
	}
	if err := writeJSON(m.sandboxFile(id), &cp, false); err != nil {
		m.log.Warn("writing sandbox", "id", id, "err", err)
	}
	if err := m.applyRules(); err != nil {
		return err
	}
	m.flushConntrack(moved)
	return nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// releaseAddrs frees the addresses of a sandbox never registered.
func (m *Manager) releaseAddrs(sb *Sandbox) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ep := range sb.Endpoints {
		if p := m.pools[ep.NetworkID]; p != nil {
			p.release(net.ParseIP(ep.IP), sb.ContainerID)
		}
	}
}

// Teardown removes the sandbox of container id (it has stopped): veths,
// namespace, addresses, ports, rules; other containers' hosts entries for
// it. It is idempotent.
func (m *Manager) Teardown(id string) {
	m.mu.Lock()
	sb := m.sandboxes[id]
	delete(m.sandboxes, id)
	if sb != nil {
		for _, ep := range sb.Endpoints {
			if p := m.pools[ep.NetworkID]; p != nil {
				p.release(net.ParseIP(ep.IP), id)
			}
		}
		m.ports.releaseOwner(id)
	}
	m.mu.Unlock()
	if sb == nil {
		m.waitDismantled(id)
		if _, err := os.Stat(m.NetNSPath(id)); err == nil {
			removeNetns(m.NetNSPath(id))
		}
		_ = os.Remove(m.sandboxFile(id))
		return
	}
	// addresses and ports are free now; the links and the namespace go in
	// the background (a start of the same container waits for that), the
	// sandbox file last, so that a crash meanwhile leaves it to reconcile
	done := make(chan struct{})
	m.mu.Lock()
	m.dismantling[id] = done
	m.mu.Unlock()
	go func() {
		for _, ep := range sb.Endpoints {
			deleteLink(ep.HostVeth)
		}
		removeNetns(sb.NetNS)
		_ = os.Remove(m.sandboxFile(id))
		m.mu.Lock()
		delete(m.dismantling, id)
		m.mu.Unlock()
		close(done)
	}()
	if len(sb.Ports) > 0 {
		if err := m.applyRules(); err != nil {
			m.log.Error("iptables rules after a container's stop", "id", id, "err", err)
		}
		m.flushConntrack(sb.Ports)
	}
	var nets []*Network
	m.mu.Lock()
	for _, ep := range sb.Endpoints {
		if n := m.nets[ep.NetworkID]; n != nil {
			nets = append(nets, n)
		}
	}
	m.mu.Unlock()
	m.updateHosts("", nets)
	for _, n := range nets {
		m.event(n, "disconnect", map[string]string{"container": id})
	}
}

// waitDismantled waits for the background end of a sandbox of id.
func (m *Manager) waitDismantled(id string) {
	m.mu.Lock()
	ch := m.dismantling[id]
	m.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Wait waits for every sandbox being taken apart (tests, shutdown).
func (m *Manager) Wait() {
	m.mu.Lock()
	var chs []chan struct{}
	for _, ch := range m.dismantling {
		chs = append(chs, ch)
	}
	m.mu.Unlock()
	for _, ch := range chs {
		<-ch
	}
}

// Connect attaches the running container id to one more network.
func (m *Manager) Connect(id string, er EndpointRequest) (*Sandbox, error) {
	m.mu.Lock()
	sb := m.sandboxes[id]
	if sb == nil {
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.Conflict, "container %s has no network namespace of berth's", id)
	}
	n, err := m.lookupLocked(er.Network)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	used := map[string]bool{}
	for _, e := range sb.Endpoints {
		used[e.IfName] = true
	}
	idx := 0
	for used[fmt.Sprintf("eth%d", idx)] {
		idx++
	}
	ep, err := m.newEndpointLocked(n, sb, er, idx)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	sb.Endpoints = append(sb.Endpoints, *ep)
	cp := *sb
	cp.Endpoints = append([]Endpoint(nil), sb.Endpoints...)
	m.mu.Unlock()
	fail := func(err error) (*Sandbox, error) {
		deleteLink(ep.HostVeth)
		m.mu.Lock()
		m.pools[n.ID].release(net.ParseIP(ep.IP), id)
		for i := range sb.Endpoints {
			if sb.Endpoints[i].NetworkID == n.ID {
				sb.Endpoints = append(sb.Endpoints[:i], sb.Endpoints[i+1:]...)
				break
			}
		}
		m.mu.Unlock()
		return nil, err
	}
	if err := writeJSON(m.sandboxFile(id), &cp, false); err != nil {
		return fail(err)
	}
	if err := attachEndpoint(n, ep, sb.NetNS, false); err != nil {
		return fail(err)
	}
	if err := m.regateway(id); err != nil {
		m.log.Error("moving the default route and the ports after a connect", "id", id, "err", err)
	}
	m.updateHosts(id, []*Network{n})
	m.event(n, "connect", map[string]string{"container": id})
	return m.Sandbox(id), nil
}

// Disconnect detaches the running container id from network netID.
func (m *Manager) Disconnect(id, netID string) error {
	m.mu.Lock()
	sb := m.sandboxes[id]
	var ep *Endpoint
	if sb != nil {
		for i := range sb.Endpoints {
			if sb.Endpoints[i].NetworkID == netID {
				e := sb.Endpoints[i]
				ep = &e
				sb.Endpoints = append(sb.Endpoints[:i], sb.Endpoints[i+1:]...)
				break
			}
		}
	}
	n := m.nets[netID]
	if ep == nil || n == nil {
		m.mu.Unlock()
		return nil
	}
	m.pools[netID].release(net.ParseIP(ep.IP), id)
	cp := *sb
	cp.Endpoints = append([]Endpoint(nil), sb.Endpoints...)
	m.mu.Unlock()
	deleteLink(ep.HostVeth)
	if err := writeJSON(m.sandboxFile(id), &cp, false); err != nil {
		m.log.Warn("writing sandbox", "id", id, "err", err)
	}
	if err := m.regateway(id); err != nil {
		m.log.Error("moving the default route and the ports after a disconnect", "id", id, "err", err)
	}
	m.updateHosts(id, []*Network{n})
	m.event(n, "disconnect", map[string]string{"container": id})
	return nil
}

// Rename gives the running container id its new name on its networks:
// the name the others of its user networks resolve (their hosts files)
// and network inspect shows, as Docker renames the sandbox's endpoints and
// rebuilds their DNS names. It returns the sandbox, nil if id has none.
func (m *Manager) Rename(id, name string) *Sandbox {
	m.mu.Lock()
	sb := m.sandboxes[id]
	if sb == nil {
		m.mu.Unlock()
		return nil
	}
	old := sb.Name
	sb.Name = name
	eps := append([]Endpoint(nil), sb.Endpoints...)
	var nets []*Network
	for i := range eps {
		if len(eps[i].Aliases) == 0 {
			continue // the default bridge: no names
		}
		aliases := eps[i].NetworkAliases
		if aliases == nil {
			// a sandbox recorded before NetworkAliases was
			for _, a := range eps[i].Aliases {
				if a != old && a != id[:12] {
					aliases = append(aliases, a)
				}
			}
		}
		eps[i].Aliases = dnsNames(name, aliases, id)
		if n := m.nets[eps[i].NetworkID]; n != nil {
			nets = append(nets, n)
		}
	}
	sb.Endpoints = eps
	cp := *sb
	m.mu.Unlock()
	if err := writeJSON(m.sandboxFile(id), &cp, false); err != nil {
		m.log.Warn("writing sandbox", "id", id, "err", err)
	}
	m.updateHosts(id, nets)
	return m.Sandbox(id)
}

// ContainerIDs lists the containers that have a sandbox.
func (m *Manager) ContainerIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.sandboxes {
		out = append(out, id)
	}
	return out
}

// Cleanup removes everything of berth's networking a supervisor with this
// root, exec root and chain prefix made, once its containers are gone:
// sandboxes (veths, namespaces), the bridges of its networks, its iptables
// chains and their jumps. It is for uninstalling, and for tests' stacks.
func Cleanup(root, execRoot, chainPrefix string) {
	m := &Manager{cfg: Config{Root: root, ExecRoot: execRoot}}
	for _, p := range listJSON(m.sandboxesDir()) {
		var sb Sandbox
		if readJSON(p, &sb) == nil {
			for _, ep := range sb.Endpoints {
				deleteLink(ep.HostVeth)
			}
		}
		_ = os.Remove(p)
	}
	ents, _ := os.ReadDir(m.netnsDir())
	for _, e := range ents {
		removeNetns(filepath.Join(m.netnsDir(), e.Name()))
	}
	for _, p := range listJSON(m.netsDir()) {
		var n Network
		if readJSON(p, &n) == nil && n.Driver == DriverBridge && n.Bridge != "" {
			deleteLink(n.Bridge)
		}
	}
	if chainPrefix != "" {
		chains{chainPrefix}.remove()
	}
}
