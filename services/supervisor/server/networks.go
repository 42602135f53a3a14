package server

import (
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	bnet "berth/services/supervisor/network"
)

func (s *Server) networkCommand(verb string, m *nats.Msg) (any, error) {
	nm := s.Networks
	if nm == nil {
		return nil, errdefs.New(errdefs.NotImplemented, "networking is off in this supervisor (--bridge none)")
	}
	switch verb {
	case bus.VerbNetworkList:
		out := []network.Inspect{}
		for _, n := range nm.List() {
			out = append(out, s.networkInspect(&n))
		}
		return out, nil
	case bus.VerbNetworkInspect:
		req, err := decode[dockermsg.NetworkRequest](m.Data)
		if err != nil {
			return nil, err
		}
		n, err := nm.Lookup(req.Network)
		if err != nil {
			return nil, err
		}
		return s.networkInspect(n), nil
	case bus.VerbNetworkCreate:
		req, err := decode[dockermsg.NetworkCreateRequest](m.Data)
		if err != nil {
			return nil, err
		}
		o := bnet.CreateOptions{Name: req.Name, Driver: req.Driver, Internal: req.Internal, Attachable: req.Attachable,
			Options: req.Options, Labels: req.Labels, EnableIPv6: req.EnableIPv6 != nil && *req.EnableIPv6}
		if req.IPAM != nil {
			if req.IPAM.Driver != "" && req.IPAM.Driver != "default" {
				return nil, errdefs.New(errdefs.NotFound, "plugin %q not found", req.IPAM.Driver)
			}
			if len(req.IPAM.Config) > 1 {
				return nil, errdefs.New(errdefs.InvalidParameter, "berth's networks have one IPv4 subnet")
			}
			if len(req.IPAM.Config) == 1 {
				c := req.IPAM.Config[0]
				o.Subnet, o.IPRange, o.Gateway = c.Subnet, c.IPRange, c.Gateway
			}
		}
		n, err := nm.Create(o)
		if err != nil {
			return nil, err
		}
		return network.CreateResponse{ID: n.ID}, nil
	case bus.VerbNetworkRemove:
		req, err := decode[dockermsg.NetworkRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return nil, nm.Remove(req.Network)
	case bus.VerbNetworkConnect, bus.VerbNetworkDisconnect:
		req, err := decode[dockermsg.NetworkConnectRequest](m.Data)
		if err != nil {
			return nil, err
		}
		if req.Container == "" {
			return nil, errdefs.New(errdefs.InvalidParameter, "missing container ID or name")
		}
		if verb == bus.VerbNetworkConnect {
			return nil, s.Containers.ConnectNetwork(req.Container, req.Network, req.EndpointConfig)
		}
		return nil, s.Containers.DisconnectNetwork(req.Container, req.Network, req.Force)
	case bus.VerbNetworkPrune:
		req, err := decode[dockermsg.NetworkPruneRequest](m.Data)
		if err != nil {
			return nil, err
		}
		until, err := pruneUntil(req.Filters["until"])
		if err != nil {
			return nil, err
		}
		names := nm.Prune(func(n *bnet.Network) bool {
			if !until.IsZero() && !n.Created.Before(until) {
				return true
			}
			return !labelsMatch(n.Labels, req.Filters["label"], true) || !labelsMatch(n.Labels, req.Filters["label!"], false)
		})
		if names == nil {
			names = []string{}
		}
		return network.PruneReport{NetworksDeleted: names}, nil
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown network command %q", verb)
}

func pruneUntil(v []string) (time.Time, error) {
	if len(v) == 0 {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v[0]); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v[0]); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, errdefs.New(errdefs.InvalidParameter, "invalid until filter %q", v[0])
}

// labelsMatch: with want, every filter must match; without, none may.
func labelsMatch(labels map[string]string, filters []string, want bool) bool {
	for _, f := range filters {
		k, v, hasV := strings.Cut(f, "=")
		lv, ok := labels[k]
		if (ok && (!hasV || lv == v)) != want {
			return false
		}
	}
	return true
}

// networkInspect is GET /networks/{id}: the record and the running
// containers attached.
func (s *Server) networkInspect(n *bnet.Network) network.Inspect {
	out := network.Inspect{
		Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver, EnableIPv4: n.Driver == bnet.DriverBridge,
		IPAM:     network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		Internal: n.Internal, Attachable: n.Attachable,
		Containers: map[string]network.EndpointResource{}, Options: map[string]string{}, Labels: map[string]string{},
	}
	if n.Name == bnet.NameBridge {
		out.IPAM.Options = nil
	}
	if n.Subnet != "" {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet, IPRange: n.IPRange, Gateway: n.Gateway})
	}
	for k, v := range n.Labels {
		out.Labels[k] = v
	}
	for k, v := range n.Options {
		out.Options[k] = v
	}
	if n.Driver == bnet.DriverBridge {
		if n.Name == bnet.NameBridge {
			out.Options["com.docker.network.bridge.default_bridge"] = "true"
			out.Options["com.docker.network.bridge.enable_icc"] = boolStr(n.ICC)
			out.Options["com.docker.network.bridge.enable_ip_masquerade"] = boolStr(n.Masquerade)
			out.Options["com.docker.network.bridge.host_binding_ipv4"] = "0.0.0.0"
			out.Options["com.docker.network.bridge.name"] = n.Bridge
			out.Options["com.docker.network.driver.mtu"] = "1500"
		}
		for _, ep := range s.Networks.Endpoints(n.ID) {
			out.Containers[ep.ContainerID] = network.EndpointResource{Name: ep.Name, EndpointID: ep.EndpointID, MacAddress: ep.MAC,
				IPv4Address: ep.IP + "/" + strconv.Itoa(ep.PrefixLen)}
		}
	}
	return out
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
