package network

import (
	"fmt"
	"os"
	"strings"
)

// DefaultHosts is the start of a container's /etc/hosts with a network
// namespace of its own (Docker's).
const DefaultHosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"

// ExtraHostLines renders --add-host entries ("name:ip"; "host-gateway"
// is the gateway of the container's first network).
func ExtraHostLines(extra []string, gateway string) string {
	var b strings.Builder
	for _, e := range extra {
		name, ip, ok := strings.Cut(e, ":")
		if !ok {
			// Docker's newer form "name=ip"
			if name, ip, ok = strings.Cut(e, "="); !ok {
				continue
			}
		}
		if ip == "host-gateway" {
			if gateway == "" {
				continue
			}
			ip = gateway
		}
		fmt.Fprintf(&b, "%s\t%s\n", strings.Trim(ip, "[]"), name)
	}
	return b.String()
}

// hostNames are the names of a container's own line in its /etc/hosts, as
// Docker writes them: its fully qualified name, then the bare one.
func hostNames(hostname, domainname string) string {
	fqdn := hostname
	if domainname != "" {
		fqdn += "." + domainname
	}
	if short, _, _ := strings.Cut(hostname, "."); short != fqdn {
		return fqdn + " " + short
	}
	return fqdn
}

// hostsLocked renders the /etc/hosts of sb: the defaults, --add-host,
// its own address and hostname, then one line per container it shares a
// user-defined network with (their names and aliases), Docker's embedded
// DNS answers given as hosts entries (m.mu held).
func (m *Manager) hostsLocked(sb *Sandbox) []byte {
	var b strings.Builder
	b.WriteString(DefaultHosts)
	gw := ""
	if len(sb.Endpoints) > 0 {
		gw = sb.Endpoints[0].Gateway
	}
	b.WriteString(ExtraHostLines(sb.ExtraHosts, gw))
	if len(sb.Endpoints) > 0 {
		fmt.Fprintf(&b, "%s\t%s\n", sb.Endpoints[0].IP, sb.Hostname)
	}
	for _, ep := range sb.Endpoints {
		if n := m.nets[ep.NetworkID]; n == nil || n.Name == NameBridge {
			continue // the default bridge resolves no names, as with Docker
		}
		for _, other := range m.sandboxes {
			if other.ContainerID == sb.ContainerID {
				continue
			}
			if oep := other.endpoint(ep.NetworkID); oep != nil && len(oep.Aliases) > 0 {
				fmt.Fprintf(&b, "%s\t%s\n", oep.IP, strings.Join(oep.Aliases, " "))
			}
		}
	}
	return []byte(b.String())
}

// updateHosts rewrites the hosts files of container id (if it has a
// sandbox) and of every container on one of nets. The file is written in
// place: it is bind-mounted into the container, a rename would not be seen.
func (m *Manager) updateHosts(id string, nets []*Network) {
	m.mu.Lock()
	todo := map[string][]byte{}
	for _, sb := range m.sandboxes {
		touch := sb.ContainerID == id
		for _, n := range nets {
			if n.Name != NameBridge && sb.endpoint(n.ID) != nil {
				touch = true
			}
		}
		if touch && sb.HostsPath != "" {
			todo[sb.HostsPath] = m.hostsLocked(sb)
		}
	}
	m.mu.Unlock()
	for p, data := range todo {
		if err := os.WriteFile(p, data, 0o644); err != nil && !os.IsNotExist(err) {
			m.log.Warn("updating a container's hosts file", "path", p, "err", err)
		}
	}
}
