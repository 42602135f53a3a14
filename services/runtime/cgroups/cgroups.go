// Package cgroups places containers in cgroups and applies their resource
// limits. The hierarchy version is detected at run time: v1 (one hierarchy
// per controller, sub-package v1) or the unified v2 hierarchy (sub-package
// v2). The resolved directories are stored in the container state, so later
// commands (delete, pause, update) work on exactly what create made, no
// matter which cgroup they themselves run in.
package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	v1 "berth/services/runtime/cgroups/v1"
	v2 "berth/services/runtime/cgroups/v2"
)

// Manager is one container's cgroup (a set of directories for v1).
type Manager interface {
	// Apply creates the cgroup and moves pid into it.
	Apply(pid int) error
	// Set writes the resource limits.
	Set(r *specs.LinuxResources) error
	// Freeze freezes (true) or thaws the cgroup and waits for it.
	Freeze(frozen bool) error
	// Frozen reports whether the cgroup is frozen.
	Frozen() bool
	// Pids lists the processes in the cgroup.
	Pids() ([]int, error)
	// Destroy removes the cgroup directories.
	Destroy() error
	// Paths is what is saved in the state (controller -> directory).
	Paths() map[string]string
	// Entry tells how a new process can enter the (already created)
	// cgroup without the runtime writing its pid to cgroup.procs, which
	// waits for an RCU grace period (~10 ms on a busy host): ThreadFiles
	// are v1 "tasks" files into which the still single-threaded process
	// writes "0" itself (moving one thread takes no threadgroup lock), Dir
	// is a v2 directory for clone3(CLONE_INTO_CGROUP).
	Entry() (threadFiles []string, dir string)
}

// Root is where cgroup hierarchies are mounted.
const Root = "/sys/fs/cgroup"

// IsV2 reports whether the host uses the unified hierarchy only.
func IsV2() bool {
	var st unix.Statfs_t
	return unix.Statfs(Root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Resolve turns an OCI cgroupsPath into a path relative to each
// hierarchy's root: absolute paths are taken as they are; relative ones are
// placed under the runtime's own cgroup (as runc does); an empty one becomes
// berth/<id> under the runtime's own cgroup. The systemd form
// "slice:prefix:name" is mapped to a plain path (systemd is not used).
func Resolve(cgroupsPath, id, own string) string {
	p := cgroupsPath
	if strings.Count(p, ":") == 2 && !strings.HasPrefix(p, "/") {
		parts := strings.SplitN(p, ":", 3)
		p = filepath.Join(parts[0], parts[1]+"-"+parts[2]+".scope")
	}
	switch {
	case p == "":
		return filepath.Join("/", own, "berth", id)
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	default:
		return filepath.Join("/", own, p)
	}
}

// OwnCgroups reads /proc/self/cgroup: hierarchy controllers -> path.
func OwnCgroups() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// New resolves the cgroup for a new container.
func New(cgroupsPath, id string) (Manager, error) {
	own := OwnCgroups()
	if IsV2() {
		return v2.New(filepath.Join(Root, Resolve(cgroupsPath, id, own[""]))), nil
	}
	mounts, err := v1.Mounts()
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for key, mnt := range mounts {
		ownPath := own[key]
		if key == v1.Unified {
			ownPath = own[""]
		}
		paths[key] = filepath.Join(mnt, Resolve(cgroupsPath, id, ownPath))
	}
	return v1.New(paths), nil
}

// Prime starts the RCU grace period that the first write to a
// cgroup.procs file has to wait for (the kernel's cgroup_threadgroup_rwsem
// is a percpu rwsem; taking it for writing waits for a grace period unless
// a writer was active moments ago). Re-writing our own pid into our own
// cgroup is a no-op move that starts that wait in the background, while
// create spawns the init; the real move of the init then finds the rwsem
// "hot" and does not wait again. Errors are irrelevant and ignored.
func Prime() {
	own := OwnCgroups()
	var dir string
	if IsV2() {
		dir = filepath.Join(Root, own[""])
	} else {
		dir = filepath.Join(Root, "pids", own["pids"])
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// Load rebuilds a manager from saved paths.
func Load(paths map[string]string) Manager {
	if p, ok := paths[""]; ok && len(paths) == 1 {
		return v2.New(p)
	}
	return v1.New(paths)
}

// Describe is used in error messages.
func Describe(m Manager) string { return fmt.Sprint(m.Paths()) }
