package specconv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var errNotADevice = errors.New("not a device node")

// deviceFromPath describes the device node at p (not following a symlink).
func deviceFromPath(p string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return specs.LinuxDevice{}, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, errNotADevice
	}
	mode := os.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: p, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}

// devicesFromPath is dockerd's: the node at onHost (a symlink resolved),
// or every node below it when it is a directory, at inCtr in the container,
// with the cgroup rules that let the container use them with perms.
func devicesFromPath(onHost, inCtr, perms string) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	resolved := onHost
	if fi, err := os.Lstat(onHost); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if p, err := filepath.EvalSymlinks(onHost); err == nil {
			resolved = p
		}
	}
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	add := func(d specs.LinuxDevice, path string) {
		d.Path = path
		devs = append(devs, d)
		major, minor := d.Major, d.Minor
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: perms})
	}
	d, err := deviceFromPath(resolved)
	if err == nil {
		add(d, inCtr)
		return devs, rules, nil
	}
	if errors.Is(err, errNotADevice) {
		if fi, e := os.Stat(resolved); e == nil && fi.IsDir() {
			_ = filepath.WalkDir(resolved, func(p string, _ os.DirEntry, _ error) error {
				if d, e := deviceFromPath(p); e == nil {
					add(d, strings.Replace(p, resolved, inCtr, 1))
				}
				return nil
			})
		}
	}
	if len(devs) > 0 {
		return devs, rules, nil
	}
	return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %s", onHost, err)
}

var deviceCgroupRule = regexp.MustCompile(`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`)

// cgroupRule reads a --device-cgroup-rule ("c 1:3 rwm", "a *:* m").
func cgroupRule(rule string) (specs.LinuxDeviceCgroup, error) {
	m := deviceCgroupRule.FindStringSubmatch(rule)
	if m == nil {
		return specs.LinuxDeviceCgroup{}, fmt.Errorf("invalid device cgroup rule format: '%s'", rule)
	}
	num := func(s, what string) (*int64, error) {
		n := int64(-1)
		if s != "*" {
			var err error
			if n, err = strconv.ParseInt(s, 10, 64); err != nil {
				return nil, fmt.Errorf("invalid %s value in device cgroup rule format: '%s'", what, rule)
			}
		}
		return &n, nil
	}
	major, err := num(m[2], "major")
	if err != nil {
		return specs.LinuxDeviceCgroup{}, err
	}
	minor, err := num(m[3], "minor")
	if err != nil {
		return specs.LinuxDeviceCgroup{}, err
	}
	return specs.LinuxDeviceCgroup{Allow: true, Type: m[1], Major: major, Minor: minor, Access: m[4]}, nil
}

// addDevices adds --device and --device-cgroup-rule as dockerd does: a
// privileged container, which has every host device already, gets only the
// devices mapped to another path, and no further rule.
func addDevices(s *specs.Spec, hc *container.HostConfig) error {
	for _, dm := range hc.Devices {
		perms := dm.CgroupPermissions
		if hc.Privileged {
			if dm.PathOnHost == dm.PathInContainer {
				continue
			}
			perms = "rwm"
		}
		devs, rules, err := devicesFromPath(dm.PathOnHost, dm.PathInContainer, perms)
		if err != nil {
			return err
		}
		s.Linux.Devices = append(s.Linux.Devices, devs...)
		if !hc.Privileged {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)
		}
	}
	if hc.Privileged {
		return nil
	}
	for _, r := range hc.DeviceCgroupRules {
		rule, err := cgroupRule(r)
		if err != nil {
			return err
		}
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rule)
	}
	return nil
}
