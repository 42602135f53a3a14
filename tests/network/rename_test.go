package network

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRenameOnUserNetwork: after docker rename of a running container,
// the others of its user-defined network resolve the new name and no
// longer the old one (its network alias stays), network inspect lists it
// under the new name, and its DNSNames carry the new name.
func TestRenameOnUserNetwork(t *testing.T) {
	s := shared(t)
	s.MustDocker("network", "create", "rn-net")
	defer s.Docker("network", "rm", "rn-net")
	s.MustDocker("run", "-d", "--name", "rn-old", "--network", "rn-net", "--network-alias", "rn-alias", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "rn-old", "rn-new")
	s.MustDocker("run", "-d", "--name", "rn-peer", "--network", "rn-net", "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", "rn-peer")
	if out, errOut, code := s.Docker("exec", "rn-peer", "ping", "-c", "1", "-W", "2", "rn-old"); code != 0 {
		t.Fatalf("before the rename, rn-old: %s %s", out, errOut)
	}
	s.MustDocker("rename", "rn-old", "rn-new")
	for _, name := range []string{"rn-new", "rn-alias"} {
		if out, errOut, code := s.Docker("exec", "rn-peer", "ping", "-c", "1", "-W", "2", name); code != 0 {
			t.Errorf("after the rename, the peer does not reach %s: %s %s", name, out, errOut)
		}
	}
	if out, _, code := s.Docker("exec", "rn-peer", "ping", "-c", "1", "-W", "1", "rn-old"); code == 0 {
		t.Errorf("after the rename, the old name still resolves: %s", out)
	}
	// a container started after the rename too
	if out, errOut, code := s.Docker("run", "--rm", "--network", "rn-net", "busybox", "ping", "-c", "1", "-W", "2", "rn-new"); code != 0 {
		t.Errorf("a new container does not reach rn-new: %s %s", out, errOut)
	}
	var nets []struct {
		Containers map[string]struct{ Name string }
	}
	if err := json.Unmarshal([]byte(s.MustDocker("network", "inspect", "rn-net")), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect: %v", err)
	}
	var names []string
	for _, c := range nets[0].Containers {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "rn-new") || strings.Contains(got, "rn-old") {
		t.Errorf("network inspect Containers: %q", got)
	}
	if out := s.MustDocker("inspect", "-f", `{{json (index .NetworkSettings.Networks "rn-net").DNSNames}}`, "rn-new"); !strings.HasPrefix(out, `["rn-new","rn-alias",`) {
		t.Errorf("DNSNames: %s", out)
	}
}
