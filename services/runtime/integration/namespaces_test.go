package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestNamespacesNew(t *testing.T) {
	e := newEnv(t)
	r := e.run(e.bundle([]string{"sh", "-c", "echo $$; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net; cat /proc/sys/net/ipv4/ip_forward"}, func(s *specs.Spec) {
		s.Hostname, s.Domainname = "boxhost", "boxdomain"
		s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	}))
	if r.code != 0 {
		t.Fatal(r)
	}
	lines := strings.Fields(r.stdout)
	if len(lines) < 3 || lines[0] != "1" || lines[1] != "boxhost" || lines[2] != "boxdomain" {
		t.Fatalf("pid/uts: %v", r)
	}
	if !strings.HasSuffix(r.stdout, "\n1\n") {
		t.Fatalf("sysctl not applied: %q", r.stdout)
	}
	if strings.Contains(r.stdout, "eth0") {
		t.Fatalf("network namespace not private: %s", r.stdout)
	}
	// the cgroup namespace is rooted at the container's own cgroup
	r = e.run(e.bundle([]string{"cat", "/proc/self/cgroup"}, nil))
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.HasSuffix(l, ":/") {
			t.Fatalf("cgroup namespace not rooted at the container's cgroup: %q", r.stdout)
		}
	}
	// every namespace differs from the host's
	r = e.run(e.bundle([]string{"sh", "-c", "readlink /proc/self/ns/pid /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/mnt /proc/self/ns/cgroup"}, nil))
	for _, ns := range []string{"pid", "net", "ipc", "uts", "mnt", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if strings.Contains(r.stdout, host) {
			t.Fatalf("%s namespace is the host's: %s", ns, r.stdout)
		}
	}
}

func TestUserNamespaceMapping(t *testing.T) {
	e := newEnv(t)
	userNS := func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		// mount the cgroup hierarchies only with a cgroup namespace of our own
		var ms []specs.Mount
		for _, m := range s.Mounts {
			if m.Type != "cgroup" {
				ms = append(ms, m)
			}
		}
		s.Mounts = ms
		s.Root.Readonly = false
	}
	r := e.run(e.bundle([]string{"sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/x && stat -c %u /tmp/x"}, userNS))
	if r.code != 0 {
		t.Fatal(r)
	}
	f := strings.Fields(r.stdout)
	if len(f) < 7 || f[0] != "0" || f[1] != "0" || f[2] != "100000" || f[3] != "65536" || f[4] != "0" || f[5] != "100000" {
		t.Fatalf("mapping: %q", r.stdout)
	}
	// exec joins the user namespace first, then the others
	pid := e.create("userns", e.bundle([]string{"sleep", "100"}, userNS))
	e.ok("start", "userns")
	r = e.ok("exec", "userns", "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user")
	hostNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
	if f := strings.Fields(r.stdout); len(f) < 5 || f[0] != "0" || f[2] != "100000" || f[4] != hostNS {
		t.Fatalf("exec in user namespace: %v", r)
	}
	e.ok("kill", "userns", "KILL")
	reap(t, pid)
	e.ok("delete", "userns")
}

func TestJoinNamespacesByPath(t *testing.T) {
	e := newEnv(t)
	pidA := e.create("nsa", e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) { s.Hostname = "host-a" }))
	e.ok("start", "nsa")
	b := e.bundle([]string{"sh", "-c", "hostname; readlink /proc/self/ns/net; ps -o pid,args"}, func(s *specs.Spec) {
		s.Hostname = ""
		for i, ns := range s.Linux.Namespaces {
			switch ns.Type {
			case specs.NetworkNamespace, specs.UTSNamespace, specs.PIDNamespace, specs.IPCNamespace:
				s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", pidA, map[specs.LinuxNamespaceType]string{"network": "net"}[ns.Type]+strings.TrimPrefix(string(ns.Type), "network"))
			}
		}
	})
	r := e.run(b)
	if r.code != 0 {
		t.Fatal(r)
	}
	netA, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pidA))
	contains(t, r.stdout, "host-a")
	contains(t, r.stdout, netA)
	contains(t, r.stdout, "sleep 100") // sees A's processes: same pid namespace
	e.ok("delete", "--force", "nsa")
	reap(t, pidA)
}

func TestTimeNamespace(t *testing.T) {
	e := newEnv(t)
	r := e.run(e.bundle([]string{"sh", "-c", "cut -d. -f1 /proc/uptime; cat /proc/self/timens_offsets"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400 * 365}}
	}))
	if r.code != 0 {
		t.Fatal(r)
	}
	f := strings.Fields(r.stdout)
	if len(f) < 7 || f[5] != "31536000" {
		t.Fatalf("time offsets: %q", r.stdout)
	}
	if up, _ := strconv.Atoi(f[0]); up < 31536000 {
		t.Fatalf("uptime %d not shifted by a year", up)
	}
}

// TestJoinUserCgroupTimeByPath: a container joins another's user, cgroup
// and time namespaces by path, keeping that one's id mapping and clock
// offset (the spec carries no mapping or offset of its own then).
func TestJoinUserCgroupTimeByPath(t *testing.T) {
	e := newEnv(t)
	pidA := e.create("nsown", e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces,
			specs.LinuxNamespace{Type: specs.UserNamespace}, specs.LinuxNamespace{Type: specs.TimeNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
		s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400 * 365}}
		var ms []specs.Mount
		for _, m := range s.Mounts {
			if m.Type != "cgroup" {
				ms = append(ms, m)
			}
		}
		s.Mounts = ms
	}))
	e.ok("start", "nsown")
	defer func() { e.ok("delete", "--force", "nsown"); reap(t, pidA) }()
	b := e.bundle([]string{"sh", "-c", "cat /proc/self/uid_map; cut -d. -f1 /proc/uptime; for n in user cgroup time; do readlink /proc/self/ns/$n; done"}, func(s *specs.Spec) {
		var ms []specs.Mount
		for _, m := range s.Mounts {
			if m.Type != "cgroup" {
				ms = append(ms, m)
			}
		}
		s.Mounts = ms
		for _, n := range []struct {
			t    specs.LinuxNamespaceType
			proc string
		}{{specs.UserNamespace, "user"}, {specs.CgroupNamespace, "cgroup"}, {specs.TimeNamespace, "time"}} {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == n.t })
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: n.t, Path: fmt.Sprintf("/proc/%d/ns/%s", pidA, n.proc)})
		}
	})
	// the joining container's rootfs is reachable by the mapped root
	if err := os.Chown(filepath.Join(b, "rootfs"), 200000, 200000); err != nil {
		t.Fatal(err)
	}
	r := e.run(b)
	if r.code != 0 {
		t.Fatal(r)
	}
	f := strings.Fields(r.stdout)
	if len(f) != 7 || f[1] != "200000" {
		t.Fatalf("user namespace by path: %q", r.stdout)
	}
	if up, _ := strconv.Atoi(f[3]); up < 86400*365 {
		t.Errorf("time namespace by path: uptime %d not shifted", up)
	}
	for i, n := range []string{"user", "cgroup", "time"} {
		want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pidA, n))
		if f[4+i] != want {
			t.Errorf("%s namespace %s, want %s", n, f[4+i], want)
		}
	}
}
