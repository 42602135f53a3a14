// Package idmap is berth's --userns-remap: the uid/gid ranges a
// supervisor maps its containers' users to (from /etc/subuid and
// /etc/subgid, like dockerd's), a user namespace holding that mapping, and
// idmapped mounts made with it.
//
// How a remapped container gets its root filesystem: each image layer is
// cloned as a detached idmapped mount (open_tree + mount_setattr
// MOUNT_ATTR_IDMAP, Linux 5.12+), so that files owned by 0 on disk appear
// owned by the remapped root, and overlayfs stacks those (by their
// /proc/self/fd paths: nothing is attached, nothing to unmount). The
// layers on disk stay as they are, shared with unremapped containers; the
// container's writable layer holds what the container writes, owned by
// the remapped ids. A kernel or file system without idmapped mounts makes
// the start fail with a clear error: there is no chown'd copy fallback.
package idmap

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// holdArg is argv[0] of the child that keeps a user namespace alive while
// its descriptor is opened (a Go program cannot unshare CLONE_NEWUSER
// itself once it has threads).
const holdArg = "berth-userns-hold"

func init() {
	if len(os.Args) > 0 && os.Args[0] == holdArg {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
}

// Remap is the mapping of a supervisor's containers: container ids from 0
// onwards to the host ranges.
type Remap struct {
	User       string // as given to --userns-remap
	UIDs, GIDs []specs.LinuxIDMapping
	RootUID    uint32 // the host ids of the container's root
	RootGID    uint32

	usernsOnce sync.Once
	usernsFd   int
	usernsErr  error
}

// Parse reads --userns-remap=USER[:GROUP] ("default" is Docker's
// "dockremap") and the subordinate ranges of USER and GROUP (by name or
// number) in subuidFile and subgidFile.
func Parse(spec, subuidFile, subgidFile string) (*Remap, error) {
	userPart, groupPart, _ := strings.Cut(spec, ":")
	if userPart == "default" {
		userPart = "dockremap"
	}
	if groupPart == "" {
		groupPart = userPart
	}
	// an entry may name the user or give its number, as may the flag
	uids, err := ranges(subuidFile, userPart, func(n string) string {
		if u, err := user.Lookup(n); err == nil {
			return u.Uid
		}
		if u, err := user.LookupId(n); err == nil {
			return u.Username
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	gids, err := ranges(subgidFile, groupPart, func(n string) string {
		if g, err := user.LookupGroup(n); err == nil {
			return g.Gid
		}
		if g, err := user.LookupGroupId(n); err == nil {
			return g.Name
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	return &Remap{User: spec, UIDs: uids, GIDs: gids, RootUID: uids[0].HostID, RootGID: gids[0].HostID}, nil
}

// ranges reads "name:start:count" lines for name (or its number) into
// mappings that follow each other from container id 0.
func ranges(file, name string, number func(string) string) ([]specs.LinuxIDMapping, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("--userns-remap: %w", err)
	}
	defer f.Close()
	alt := number(name)
	var out []specs.LinuxIDMapping
	var next uint32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(p) != 3 || (p[0] != name && (alt == "" || p[0] != alt)) {
			continue
		}
		start, err1 := strconv.ParseUint(p[1], 10, 32)
		count, err2 := strconv.ParseUint(p[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			return nil, fmt.Errorf("--userns-remap: bad line %q in %s", sc.Text(), file)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: next, HostID: uint32(start), Size: uint32(count)})
		next += uint32(count)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--userns-remap: no subordinate ranges for %q in %s", name, file)
	}
	return out, sc.Err()
}

// PinNamespaces makes a user namespace with the mapping and a network
// namespace owned by it, and pins them by bind-mounting them on userPath
// and netPath (new files), for one container: its network can be set up
// before it starts, and it can still be root over that network.
func (r *Remap) PinNamespaces(userPath, netPath string) (err error) {
	h, err := r.hold(syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET)
	if err != nil {
		return err
	}
	defer h.release()
	for _, p := range []struct{ ns, path string }{{"user", userPath}, {"net", netPath}} {
		f, err := os.OpenFile(p.path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err != nil {
			Unpin(userPath)
			return err
		}
		f.Close()
		if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/%s", h.pid, p.ns), p.path, "none", unix.MS_BIND, ""); err != nil {
			os.Remove(p.path)
			Unpin(userPath)
			return fmt.Errorf("pinning the %s namespace of --userns-remap: %w", p.ns, err)
		}
	}
	return nil
}

// Unpin undoes a pin of PinNamespaces (the kernel frees the namespace once
// nothing uses it).
func Unpin(path string) {
	for i := 0; i < 3 && unix.Unmount(path, unix.MNT_DETACH) == nil; i++ {
	}
	_ = os.Remove(path)
}

// holder is a child that sits in new namespaces until released.
type holder struct {
	pid     int
	release func()
}

// hold starts a child in new namespaces (flags, CLONE_NEWUSER among them)
// with the mapping.
func (r *Remap) hold(flags uintptr) (*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{holdArg}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	sys := func(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		var out []syscall.SysProcIDMap
		for _, m := range ms {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
		}
		return out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, UidMappings: sys(r.UIDs), GidMappings: sys(r.GIDs),
		GidMappingsEnableSetgroups: true} // a container sets its groups
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("making the namespaces of --userns-remap: %w", err)
	}
	return &holder{pid: cmd.Process.Pid, release: func() { stdin.Close(); _ = cmd.Wait() }}, nil
}

// Userns returns a descriptor of a user namespace with the mapping (made
// once, kept for the life of the process).
func (r *Remap) Userns() (int, error) {
	r.usernsOnce.Do(func() { r.usernsFd, r.usernsErr = r.makeUserns() })
	return r.usernsFd, r.usernsErr
}

func (r *Remap) makeUserns() (int, error) {
	h, err := r.hold(syscall.CLONE_NEWUSER)
	if err != nil {
		return -1, err
	}
	defer h.release()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", h.pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("making the user namespace of --userns-remap: %w", err)
	}
	return fd, nil
}

// Clone returns a detached idmapped copy of the mount at dir, to be used
// by its /proc/self/fd path and closed once it is in use.
func (r *Remap) Clone(dir string) (int, error) {
	ns, err := r.Userns()
	if err != nil {
		return -1, err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("--userns-remap needs idmapped mounts (Linux 5.12 or later): open_tree %s: %w", dir, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("--userns-remap needs idmapped mounts, which the file system of %s does not support: %w", dir, err)
	}
	return fd, nil
}
