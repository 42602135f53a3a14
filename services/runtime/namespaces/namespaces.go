// Package namespaces maps the OCI namespace list onto clone flags (for the
// namespaces the runtime creates) and onto the join list consumed by the
// nsenter constructor (for namespaces given by path, and for exec).
package namespaces

import (
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CLONE_NEWTIME is missing from older x/sys releases.
const cloneNewTime = 0x80

// Flag returns the clone flag of an OCI namespace type.
func Flag(t specs.LinuxNamespaceType) (uintptr, bool) {
	switch t {
	case specs.PIDNamespace:
		return unix.CLONE_NEWPID, true
	case specs.NetworkNamespace:
		return unix.CLONE_NEWNET, true
	case specs.MountNamespace:
		return unix.CLONE_NEWNS, true
	case specs.IPCNamespace:
		return unix.CLONE_NEWIPC, true
	case specs.UTSNamespace:
		return unix.CLONE_NEWUTS, true
	case specs.UserNamespace:
		return unix.CLONE_NEWUSER, true
	case specs.CgroupNamespace:
		return unix.CLONE_NEWCGROUP, true
	case specs.TimeNamespace:
		return cloneNewTime, true
	}
	return 0, false
}

// ProcName is the name of the namespace under /proc/PID/ns.
func ProcName(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	}
	return string(t)
}

// joinOrder is the order the nsenter constructor joins in: the user
// namespace first (it grants the capabilities for the rest), the mount
// namespace last (after it the host paths are gone).
var joinOrder = []specs.LinuxNamespaceType{
	specs.UserNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace,
	specs.PIDNamespace, specs.CgroupNamespace, specs.TimeNamespace, specs.MountNamespace,
}

// Plan is what to do with namespaces when starting a process.
type Plan struct {
	CloneFlags uintptr
	Join       []Join // ordered for the constructor
}

// Join is a namespace entered by path.
type Join struct {
	Type specs.LinuxNamespaceType
	Path string
}

// Validate checks the namespace list: known types, no duplicates.
func Validate(nss []specs.LinuxNamespace) error {
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range nss {
		if _, ok := Flag(ns.Type); !ok {
			return fmt.Errorf("unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("duplicate namespace type %q", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" {
			if _, err := os.Stat(ns.Path); err != nil {
				return fmt.Errorf("namespace %s path: %w", ns.Type, err)
			}
		}
	}
	return nil
}

// PlanFor splits the config's namespaces into created and joined ones.
func PlanFor(nss []specs.LinuxNamespace) Plan {
	var p Plan
	byType := map[specs.LinuxNamespaceType]string{}
	for _, ns := range nss {
		f, _ := Flag(ns.Type)
		if ns.Path == "" {
			p.CloneFlags |= f
		} else {
			byType[ns.Type] = ns.Path
		}
	}
	for _, t := range joinOrder {
		if path, ok := byType[t]; ok {
			p.Join = append(p.Join, Join{t, path})
		}
	}
	return p
}

// ForExec lists the namespaces of process pid that differ from ours, in
// join order: what `exec` has to enter.
func ForExec(pid int) []Join {
	var out []Join
	for _, t := range joinOrder {
		name := ProcName(t)
		theirs := fmt.Sprintf("/proc/%d/ns/%s", pid, name)
		var a, b unix.Stat_t
		if unix.Stat(theirs, &a) != nil || unix.Stat("/proc/self/ns/"+name, &b) != nil {
			continue
		}
		if a.Ino == b.Ino && a.Dev == b.Dev {
			continue
		}
		out = append(out, Join{t, theirs})
	}
	return out
}

// Env renders a join list for the nsenter constructor.
func Env(js []Join) string {
	parts := make([]string, len(js))
	for i, j := range js {
		parts[i] = ProcName(j.Type) + ":" + j.Path
	}
	return strings.Join(parts, ",")
}

// Has reports whether the config creates or joins namespace t.
func Has(nss []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	for _, ns := range nss {
		if ns.Type == t {
			return true
		}
	}
	return false
}
