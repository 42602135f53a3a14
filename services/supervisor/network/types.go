package network

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"time"

	"berth/pkg/atomicfile"
)

// Drivers of the networks.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// Names of the predefined networks.
const (
	NameBridge = "bridge"
	NameHost   = "host"
	NameNone   = "none"
)

// Network is the record of one network, kept in <root>/networks/<id>.json.
type Network struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Driver     string            `json:"driver"`
	Created    time.Time         `json:"created"`
	Bridge     string            `json:"bridge,omitempty"`  // the bridge's interface name
	Subnet     string            `json:"subnet,omitempty"`  // CIDR
	Gateway    string            `json:"gateway,omitempty"` // the bridge's address
	IPRange    string            `json:"ipRange,omitempty"` // CIDR the containers' addresses come from
	Internal   bool              `json:"internal,omitempty"`
	Attachable bool              `json:"attachable,omitempty"`
	ICC        bool              `json:"icc"`
	Masquerade bool              `json:"masquerade"`
	Options    map[string]string `json:"options,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// SubnetGiven: the user chose the subnet (docker network create --subnet).
	SubnetGiven bool `json:"subnetGiven,omitempty"`
}

// Predefined reports whether n is one of bridge, host and none.
func (n *Network) Predefined() bool {
	return n.Name == NameBridge || n.Name == NameHost || n.Name == NameNone
}

// Endpoint is one container's interface on one network.
type Endpoint struct {
	NetworkID   string   `json:"networkID"`
	NetworkName string   `json:"networkName"`
	EndpointID  string   `json:"endpointID"`
	IfName      string   `json:"ifName"`   // inside the container: eth0, eth1…
	HostVeth    string   `json:"hostVeth"` // the host's end, on the bridge
	IP          string   `json:"ip"`
	PrefixLen   int      `json:"prefixLen"`
	Gateway     string   `json:"gateway"`
	MAC         string   `json:"mac"`
	Aliases     []string `json:"aliases,omitempty"` // names other containers of the network resolve
	// NetworkAliases: the --network-alias ones of Aliases (which has the
	// container's name and short ID too), for a rename to rebuild them
	NetworkAliases []string `json:"networkAliases,omitempty"`
}

// PortMapping is one published port of a running container.
type PortMapping struct {
	Proto    string `json:"proto"`  // tcp, udp
	HostIP   string `json:"hostIP"` // 0.0.0.0 for every address
	HostPort int    `json:"hostPort"`
	CtrPort  int    `json:"ctrPort"`
	CtrIP    string `json:"ctrIP"`
}

// Sandbox is the network state of one running container: its pinned
// network namespace, its endpoints and published ports. It is written to
// <exec-root>/network/sandboxes/<id>.json before anything of it is made,
// so that a supervisor restarting after a crash knows what to keep (the
// container still runs) or undo (it does not): addresses, ports, veths,
// namespace. The exec root is a tmpfs normally: after a reboot, when no
// container runs, nothing is left to reconcile.
type Sandbox struct {
	ContainerID string        `json:"containerID"`
	Name        string        `json:"name"`     // the container's name, without "/"
	Hostname    string        `json:"hostname"` // the names of its own hosts line: "h.domain h"
	NetNS       string        `json:"netns"`
	HostsPath   string        `json:"hostsPath,omitempty"` // the container's /etc/hosts on the host
	ExtraHosts  []string      `json:"extraHosts,omitempty"`
	Endpoints   []Endpoint    `json:"endpoints"`
	Ports       []PortMapping `json:"ports,omitempty"`
}

func (sb *Sandbox) endpoint(netID string) *Endpoint {
	for i := range sb.Endpoints {
		if sb.Endpoints[i].NetworkID == netID {
			return &sb.Endpoints[i]
		}
	}
	return nil
}

func writeJSON(path string, v any, sync bool) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if !sync {
		return atomicfile.WriteNoSync(path, data, 0o600)
	}
	return atomicfile.Write(path, data, 0o600)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func listJSON(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	return m
}

// macFor derives a MAC address from an IPv4 address, Docker's way
// (02:42 and the four bytes of the address): stable and unique per network.
func macFor(ip net.IP) net.HardwareAddr {
	ip4 := ip.To4()
	return net.HardwareAddr{0x02, 0x42, ip4[0], ip4[1], ip4[2], ip4[3]}
}
