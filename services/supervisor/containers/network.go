package containers

//lint:file-ignore SA1019 Docker 28 still fills the default bridge's legacy top-level NetworkSettings fields (IPAddress, Gateway, MacAddress), which clients read

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	bnet "berth/services/supervisor/network"
)

// The container side of networking: the network mode and networks a
// container is created with, its sandbox (services/supervisor/network) set
// up at start and taken apart when it stops, docker network connect and
// disconnect, and the NetworkSettings that inspect shows.

// netMode is the container's network mode with Docker's default applied.
func netMode(hc *container.HostConfig) container.NetworkMode {
	if hc == nil || hc.NetworkMode == "" || hc.NetworkMode.IsDefault() {
		return bnet.NameBridge
	}
	return hc.NetworkMode
}

// configureNetworks checks the create's network options, Docker's way,
// and fills the record's NetworkSettings.Networks: the network of the
// network mode first, then any other endpoint the create asked for.
// exposes says whether the client's config (not the image's) exposes ports.
func (m *Manager) configureNetworks(cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, exposes bool) (*container.NetworkSettings, []string, error) {
	mode := netMode(hc)
	if m.cfg.Network == nil && (hc.NetworkMode == "" || hc.NetworkMode.IsDefault()) {
		mode = bnet.NameNone // no bridge networking (--bridge none): dockerd's default then
	}
	hc.NetworkMode = mode
	var warnings []string
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}}
	if mode.IsContainer() {
		switch {
		case cfg.Hostname != "":
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "conflicting options: hostname and the network mode")
		case len(hc.PortBindings) > 0 || hc.PublishAllPorts:
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "conflicting options: port publishing and the container type network mode")
		case exposes:
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "conflicting options: port exposing and the container type network mode")
		case len(hc.ExtraHosts) > 0:
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "conflicting options: custom host-to-IP mapping and the network mode")
		case len(hc.DNS) > 0:
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "conflicting options: dns and the network mode")
		case mode.ConnectedContainer() == "":
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "invalid network mode %q: container name or ID missing", mode)
		}
		return ns, warnings, nil
	}
	if m.cfg.Network == nil {
		if !mode.IsHost() && !mode.IsNone() {
			return nil, nil, errdefs.New(errdefs.NotImplemented, "networking is not configured in this supervisor: only --network host, none and container: work")
		}
		return ns, warnings, nil
	}
	if (mode.IsHost() || mode.IsNone()) && (len(hc.PortBindings) > 0 || hc.PublishAllPorts) {
		warnings = append(warnings, fmt.Sprintf("Published ports are discarded when using %s network mode", mode))
		hc.PortBindings, hc.PublishAllPorts = nil, false
	}
	var eps map[string]*network.EndpointSettings
	if nc != nil {
		eps = nc.EndpointsConfig
	}
	// like Docker, a network that does not exist (yet) fails the start,
	// not the create
	lookup := func(ref string) *bnet.Network {
		if n, err := m.cfg.Network.Lookup(ref); err == nil {
			return n
		}
		return &bnet.Network{Name: ref, Driver: bnet.DriverBridge}
	}
	primary := lookup(string(mode))
	add := func(n *bnet.Network, es *network.EndpointSettings) error {
		cp, err := endpointConfig(n, es)
		if err == nil {
			ns.Networks[n.Name] = cp
		}
		return err
	}
	var es *network.EndpointSettings
	for _, ref := range []string{string(mode), primary.ID, primary.Name, network.NetworkDefault} {
		if es == nil {
			es = eps[ref]
		}
	}
	if err := add(primary, es); err != nil {
		return nil, nil, err
	}
	for ref, es := range eps {
		if ref == network.NetworkDefault {
			continue // the CLI's name for the network mode's network
		}
		n := lookup(ref)
		if n.Name == primary.Name {
			continue
		}
		if primary.Driver != bnet.DriverBridge || n.Driver != bnet.DriverBridge {
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "Container cannot be connected to network endpoints: %s, %s", primary.Name, n.Name)
		}
		if err := add(n, es); err != nil {
			return nil, nil, err
		}
	}
	return ns, warnings, nil
}

// endpointConfig copies the endpoint settings asked for on n, Docker's
// checks applied.
func endpointConfig(n *bnet.Network, es *network.EndpointSettings) (*network.EndpointSettings, error) {
	cp := &network.EndpointSettings{}
	if es != nil {
		if err := copyJSON(es, cp); err != nil {
			return nil, err
		}
	}
	if cp.IPAMConfig != nil && cp.IPAMConfig.IPv4Address != "" && n.Name == bnet.NameBridge {
		return nil, errdefs.New(errdefs.InvalidParameter, "user specified IP address is supported on user defined networks only")
	}
	if len(cp.Aliases) > 0 && n.Name == bnet.NameBridge {
		return nil, errdefs.New(errdefs.InvalidParameter, "network-scoped alias is supported only for containers in user defined networks")
	}
	cp.NetworkID = n.ID
	return cp, nil
}

// primaryNetwork is the network of the container's network mode, first of
// its NetworkSettings.Networks.
func primaryNetwork(rec *dockermsg.Container) string {
	mode := netMode(rec.HostConfig)
	if rec.NetworkSettings != nil {
		for name, es := range rec.NetworkSettings.Networks {
			if name == string(mode) || es.NetworkID == string(mode) || strings.HasPrefix(es.NetworkID, string(mode)) {
				return name
			}
		}
	}
	return string(mode)
}

// netSetup is what the start needs from the network: the namespace to
// join (empty: a new one, or none at all with host), whether the shim is to
// bring up lo, and /etc files to use instead of the container's own.
type netSetup struct {
	nsPath     string
	loopbackUp bool
	etc        map[string]string
	hostname   string // another container's (container:X)
}

// setupNetwork prepares the network of a container about to start.
func (m *Manager) setupNetwork(rec *dockermsg.Container) (*netSetup, error) {
	mode := netMode(rec.HostConfig)
	switch {
	case mode.IsHost():
		return &netSetup{}, nil
	case mode.IsContainer():
		return m.joinContainerNetwork(rec, mode.ConnectedContainer())
	case mode.IsNone() || m.cfg.Network == nil:
		return &netSetup{loopbackUp: true}, nil
	}
	newNetNS, err := m.remapNetns(rec.HostConfig, rec.ID)
	if err != nil {
		return nil, err
	}
	req := bnet.SetupRequest{
		NewNetNS:    newNetNS,
		ContainerID: rec.ID,
		Name:        rec.Name,
		Hostname:    rec.Config.Hostname,
		Domainname:  rec.Config.Domainname,
		HostsPath:   rec.HostsPath,
		ExtraHosts:  rec.HostConfig.ExtraHosts,
		Ports:       rec.HostConfig.PortBindings,
		Exposed:     rec.Config.ExposedPorts,
		PublishAll:  rec.HostConfig.PublishAllPorts,
	}
	primary := primaryNetwork(rec)
	names := []string{primary}
	if rec.NetworkSettings != nil {
		for name := range rec.NetworkSettings.Networks {
			if name != primary {
				names = append(names, name)
			}
		}
	}
	for _, name := range names {
		er := bnet.EndpointRequest{Network: name}
		if rec.NetworkSettings != nil {
			if es := rec.NetworkSettings.Networks[name]; es != nil {
				if es.NetworkID != "" {
					er.Network = es.NetworkID
				}
				er.Aliases = es.Aliases
				if es.IPAMConfig != nil {
					er.IPv4 = es.IPAMConfig.IPv4Address
				}
			}
		}
		if _, err := m.cfg.Network.Lookup(er.Network); err != nil && errdefs.Is(err, errdefs.NotFound) {
			if _, err := m.cfg.Network.Lookup(name); err != nil {
				return nil, errdefs.New(errdefs.NotFound, "failed to set up container networking: network %s not found", name)
			}
			er.Network = name // removed and made again under the same name
		}
		req.Networks = append(req.Networks, er)
	}
	sb, err := m.cfg.Network.Setup(req)
	if err != nil {
		if errdefs.KindOf(err) == errdefs.Unknown {
			return nil, fmt.Errorf("failed to set up container networking: %w", err)
		}
		return nil, err
	}
	m.mu.Lock()
	if c := m.byID[rec.ID]; c != nil {
		applySandbox(&c.rec, sb)
	}
	m.mu.Unlock()
	return &netSetup{nsPath: sb.NetNS}, nil
}

// joinContainerNetwork is --network container:X: X's namespace, X's
// hosts, resolv.conf and hostname (Docker's way).
func (m *Manager) joinContainerNetwork(rec *dockermsg.Container, ref string) (*netSetup, error) {
	m.mu.Lock()
	other, err := m.resolveLocked(ref)
	if err != nil {
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.Unknown, "joining network namespace of container: %v", err)
	}
	orec := other.rec
	m.mu.Unlock()
	if orec.ID == rec.ID {
		return nil, errdefs.New(errdefs.InvalidParameter, "cannot join own network namespace")
	}
	if !orec.State.Running || orec.State.Pid == 0 {
		status := orec.State.Status
		return nil, errdefs.New(errdefs.Conflict, "cannot join network namespace of a non running container: container %s is %s", strings.TrimPrefix(orec.Name, "/"), status)
	}
	if netMode(orec.HostConfig).IsHost() {
		return &netSetup{etc: map[string]string{"/etc/hosts": orec.HostsPath, "/etc/resolv.conf": orec.ResolvConfPath}}, nil
	}
	path := fmt.Sprintf("/proc/%d/ns/net", orec.State.Pid)
	if m.cfg.Network != nil {
		if sb := m.cfg.Network.Sandbox(orec.ID); sb != nil {
			path = sb.NetNS
		}
	}
	return &netSetup{nsPath: path, hostname: orec.Config.Hostname, etc: map[string]string{
		"/etc/hosts": orec.HostsPath, "/etc/resolv.conf": orec.ResolvConfPath, "/etc/hostname": orec.HostnamePath,
	}}, nil
}

// applySandbox fills the running container's NetworkSettings from its
// sandbox: addresses, gateways, MACs, endpoint IDs, published ports (the
// default bridge's also in Docker's top-level legacy fields).
func applySandbox(rec *dockermsg.Container, sb *bnet.Sandbox) {
	if rec.NetworkSettings == nil {
		rec.NetworkSettings = &container.NetworkSettings{}
	}
	ns := rec.NetworkSettings
	if ns.Networks == nil {
		ns.Networks = map[string]*network.EndpointSettings{}
	}
	ns.SandboxID = sb.ContainerID
	ns.SandboxKey = sb.NetNS
	ns.DefaultNetworkSettings = container.DefaultNetworkSettings{}
	for _, ep := range sb.Endpoints {
		es := ns.Networks[ep.NetworkName]
		if es == nil {
			es = &network.EndpointSettings{}
			ns.Networks[ep.NetworkName] = es
		}
		es.NetworkID, es.EndpointID = ep.NetworkID, ep.EndpointID
		es.IPAddress, es.IPPrefixLen, es.Gateway, es.MacAddress = ep.IP, ep.PrefixLen, ep.Gateway, ep.MAC
		es.DNSNames = nil
		if len(ep.Aliases) > 0 {
			es.DNSNames = append([]string(nil), ep.Aliases...)
		}
		if ep.NetworkName == bnet.NameBridge {
			ns.DefaultNetworkSettings = container.DefaultNetworkSettings{EndpointID: ep.EndpointID, Gateway: ep.Gateway,
				IPAddress: ep.IP, IPPrefixLen: ep.PrefixLen, MacAddress: ep.MAC}
		}
	}
	ns.Ports = nat.PortMap{}
	if rec.Config != nil {
		for p := range rec.Config.ExposedPorts {
			ns.Ports[p] = nil
		}
	}
	if rec.HostConfig != nil {
		for p := range rec.HostConfig.PortBindings {
			ns.Ports[p] = nil
		}
	}
	for _, pm := range sb.Ports {
		k := nat.Port(strconv.Itoa(pm.CtrPort) + "/" + pm.Proto)
		ns.Ports[k] = append(ns.Ports[k], nat.PortBinding{HostIP: pm.HostIP, HostPort: strconv.Itoa(pm.HostPort)})
	}
}

// clearRuntimeNetwork empties what only a running container has: its
// addresses and ports (the networks it is configured on stay).
func clearRuntimeNetwork(rec *dockermsg.Container) {
	ns := rec.NetworkSettings
	if ns == nil {
		return
	}
	ns.SandboxID, ns.SandboxKey = "", ""
	ns.Ports = nat.PortMap{}
	ns.DefaultNetworkSettings = container.DefaultNetworkSettings{}
	for _, es := range ns.Networks {
		es.EndpointID, es.IPAddress, es.IPPrefixLen, es.Gateway, es.MacAddress, es.DNSNames = "", "", 0, "", "", nil
	}
}

// teardownNetwork takes the sandbox of a container that no longer runs
// apart.
func (m *Manager) teardownNetwork(id string) {
	if m.cfg.Network != nil {
		m.cfg.Network.Teardown(id)
	}
}

// reconcileNetwork settles the sandboxes after a restart: kept for the
// containers whose shim lives, undone for the others.
func (m *Manager) reconcileNetwork() {
	if m.cfg.Network == nil {
		return
	}
	m.cfg.Network.Reconcile(func(id string) bool {
		c := m.byID[id]
		return c != nil && m.shimAlive(id)
	}, func(err error) {
		if err != nil {
			m.log.Error("restore: network rules", "err", err)
		}
	})
	// a start cut short by the crash saved no addresses in its record
	for _, id := range m.cfg.Network.ContainerIDs() {
		if c := m.byID[id]; c != nil {
			if sb := m.cfg.Network.Sandbox(id); sb != nil {
				applySandbox(&c.rec, sb)
			}
		}
	}
}

// ConnectNetwork is `docker network connect`.
func (m *Manager) ConnectNetwork(ref, netRef string, es *network.EndpointSettings) error {
	if m.cfg.Network == nil {
		return errdefs.New(errdefs.NotImplemented, "networking is not configured in this supervisor")
	}
	n, err := m.cfg.Network.Lookup(netRef)
	if err != nil {
		return err
	}
	c, err := m.resolve(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	rec := c.rec
	m.mu.Unlock()
	mode := netMode(rec.HostConfig)
	if mode.IsHost() || mode.IsNone() || mode.IsContainer() || n.Driver != bnet.DriverBridge {
		if mode.IsHost() || n.Driver == bnet.DriverHost {
			return errdefs.New(errdefs.Forbidden, "container cannot be disconnected from host network or connected to host network")
		}
		return errdefs.New(errdefs.Forbidden, "container sharing network namespace with another container or host cannot be connected to any other network")
	}
	if rec.NetworkSettings != nil {
		if _, ok := rec.NetworkSettings.Networks[n.Name]; ok {
			return errdefs.New(errdefs.Forbidden, "endpoint with name %s already exists in network %s", strings.TrimPrefix(rec.Name, "/"), n.Name)
		}
	}
	cp, err := endpointConfig(n, es)
	if err != nil {
		return err
	}
	var sb *bnet.Sandbox
	if isRunningState(rec.State.Status) {
		er := bnet.EndpointRequest{Network: n.ID, Aliases: cp.Aliases}
		if cp.IPAMConfig != nil {
			er.IPv4 = cp.IPAMConfig.IPv4Address
		}
		if sb, err = m.cfg.Network.Connect(rec.ID, er); err != nil {
			return err
		}
	}
	m.mu.Lock()
	if c.rec.NetworkSettings == nil {
		c.rec.NetworkSettings = &container.NetworkSettings{}
	}
	if c.rec.NetworkSettings.Networks == nil {
		c.rec.NetworkSettings.Networks = map[string]*network.EndpointSettings{}
	}
	c.rec.NetworkSettings.Networks[n.Name] = cp
	if sb != nil {
		applySandbox(&c.rec, sb)
	}
	m.mu.Unlock()
	return m.save(c)
}

// DisconnectNetwork is `docker network disconnect`.
func (m *Manager) DisconnectNetwork(ref, netRef string, force bool) error {
	if m.cfg.Network == nil {
		return errdefs.New(errdefs.NotImplemented, "networking is not configured in this supervisor")
	}
	c, err := m.resolve(ref)
	if err != nil {
		return err
	}
	n, err := m.cfg.Network.Lookup(netRef)
	if err != nil && !(force && errdefs.Is(err, errdefs.NotFound)) {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	rec := c.rec
	m.mu.Unlock()
	name := netRef
	if n != nil {
		name = n.Name
	}
	if netMode(rec.HostConfig).IsHost() && n != nil && n.Driver == bnet.DriverHost {
		return errdefs.New(errdefs.Forbidden, "container cannot be disconnected from host network or connected to host network")
	}
	if rec.NetworkSettings == nil || rec.NetworkSettings.Networks[name] == nil {
		return errdefs.New(errdefs.Forbidden, "container %s is not connected to network %s", rec.ID, name)
	}
	if n != nil && isRunningState(rec.State.Status) {
		if err := m.cfg.Network.Disconnect(rec.ID, n.ID); err != nil {
			return err
		}
	}
	m.mu.Lock()
	delete(c.rec.NetworkSettings.Networks, name)
	if sb := m.cfg.Network.Sandbox(rec.ID); sb != nil {
		applySandbox(&c.rec, sb)
	}
	m.mu.Unlock()
	return m.save(c)
}
