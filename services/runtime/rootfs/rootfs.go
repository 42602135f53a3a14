// Package rootfs builds the container's root filesystem inside its new
// mount namespace: the mounts of config.json, the default devices and /dev
// symlinks, linux.devices, then pivot_root into it, then maskedPaths,
// readonlyPaths and a read-only root.
//
// pivot_root fallback: pivot_root(2) does not work when the current root is
// the initramfs (rootfs/ramfs cannot be unmounted), and --no-pivot asks to
// avoid it. Then the rootfs is MS_MOVEd over "/" and chroot(".") is used,
// as runc does. That is weaker (the old root stays mounted underneath in
// the container's mount namespace, reachable by a process that can escape
// a chroot, i.e. one with CAP_SYS_CHROOT), which is why pivot_root is the
// default and the fallback is only taken on EINVAL or on request.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/securejoin"
	v1 "berth/services/runtime/cgroups/v1"
)

// Config is what the rootfs needs beyond the spec.
type Config struct {
	Rootfs      string // absolute
	Spec        *specs.Spec
	NoPivot     bool
	UserNS      bool
	CgroupNS    bool
	CgroupPaths map[string]string // container cgroup dirs (host paths)
	CgroupV2    bool
	Debugf      func(string, ...any)
}

func (c *Config) debugf(f string, a ...any) {
	if c.Debugf != nil {
		c.Debugf(f, a...)
	}
}

// Prepare mounts everything below the new root (before pivot_root).
func Prepare(c *Config) error {
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if c.Spec.Linux != nil && c.Spec.Linux.RootfsPropagation != "" {
		f, ok := Propagation(c.Spec.Linux.RootfsPropagation)
		if !ok {
			return fmt.Errorf("invalid rootfsPropagation %q", c.Spec.Linux.RootfsPropagation)
		}
		prop = f
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set / propagation: %w", err)
	}
	// After a recursive slave or private propagation no mount is shared any
	// more, and reading mountinfo (large on a host with many containers) to
	// look for a shared parent would find nothing.
	if prop&unix.MS_REC == 0 || prop&(unix.MS_SLAVE|unix.MS_PRIVATE) == 0 {
		if err := parentPrivate(c.Rootfs); err != nil {
			return err
		}
	}
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs: %w", err)
	}
	setupDev := true
	for _, m := range c.Spec.Mounts {
		p := parseOptions(m.Options)
		if filepath.Clean(m.Destination) == "/dev" && (p.flags&unix.MS_BIND != 0 || m.Type == "bind") {
			setupDev = false
		}
		if err := c.mount(m); err != nil {
			return fmt.Errorf("mount %s to %s: %w", m.Source, m.Destination, err)
		}
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	if setupDev {
		if err := c.defaultDevices(); err != nil {
			return err
		}
	}
	if c.Spec.Linux != nil {
		for _, d := range c.Spec.Linux.Devices {
			if err := c.createDevice(d); err != nil {
				return fmt.Errorf("device %s: %w", d.Path, err)
			}
		}
	}
	return nil
}

// parentPrivate makes the mount holding the rootfs' parent private when it
// is shared: pivot_root refuses shared parents.
func parentPrivate(rootfs string) error {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	best := ""
	shared := false
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		mp := unescape(f[4])
		dir := filepath.Dir(rootfs)
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/") || mp == "/") && len(mp) >= len(best) {
			best = mp
			shared = false
			for _, o := range f[6:] {
				if o == "-" {
					break
				}
				if strings.HasPrefix(o, "shared:") {
					shared = true
				}
			}
		}
	}
	if best != "" && shared {
		if err := unix.Mount("", best, "", unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("make %s private: %w", best, err)
		}
	}
	return nil
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			fmt.Sscanf(s[i+1:i+4], "%o", &v)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func lockedFlags(path string) uintptr {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return 0
	}
	var f uintptr
	for _, m := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&m.st != 0 {
			f |= m.ms
		}
	}
	return f
}

func (c *Config) remount(dest string, flags uintptr) error {
	if c.UserNS {
		flags |= lockedFlags(dest)
	}
	return unix.Mount("", dest, "", flags|unix.MS_REMOUNT|unix.MS_BIND, "")
}

func ensureDir(p string) error { return os.MkdirAll(p, 0o755) }

func ensureFile(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	st, err := os.Lstat(p)
	if err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s is a directory", p)
		}
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

func (c *Config) mount(m specs.Mount) error {
	dest, err := securejoin.Join(c.Rootfs, m.Destination)
	if err != nil {
		return err
	}
	p := parseOptions(m.Options)
	bind := p.flags&unix.MS_BIND != 0 || m.Type == "bind"
	switch {
	case bind:
		src := m.Source
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if st.IsDir() {
			err = ensureDir(dest)
		} else {
			err = ensureFile(dest)
		}
		if err != nil {
			return err
		}
		if err := unix.Mount(src, dest, "", unix.MS_BIND|(p.flags&unix.MS_REC), ""); err != nil {
			return err
		}
		if rest := p.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
			if err := c.remount(dest, rest); err != nil {
				return fmt.Errorf("remount: %w", err)
			}
		}
	case m.Type == "cgroup" || m.Type == "cgroup2":
		if err := c.mountCgroup(dest, p); err != nil {
			return err
		}
	default:
		if err := ensureDir(dest); err != nil {
			return err
		}
		src := m.Source
		if src == "" {
			src = m.Type
		}
		err := unix.Mount(src, dest, m.Type, p.flags, p.data)
		if err != nil && (m.Type == "sysfs" || m.Type == "mqueue") && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
			// Not permitted in this user namespace (e.g. sysfs without a
			// network namespace): bind the host's instead, as runc does.
			host := "/sys"
			if m.Type == "mqueue" {
				host = "/dev/mqueue"
			}
			c.debugf("mount %s failed (%v), binding %s", m.Type, err, host)
			if err = unix.Mount(host, dest, "", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = c.remount(dest, p.flags&^unix.MS_REMOUNT)
			}
		}
		if err != nil {
			return err
		}
	}
	for _, pf := range p.prop {
		if err := unix.Mount("", dest, "", pf, ""); err != nil {
			return fmt.Errorf("propagation: %w", err)
		}
	}
	if p.hasAttrs {
		attr := &unix.MountAttr{Attr_set: p.attrSet, Attr_clr: p.attrClr}
		if err := unix.MountSetattr(-1, dest, unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("mount_setattr: %w", err)
		}
	}
	return nil
}

// mountCgroup mounts the container's view of the cgroup hierarchies: real
// cgroup filesystems when it has its own cgroup namespace, bind mounts of
// its own cgroup directories otherwise.
func (c *Config) mountCgroup(dest string, p parsed) error {
	flags := p.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	if err := ensureDir(dest); err != nil {
		return err
	}
	if c.CgroupV2 {
		if c.CgroupNS {
			return unix.Mount("cgroup2", dest, "cgroup2", flags, "")
		}
		if err := unix.Mount(c.CgroupPaths[""], dest, "", unix.MS_BIND, ""); err != nil {
			return err
		}
		return c.remount(dest, flags)
	}
	mounts, err := v1.Mounts()
	if err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dest, "tmpfs", flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return err
	}
	byMnt := map[string][]string{}
	for ctrl, mnt := range mounts {
		byMnt[mnt] = append(byMnt[mnt], ctrl)
	}
	for mnt, ctrls := range byMnt {
		sub := filepath.Join(dest, filepath.Base(mnt))
		if err := ensureDir(sub); err != nil {
			return err
		}
		if c.CgroupNS {
			if ctrls[0] == v1.Unified {
				err = unix.Mount("cgroup2", sub, "cgroup2", flags, "")
			} else {
				err = unix.Mount("cgroup", sub, "cgroup", flags, strings.Join(ctrls, ","))
			}
		} else {
			src := c.CgroupPaths[ctrls[0]]
			if src == "" {
				continue
			}
			if err = unix.Mount(src, sub, "", unix.MS_BIND, ""); err == nil {
				err = c.remount(sub, flags)
			}
		}
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", strings.Join(ctrls, ","), err)
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		return unix.Mount("", dest, "", unix.MS_REMOUNT|flags, "mode=755")
	}
	return nil
}

type devNode struct {
	name         string
	major, minor uint32
}

var defaultDevs = []devNode{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}

func (c *Config) defaultDevices() error {
	dev := filepath.Join(c.Rootfs, "dev")
	if err := ensureDir(dev); err != nil {
		return err
	}
	for _, d := range defaultDevs {
		mode := uint32(0o666)
		if err := c.mknod(filepath.Join(dev, d.name), 'c', mode, d.major, d.minor, 0, 0); err != nil {
			return fmt.Errorf("device /dev/%s: %w", d.name, err)
		}
	}
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	ptmx := filepath.Join(dev, "ptmx")
	if err := os.Remove(ptmx); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.Symlink("pts/ptmx", ptmx)
}

func (c *Config) mknod(path string, typ rune, perm, major, minor, uid, gid uint32) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if c.UserNS && typ != 'p' {
		// mknod is not allowed in a user namespace: bind the host node.
		if err := ensureFile(path); err != nil {
			return err
		}
		host := fmt.Sprintf("/dev/%s", filepath.Base(path))
		if c.hostDevice(host, major, minor) {
			return unix.Mount(host, path, "", unix.MS_BIND, "")
		}
		return fmt.Errorf("cannot create device %d:%d in a user namespace", major, minor)
	}
	var mode uint32
	switch typ {
	case 'c', 'u':
		mode = unix.S_IFCHR
	case 'b':
		mode = unix.S_IFBLK
	case 'p':
		mode = unix.S_IFIFO
	default:
		return fmt.Errorf("invalid device type %q", typ)
	}
	_ = os.Remove(path)
	if err := unix.Mknod(path, mode|perm, int(unix.Mkdev(major, minor))); err != nil {
		return err
	}
	return unix.Lchown(path, int(uid), int(gid))
}

func (c *Config) hostDevice(p string, major, minor uint32) bool {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return false
	}
	return unix.Major(st.Rdev) == major && unix.Minor(st.Rdev) == minor
}

func (c *Config) createDevice(d specs.LinuxDevice) error {
	dest, err := securejoin.Join(c.Rootfs, d.Path)
	if err != nil {
		return err
	}
	if d.Type == "" || len(d.Type) != 1 {
		return fmt.Errorf("invalid device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(*d.FileMode & 0o7777)
	}
	var uid, gid uint32
	if d.UID != nil {
		uid = *d.UID
	}
	if d.GID != nil {
		gid = *d.GID
	}
	if c.UserNS && d.Type != "p" {
		if err := ensureFile(dest); err != nil {
			return err
		}
		return unix.Mount(d.Path, dest, "", unix.MS_BIND, "")
	}
	return c.mknod(dest, rune(d.Type[0]), perm, uint32(d.Major), uint32(d.Minor), uid, gid)
}

// Pivot switches the root to rootfs: pivot_root, or the MS_MOVE+chroot
// fallback (see the package comment).
func Pivot(c *Config) error {
	if !c.NoPivot {
		err := pivotRoot(c.Rootfs)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		c.debugf("pivot_root failed (%v), falling back to MS_MOVE+chroot", err)
	}
	return moveRoot(c.Rootfs)
}

func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newroot)
	if err := unix.Fchdir(newroot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// The old root is now stacked on "."; detach it without letting the
	// unmount propagate to the host.
	if err := unix.Fchdir(oldroot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	return unix.Chdir("/")
}

func moveRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

// Finalize runs after the root change: root propagation, sysctls,
// readonly and masked paths, read-only root.
func Finalize(c *Config) error {
	l := c.Spec.Linux
	if l != nil && l.RootfsPropagation != "" {
		f, _ := Propagation(l.RootfsPropagation)
		if err := unix.Mount("", "/", "", f, ""); err != nil {
			return fmt.Errorf("rootfs propagation: %w", err)
		}
	}
	if l != nil {
		for k, v := range l.Sysctl {
			p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("sysctl %s: %w", k, err)
			}
		}
		for _, p := range l.ReadonlyPaths {
			if err := c.readonly(p); err != nil {
				return fmt.Errorf("readonly path %s: %w", p, err)
			}
		}
		for _, p := range l.MaskedPaths {
			if err := mask(p); err != nil {
				return fmt.Errorf("masked path %s: %w", p, err)
			}
		}
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		if err := c.remount("/", unix.MS_RDONLY); err != nil {
			return fmt.Errorf("read-only root: %w", err)
		}
	}
	return nil
}

func (c *Config) readonly(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return c.remount(p, unix.MS_RDONLY|unix.MS_REC)
}

func mask(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if st.IsDir() {
		return unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
	}
	return unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
}

// BindConsole bind-mounts the pty slave onto /dev/console.
func BindConsole(slave string) error {
	if err := ensureFile("/dev/console"); err != nil {
		return err
	}
	return unix.Mount(slave, "/dev/console", "", unix.MS_BIND, "")
}
