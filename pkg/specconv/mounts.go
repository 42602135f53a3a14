package specconv

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// ParseMounts reads a container's mounts as dockerd does, with its error
// texts: HostConfig.Binds (-v), then HostConfig.Mounts (--mount), then the
// mounts taken from other containers (from, --volumes-from) and the
// Config.Volumes (image VOLUMEs and -v /path) that none of those covers. A
// bind source given with --mount must exist (exists); volumes come
// back with their name (empty for an anonymous one) and no Source yet.
func ParseMounts(cfg *container.Config, hc *container.HostConfig, exists func(string) bool, from ...dockermsg.MountPoint) ([]dockermsg.MountPoint, error) {
	if hc == nil {
		hc = &container.HostConfig{}
	}
	byDest := map[string]bool{}
	var out []dockermsg.MountPoint
	for _, raw := range hc.Binds {
		mp, err := parseBind(raw)
		if err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidParameter, err)
		}
		if _, tmpfs := hc.Tmpfs[mp.Destination]; byDest[mp.Destination] || tmpfs {
			return nil, duplicateMountPoint(mp.Destination)
		}
		if mp.Type == mount.TypeVolume {
			mp.Driver = hc.VolumeDriver // --volume-driver
		}
		byDest[mp.Destination] = true
		out = append(out, mp)
	}
	for i := range hc.Mounts {
		mp, err := parseMount(&hc.Mounts[i], exists)
		if err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidParameter, err)
		}
		if byDest[mp.Destination] {
			return nil, duplicateMountPoint(mp.Destination)
		}
		byDest[mp.Destination] = true
		out = append(out, mp)
	}
	fromDest := map[string]int{} // the last --volumes-from with a destination wins
	for _, mp := range from {
		if byDest[mp.Destination] {
			continue
		}
		if i, ok := fromDest[mp.Destination]; ok {
			out[i] = mp
			continue
		}
		fromDest[mp.Destination] = len(out)
		out = append(out, mp)
	}
	for dst := range fromDest {
		byDest[dst] = true
	}
	if cfg != nil {
		for v := range cfg.Volumes {
			dst := path.Clean(v)
			if byDest[dst] {
				continue
			}
			if err := validateTarget(dst); err != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid volume specification: '%s': %v", v, err)
			}
			byDest[dst] = true
			out = append(out, dockermsg.MountPoint{Type: mount.TypeVolume, Destination: dst, Driver: hc.VolumeDriver, RW: true, Anonymous: true, CopyData: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}

// VolumesFrom reads one --volumes-from: "CONTAINER" or "CONTAINER:MODE",
// MODE ro or rw (with a z or Z) but no propagation nor nocopy, as dockerd.
// It returns the container and whether its mounts stay writable.
func VolumesFrom(spec string) (string, bool, error) {
	if spec == "" {
		return "", false, errdefs.New(errdefs.InvalidParameter, "volumes-from specification cannot be an empty string")
	}
	ref, mode, _ := strings.Cut(spec, ":")
	if mode == "" {
		return ref, true, nil
	}
	if !validMode(mode) || hasMode(mode, "nocopy") || slices.ContainsFunc(strings.Split(mode, ","), func(o string) bool {
		return propagationModes[mount.Propagation(o)]
	}) {
		return "", false, errdefs.New(errdefs.InvalidParameter, "invalid mode: %s", mode)
	}
	return ref, !hasMode(mode, "ro"), nil
}

func duplicateMountPoint(dst string) error {
	return errdefs.New(errdefs.InvalidParameter, "Duplicate mount point: %s", dst)
}

var (
	rwModes          = map[string]bool{"rw": true, "ro": true}
	labelModes       = map[string]bool{"z": true, "Z": true}
	consistencyModes = map[string]bool{"consistent": true, "cached": true, "delegated": true}
	propagationModes = map[mount.Propagation]bool{
		mount.PropagationPrivate: true, mount.PropagationRPrivate: true,
		mount.PropagationSlave: true, mount.PropagationRSlave: true,
		mount.PropagationShared: true, mount.PropagationRShared: true,
	}
)

// validMode: at most one word of each kind (rw/ro, z/Z, propagation,
// nocopy, consistency), Docker's linuxValidMountMode.
func validMode(mode string) bool {
	if mode == "" {
		return true
	}
	seen := map[string]int{}
	for _, o := range strings.Split(mode, ",") {
		var kind string
		switch {
		case rwModes[o]:
			kind = "rw"
		case labelModes[o]:
			kind = "label"
		case propagationModes[mount.Propagation(o)]:
			kind = "propagation"
		case o == "nocopy":
			kind = "copy"
		case consistencyModes[o]:
			kind = "consistency"
		default:
			return false
		}
		if seen[kind]++; seen[kind] > 1 {
			return false
		}
	}
	return true
}

func hasMode(mode, word string) bool {
	for _, o := range strings.Split(mode, ",") {
		if o == word {
			return true
		}
	}
	return false
}

// parseBind reads one -v: "DEST", "SRC:DEST" or "SRC:DEST:MODE"; SRC is a
// host path when absolute, else a volume name.
func parseBind(raw string) (dockermsg.MountPoint, error) {
	var mp dockermsg.MountPoint
	invalid := fmt.Errorf("invalid volume specification: '%s'", raw)
	arr := strings.SplitN(raw, ":", 4)
	if arr[0] == "" {
		return mp, invalid
	}
	var src, dst, mode string
	switch len(arr) {
	case 1:
		dst = arr[0]
	case 2:
		if validMode(arr[1]) {
			return mp, invalid // "/foo:rw": a destination cannot carry a mode
		}
		src, dst = arr[0], arr[1]
	case 3:
		src, dst, mode = arr[0], arr[1], arr[2]
	default:
		return mp, invalid
	}
	if !validMode(mode) {
		return mp, fmt.Errorf("invalid mode: %s", mode)
	}
	m := mount.Mount{Source: src, Target: dst, ReadOnly: hasMode(mode, "ro"), Type: mount.TypeVolume}
	if path.IsAbs(src) {
		m.Type = mount.TypeBind
	}
	for _, o := range strings.Split(mode, ",") {
		if p := mount.Propagation(o); propagationModes[p] {
			m.BindOptions = &mount.BindOptions{Propagation: p}
		}
	}
	if hasMode(mode, "nocopy") {
		m.VolumeOptions = &mount.VolumeOptions{NoCopy: true}
	}
	mp, err := parseMount(&m, nil)
	if err != nil {
		return mp, fmt.Errorf("%v: %v", invalid, err)
	}
	mp.Mode = mode
	if mp.Type == mount.TypeBind {
		mp.CreateSource = true // -v makes a missing host directory, like Docker
	} else if mp.Mode == "" {
		mp.Mode = "z"
	}
	return mp, nil
}

func validateTarget(dst string) error {
	if dst == "" {
		return fmt.Errorf("field Target must not be empty")
	}
	if path.Clean(dst) == "/" {
		return fmt.Errorf("invalid specification: destination can't be '/'")
	}
	if !path.IsAbs(dst) {
		return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", dst)
	}
	return nil
}

// parseMount checks one --mount (Docker's validateMountConfig) and makes its
// record; exists, when not nil, checks that a bind source exists.
func parseMount(m *mount.Mount, exists func(string) bool) (dockermsg.MountPoint, error) {
	mp := dockermsg.MountPoint{Type: m.Type, RW: !m.ReadOnly, Destination: path.Clean(m.Target)}
	bad := func(format string, args ...any) (dockermsg.MountPoint, error) {
		return mp, fmt.Errorf("invalid mount config for type %q: %s", m.Type, fmt.Sprintf(format, args...))
	}
	if err := validateTarget(m.Target); err != nil {
		return bad("%v", err)
	}
	switch m.Type {
	case mount.TypeBind:
		if m.Source == "" {
			return bad("field Source must not be empty")
		}
		if m.VolumeOptions != nil {
			return bad("field VolumeOptions must not be specified")
		}
		if m.TmpfsOptions != nil {
			return bad("field TmpfsOptions must not be specified")
		}
		if !path.IsAbs(m.Source) {
			return bad("invalid mount path: '%s' mount path must be absolute", m.Source)
		}
		mp.Source = path.Clean(m.Source)
		mp.Propagation = mount.PropagationRPrivate
		if o := m.BindOptions; o != nil {
			if o.Propagation != "" {
				if !propagationModes[o.Propagation] {
					return bad("invalid propagation mode: %s", o.Propagation)
				}
				mp.Propagation = o.Propagation
			}
			mp.NonRecursive = o.NonRecursive
			mp.CreateSource = o.CreateMountpoint
			if o.ReadOnlyNonRecursive && o.ReadOnlyForceRecursive {
				return bad("must not set both ReadOnlyNonRecursive and ReadOnlyForceRecursive")
			}
			if (o.ReadOnlyNonRecursive || o.ReadOnlyForceRecursive) && !m.ReadOnly {
				return bad("must set ReadOnly when ReadOnlyNonRecursive or ReadOnlyForceRecursive is set")
			}
			mp.ReadOnlyNonRecursive = o.ReadOnlyNonRecursive
		}
		if exists != nil && !mp.CreateSource && !exists(mp.Source) {
			return bad("bind source path does not exist: %s", mp.Source)
		}
	case mount.TypeVolume:
		if m.BindOptions != nil {
			return bad("field BindOptions must not be specified")
		}
		if m.TmpfsOptions != nil {
			return bad("field TmpfsOptions must not be specified")
		}
		mp.Name = m.Source
		mp.Anonymous = m.Source == ""
		mp.CopyData = true
		if o := m.VolumeOptions; o != nil {
			mp.CopyData = !o.NoCopy
			if o.DriverConfig != nil && o.DriverConfig.Name != "" {
				mp.Driver = o.DriverConfig.Name
			}
			if o.Subpath != "" {
				if mp.Anonymous {
					return bad("must not set Subpath when using anonymous volumes")
				}
				if sp := path.Clean(o.Subpath); path.IsAbs(sp) || sp == ".." || strings.HasPrefix(sp, "../") {
					return bad("subpath must be a relative path within the volume")
				}
				mp.Subpath = path.Clean(o.Subpath)
			}
		}
		if m.ReadOnly && mp.Anonymous {
			return bad("must not set ReadOnly mode when using anonymous volumes")
		}
	case mount.TypeTmpfs:
		if m.BindOptions != nil {
			return bad("field BindOptions must not be specified")
		}
		if m.VolumeOptions != nil {
			return bad("field VolumeOptions must not be specified")
		}
		if m.Source != "" {
			return bad("field Source must not be specified")
		}
		opts, err := tmpfsOptions(m.TmpfsOptions, m.ReadOnly)
		if err != nil {
			return bad("%v", err)
		}
		mp.TmpfsOptions = opts
	case "":
		return mp, fmt.Errorf("invalid mount config: mount type unknown")
	default:
		return bad("mount type unknown")
	}
	return mp, nil
}

// tmpfsOptions are a tmpfs mount's options the way Docker writes them:
// "ro", "mode=1770" (octal), "size=64m" (the largest unit that divides it),
// then exec or noexec.
func tmpfsOptions(o *mount.TmpfsOptions, ro bool) ([]string, error) {
	var out []string
	if ro {
		out = append(out, "ro")
	}
	if o == nil {
		return out, nil
	}
	if o.Mode != 0 {
		out = append(out, fmt.Sprintf("mode=%o", uint32(o.Mode)))
	}
	if o.SizeBytes < 0 {
		return nil, fmt.Errorf("invalid tmpfs size %d", o.SizeBytes)
	}
	if o.SizeBytes != 0 {
		size, suffix := o.SizeBytes, ""
		for _, u := range []struct {
			s string
			d int64
		}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
			if size%u.d == 0 {
				size, suffix = size/u.d, u.s
				break
			}
		}
		out = append(out, fmt.Sprintf("size=%d%s", size, suffix))
	}
	for _, opt := range o.Options {
		if len(opt) < 1 || len(opt) > 2 {
			return nil, fmt.Errorf("invalid option array length")
		}
		if opt[0] != "exec" && opt[0] != "noexec" {
			return nil, fmt.Errorf("invalid option: %s", opt[0])
		}
		out = append(out, strings.Join(opt, "="))
	}
	return out, nil
}

// specMounts maps the container's resolved mount points to OCI mounts,
// shallowest destination first (a mount inside another comes after it). A
// volume's Source must be resolved (its directory, or the subpath in it).
func specMounts(mps []dockermsg.MountPoint) ([]specs.Mount, string, error) {
	sorted := append([]dockermsg.MountPoint(nil), mps...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return strings.Count(sorted[i].Destination, "/") < strings.Count(sorted[j].Destination, "/")
	})
	var out []specs.Mount
	rootProp := ""
	for _, m := range sorted {
		switch m.Type {
		case mount.TypeBind, mount.TypeVolume:
			if m.Source == "" {
				return nil, "", errdefs.New(errdefs.Unknown, "mount at %s has no source", m.Destination)
			}
			opts := []string{"rbind"}
			if m.NonRecursive {
				opts[0] = "bind"
			}
			if !m.RW {
				opts = append(opts, "ro")
				if !m.ReadOnlyNonRecursive && !m.NonRecursive {
					opts = append(opts, "rro")
				}
			}
			prop := m.Propagation
			if prop == "" {
				prop = mount.PropagationRPrivate
			}
			switch prop {
			case mount.PropagationShared, mount.PropagationRShared:
				if err := sourcePropagation(m.Source, "shared"); err != nil {
					return nil, "", err
				}
				rootProp = "rshared"
			case mount.PropagationSlave, mount.PropagationRSlave:
				if err := sourcePropagation(m.Source, "shared or slave"); err != nil {
					return nil, "", err
				}
				if rootProp == "" {
					rootProp = "rslave"
				}
			}
			opts = append(opts, string(prop))
			out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		case mount.TypeTmpfs:
			opts := []string{"nosuid", "nodev"}
			if !hasMode(strings.Join(m.TmpfsOptions, ","), "exec") {
				opts = append(opts, "noexec")
			}
			for _, o := range m.TmpfsOptions {
				if o != "exec" && o != "noexec" {
					opts = append(opts, o)
				}
			}
			out = append(out, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
		}
	}
	return out, rootProp, nil
}

// sourcePropagation checks, like dockerd, that the host mount holding a
// bind's source propagates as a shared (or slave) bind needs: a private
// one would never pass anything on.
func sourcePropagation(source, need string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	if p, err := filepath.EvalSymlinks(source); err == nil {
		source = p
	}
	best, fields := "", ""
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		mp := f[4]
		if (source == mp || mp == "/" || strings.HasPrefix(source, mp+"/")) && len(mp) >= len(best) {
			best, fields = mp, strings.Join(f[6:], " ")
		}
	}
	ok := strings.Contains(fields, "shared:") || (need != "shared" && strings.Contains(fields, "master:"))
	if !ok {
		return errdefs.New(errdefs.InvalidParameter, "path %s is mounted on %s but it is not a %s mount", source, best, need)
	}
	return nil
}
