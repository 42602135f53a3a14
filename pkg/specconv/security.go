package specconv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/errdefs"
)

// availableCaps are the capabilities this process holds (CapEff): a
// privileged container or --cap-add ALL gets these, not the kernel's whole
// list, since the runtime could not grant more (Docker does the same; a
// host without CAP_SYS_RESOURCE, say, still runs privileged containers).
var availableCaps = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	data, err := os.ReadFile("/proc/self/status")
	var eff uint64
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
		}
	}
	for i, c := range AllCapabilities() {
		if err != nil || eff&(1<<i) != 0 {
			out[c] = true
		}
	}
	return out
})

// normCaps validates CapAdd or CapDrop entries ("chown", "CAP_CHOWN",
// "ALL") and returns them as CAP_ names.
func normCaps(list []string, what string) ([]string, error) {
	var out []string
	for _, c := range list {
		n := strings.ToUpper(strings.TrimSpace(c))
		if n != "ALL" && !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if n != "ALL" && !slices.Contains(AllCapabilities(), n) {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid %s: unknown capability: %q", what, n)
		}
		out = append(out, n)
	}
	return out, nil
}

// ValidateCapabilities checks CapAdd and CapDrop the way Docker's create
// does (also for a privileged container, which ignores them).
func ValidateCapabilities(hc *container.HostConfig) error {
	if _, err := normCaps(hc.CapAdd, "CapAdd"); err != nil {
		return err
	}
	_, err := normCaps(hc.CapDrop, "CapDrop")
	return err
}

// capabilities are the container's capability set, Docker's way: all
// available ones when privileged or with --cap-add ALL (minus --cap-drop),
// only --cap-add's with --cap-drop ALL, else the defaults minus --cap-drop
// plus --cap-add. A capability this host does not have is left out (the
// runtime could not grant it).
func capabilities(hc *container.HostConfig) ([]string, error) {
	adds, err := normCaps(hc.CapAdd, "CapAdd")
	if err != nil {
		return nil, err
	}
	drops, err := normCaps(hc.CapDrop, "CapDrop")
	if err != nil {
		return nil, err
	}
	avail := availableCaps()
	set := map[string]bool{}
	switch {
	case hc.Privileged:
		for c := range avail {
			set[c] = true
		}
	case slices.Contains(adds, "ALL"):
		for c := range avail {
			set[c] = !slices.Contains(drops, c)
		}
	case slices.Contains(drops, "ALL"):
		for _, c := range adds {
			set[c] = true
		}
	default:
		for _, c := range DefaultCapabilities() {
			set[c] = !slices.Contains(drops, c)
		}
		for _, c := range adds {
			set[c] = true
		}
	}
	var out []string
	for _, c := range AllCapabilities() {
		if set[c] && avail[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

// HostDevices are the device nodes under the host's /dev, which a
// privileged container gets (Docker's --privileged), but not those of
// /dev/pts, /dev/shm, /dev/mqueue or /dev/fd, which the container has of
// its own.
func HostDevices() []specs.LinuxDevice {
	var out []specs.LinuxDevice
	skip := map[string]bool{"/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true, "/dev/fd": true, "/dev/.lxc": true, "/dev/.udev": true}
	_ = filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if skip[p] {
				return filepath.SkipDir
			}
			return nil
		}
		if p == "/dev/console" || p == "/dev/ptmx" {
			return nil // the runtime makes the container's own
		}
		if dev, err := deviceFromPath(p); err == nil {
			out = append(out, dev)
		}
		return nil
	})
	return out
}

// applySecurity sets what HostConfig's privileged flag and security
// options decide: capabilities, seccomp, no_new_privs, AppArmor, masked and
// read-only paths, and for a privileged container every host device.
func applySecurity(s *specs.Spec, hc *container.HostConfig) error {
	caps, err := capabilities(hc)
	if err != nil {
		return err
	}
	s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	so, err := ParseSecurityOpt(hc.SecurityOpt)
	if err != nil {
		return err
	}
	s.Process.NoNewPrivileges = so.NoNewPrivileges
	if so.AppArmorProfile != "" && appArmorEnabled() {
		s.Process.ApparmorProfile = so.AppArmorProfile
	}
	if s.Linux.Seccomp, err = seccompFor(so, hc.Privileged, caps); err != nil {
		return err
	}
	if !hc.Privileged && !so.SystemPathsUnconf {
		// HostConfig's lists replace the defaults when given, empty
		// included (the CLI's --security-opt systempaths=unconfined)
		masked, ro := MaskedPaths, ReadonlyPaths
		if hc.MaskedPaths != nil {
			masked = hc.MaskedPaths
		}
		if hc.ReadonlyPaths != nil {
			ro = hc.ReadonlyPaths
		}
		s.Linux.MaskedPaths = append([]string(nil), masked...)
		s.Linux.ReadonlyPaths = append([]string(nil), ro...)
	}
	if hc.Privileged {
		s.Linux.Devices = HostDevices()
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	return addDevices(s, hc)
}
