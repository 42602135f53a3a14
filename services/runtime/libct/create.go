package libct

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/services/runtime/cgroups"
	"berth/services/runtime/hooks"
	"berth/services/runtime/namespaces"
)

// CreateOpts are the create command's options.
type CreateOpts struct {
	Root, ID, Bundle      string
	PidFile               string
	ConsoleSocket         string
	PreserveFds           int
	NoPivot, NoNewKeyring bool
	Debug                 bool
	Logf                  func(level, format string, args ...any)
}

func (o *CreateOpts) debugf(f string, a ...any) {
	if o.Logf != nil {
		o.Logf("debug", f, a...)
	}
}

// protectedExe returns a path to this binary that the container cannot
// write through (CVE-2019-5736): a detached, read-only bind mount of
// /proc/self/exe made with open_tree(OPEN_TREE_CLONE) + mount_setattr. It
// is reachable by no path in any mount namespace, and the init's
// /proc/PID/exe refers to a file on a read-only mount and opening it for writing fails with EROFS. It costs
// two syscalls (runc >= 1.2 does the same idea with a read-only overlay or
// a memfd copy). The init inherits the fd and is exec'd as /proc/self/fd/N. If the kernel lacks the new mount API, a sealed memfd copy
// is used instead.
func protectedExe() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV})
		if err == nil {
			return os.NewFile(uintptr(fd), "berth-runtime"), nil
		}
		unix.Close(fd)
	}
	// Fallback: sealed memfd copy.
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	mfd, err := unix.MemfdCreate("berth-runtime", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("protect runtime binary: %w", err)
	}
	dst := os.NewFile(uintptr(mfd), "berth-runtime")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, err
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(mfd), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return nil, err
	}
	return dst, nil
}

const cloneNewTime = 0x80

// firstExtraFd is the init's fd number of spawnOpts.extra[0]: after the
// stdio, the preserved fds, the sync socket and the runtime binary.
func firstExtraFd(preserve int) int { return 3 + preserve + 2 }

type spawnOpts struct {
	cgroupTasks []string // v1 tasks files the init writes itself into
	cgroupDir   string   // v2 directory for CLONE_INTO_CGROUP
	joins       []namespaces.Join
	cloneFlags  uintptr
	unshare     uintptr // created by the constructor after the joins (a joined user namespace)
	uidMaps     []syscall.SysProcIDMap
	gidMaps     []syscall.SysProcIDMap
	stdio       []*os.File
	preserve    int
	extra       []*os.File
	dir         string
	execInit    bool // an exec's init: C only (see encodeExecConfig)
}

type spawned struct {
	proc   *os.Process
	pid    int
	forked bool
	reaped bool
	ch     *channel
}

// spawn starts the init (protected copy of this binary) and reads the
// pid message of the nsenter constructor.
func spawn(o spawnOpts) (*spawned, error) {
	exeFile, err := protectedExe()
	if err != nil {
		return nil, err
	}
	defer exeFile.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	parent := os.NewFile(uintptr(fds[0]), "init-parent")
	child := os.NewFile(uintptr(fds[1]), "init-child")
	defer child.Close()
	files := append([]*os.File{}, o.stdio...)
	for i := 0; i < o.preserve; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "preserved"))
	}
	syncFd := len(files)
	files = append(files, child, exeFile)
	files = append(files, o.extra...)
	forks := o.unshare&unix.CLONE_NEWPID != 0
	for _, j := range o.joins {
		forks = forks || j.Type == specs.PIDNamespace
	}
	if forks {
		// The constructor forks; we adopt the grandchild.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	env := []string{"_BERTH_SYNCFD=" + strconv.Itoa(syncFd), "_BERTH_NSENTER=" + namespaces.Env(o.joins),
		"_BERTH_CGROUP_TASKS=" + strings.Join(o.cgroupTasks, ":"), "_BERTH_UNSHARE=" + strconv.Itoa(int(o.unshare))}
	if o.execInit {
		env = append(env, "_BERTH_EXEC=1")
	} else {
		// The Go init is short-lived and single-minded: one P, no GC.
		// (Its environment is replaced by the container's at exec.)
		env = append(env, "GOMAXPROCS=1", "GOGC=off")
	}
	attr := &os.ProcAttr{
		Dir:   o.dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Cloneflags:                 o.cloneFlags,
			UidMappings:                o.uidMaps,
			GidMappings:                o.gidMaps,
			GidMappingsEnableSetgroups: true,
		},
	}
	if o.cgroupDir != "" {
		fd, err := unix.Open(o.cgroupDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			parent.Close()
			return nil, err
		}
		defer unix.Close(fd)
		attr.Sys.UseCgroupFD, attr.Sys.CgroupFD = true, fd
	}
	if o.cloneFlags&unix.CLONE_NEWUSER != 0 {
		// Become root of the new user namespace before exec, or the
		// init starts as the overflow uid without capabilities.
		attr.Sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	// Exec through the fd the child inherits: a child in a new user
	// namespace may not look into our /proc/PID/fd.
	exe := fmt.Sprintf("/proc/self/fd/%d", syncFd+1)
	proc, err := os.StartProcess(exe, []string{"berth-runtime", "init"}, attr)
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start init: %w", err)
	}
	child.Close()
	return &spawned{proc: proc, pid: proc.Pid, ch: newChannel(parent)}, nil
}

// waitPid reads the nsenter constructor's pid message: the init's pid as
// we see it (the grandchild's, if the constructor had to fork).
func (s *spawned) waitPid() error {
	m, err := s.ch.recv()
	if err != nil || m.Type != msgPid {
		s.proc.Kill()
		s.proc.Wait()
		s.reaped = true
		if err == nil && m.Type == msgError {
			return errors.New(m.Msg)
		}
		return fmt.Errorf("init failed to start: %v", err)
	}
	if m.Forked {
		s.pid, s.forked = m.Pid, true
		s.proc.Wait() // the intermediate exits right away
	}
	return nil
}

// kill stops a half-made init and reaps it.
func (s *spawned) kill() {
	if s.reaped {
		return
	}
	s.reaped = true
	_ = unix.Kill(s.pid, unix.SIGKILL)
	if s.forked {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(s.pid, &ws, 0, nil)
	} else {
		_, _ = s.proc.Wait()
	}
}

func idMaps(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// Create creates the container and returns once its init waits on the
// exec fifo. On any error nothing is left behind.
func Create(o CreateOpts) (st *State, err error) {
	if err := ValidateID(o.ID); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, err
	}
	bc, err := LoadSpec(bundle)
	if err != nil {
		return nil, err
	}
	spec := bc.Spec
	if spec.Process.Terminal && o.ConsoleSocket == "" {
		return nil, errors.New("cannot allocate a tty without --console-socket")
	}
	if !spec.Process.Terminal && o.ConsoleSocket != "" {
		return nil, errors.New("--console-socket given but process.terminal is false")
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Root, 0o711); err != nil {
		return nil, err
	}
	dir := filepath.Join(o.Root, o.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container with id exists: %s", o.ID)
		}
		return nil, err
	}
	var (
		cg cgroups.Manager
		sp *spawned
	)
	defer func() {
		if err == nil {
			return
		}
		if sp != nil {
			sp.kill()
		}
		if cg != nil {
			_ = cg.Destroy()
		}
		_ = os.RemoveAll(dir)
	}()

	o.debugf("state dir made")
	fifo := filepath.Join(dir, fifoName)
	// 0622 as runc: the init opens it after switching to the container's user.
	if err := unix.Mkfifo(fifo, 0o622); err != nil {
		return nil, fmt.Errorf("exec fifo: %w", err)
	}
	if err := os.Chmod(fifo, 0o622); err != nil {
		return nil, err
	}
	if uid, gid := rootIDs(spec); uid != 0 || gid != 0 {
		// The init runs as the user namespace's root.
		if err := os.Chown(fifo, uid, gid); err != nil {
			return nil, err
		}
	}
	fifoFd, err := unix.Open(fifo, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fifoFile := os.NewFile(uintptr(fifoFd), "exec.fifo")
	defer fifoFile.Close()

	plan := namespaces.PlanFor(spec.Linux.Namespaces)
	// A new cgroup namespace is rooted at the cgroup its creator is in at
	// that moment, so the init unshares it itself once it has been moved
	// into the container's cgroup (as runc does).
	newCgroupNS := plan.CloneFlags&unix.CLONE_NEWCGROUP != 0
	plan.CloneFlags &^= unix.CLONE_NEWCGROUP
	// clone(2) cannot take CLONE_NEWTIME (its bit is the exit signal's);
	// the init unshares it, and its exec moves it in.
	newTimeNS := plan.CloneFlags&cloneNewTime != 0
	plan.CloneFlags &^= cloneNewTime
	so := spawnOpts{
		joins:      plan.Join,
		cloneFlags: plan.CloneFlags,
		stdio:      stdio(),
		preserve:   o.PreserveFds,
		dir:        bundle,
	}
	if len(plan.Join) > 0 && plan.Join[0].Type == specs.UserNamespace {
		// new namespaces must belong to the joined user namespace
		so.cloneFlags, so.unshare = 0, plan.CloneFlags
	}
	if plan.CloneFlags&unix.CLONE_NEWUSER != 0 {
		so.uidMaps, so.gidMaps = idMaps(spec.Linux.UIDMappings), idMaps(spec.Linux.GIDMappings)
	}
	cfg := &initConfig{
		ID: o.ID, Spec: bc.Raw, Rootfs: rootfs,
		NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, PreserveFds: o.PreserveFds,
		CgroupV2: cgroups.IsV2(), ConsoleFd: -1, Debug: o.Debug,
		UserNS:   namespaces.Has(spec.Linux.Namespaces, specs.UserNamespace),
		CgroupNS: newCgroupNS,
		TimeNS:   newTimeNS,
		Seccomp:  bc.Filter,
	}
	cfg.FifoFd = firstExtraFd(o.PreserveFds)
	so.extra = []*os.File{fifoFile}
	if spec.Process.Terminal {
		cf, err := dialConsole(o.ConsoleSocket)
		if err != nil {
			return nil, err
		}
		defer cf.Close()
		cfg.ConsoleFd = cfg.FifoFd + 1
		so.extra = append(so.extra, cf)
	}
	cg, err = cgroups.New(spec.Linux.CgroupsPath, o.ID)
	if err != nil {
		return nil, err
	}
	if err := cg.Apply(-1); err != nil {
		return nil, err
	}
	cfg.CgroupPaths = cg.Paths()
	o.debugf("cgroup dirs made")
	// The init enters its cgroups itself (see cgroups.Manager.Entry),
	// unless it starts in a new user namespace, whose root may not write
	// the host's cgroup files: then we move it, the slow way.
	tasks, v2dir := cg.Entry()
	parentAttach := plan.CloneFlags&unix.CLONE_NEWUSER != 0
	if !parentAttach {
		so.cgroupTasks = tasks
	}
	so.cgroupDir = v2dir
	if parentAttach {
		go cgroups.Prime()
	}
	sp, err = spawn(so)
	if err != nil && so.cgroupDir != "" {
		// No CLONE_INTO_CGROUP here (old kernel, or an unsuitable cgroup).
		so.cgroupDir, parentAttach = "", true
		sp, err = spawn(so)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sp.kill() // before closing its channel, so it dies quietly
		}
		sp.ch.f.Close()
	}()
	o.debugf("init started")
	// The limits are written while the init starts up.
	if err := cg.Set(spec.Linux.Resources); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	o.debugf("cgroups made")
	if err := sp.waitPid(); err != nil {
		return nil, err
	}
	o.debugf("init spawned")
	if parentAttach {
		if err := cg.Apply(sp.pid); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	o.debugf("init in cgroups")
	startTime, _, err := procStat(sp.pid)
	if err != nil {
		return nil, fmt.Errorf("init exited early: %w", err)
	}
	st = &State{
		ID: o.ID, Bundle: bundle, Rootfs: rootfs, Pid: sp.pid, StartTime: startTime,
		Created: time.Now().UTC(), Cgroups: cg.Paths(), Config: bc.Raw, dir: dir,
	}
	cfg.State = st.ociJSON(Creating)
	if err := sp.ch.sendConfig(cfg); err != nil {
		return nil, fmt.Errorf("send config to init: %w", err)
	}
	for done := false; !done; {
		m, err := sp.ch.recv()
		if err != nil {
			return nil, fmt.Errorf("container init exited unexpectedly")
		}
		switch m.Type {
		case msgHooks:
			h := spec.Hooks
			state := st.ociJSON(Creating)
			//lint:ignore SA1019 prestart hooks are deprecated but still in the spec, and runc runs them
			if err := hooks.Run("prestart", h.Prestart, state); err != nil {
				return nil, err
			}
			if err := hooks.Run("createRuntime", h.CreateRuntime, state); err != nil {
				return nil, err
			}
			if err := sp.ch.send(message{Type: msgHooksDone}); err != nil {
				return nil, err
			}
		case msgDebug:
			o.debugf("%s", m.Msg)
		case msgReady:
			done = true
		case msgError:
			return nil, errors.New(startFailed + m.Msg)
		default:
			return nil, fmt.Errorf("unexpected message %q from init", m.Type)
		}
	}
	o.debugf("init ready")
	if cfg.Seccomp != nil {
		b, _ := cfg.Seccomp.MarshalBinary()
		if err := os.WriteFile(filepath.Join(dir, filterFile), b, 0o600); err != nil {
			return nil, err
		}
	} else {
		st.NoSeccomp = true
	}
	if h := spec.Hooks; h != nil && len(h.Poststart) > 0 {
		if err := os.WriteFile(filepath.Join(dir, poststartMarker), nil, 0o600); err != nil {
			return nil, err
		}
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, sp.pid); err != nil {
			return nil, err
		}
	}
	if !sp.forked {
		_ = sp.proc.Release()
	}
	return st, nil
}

// stdio is what the container's process inherits: our own fds 0-2 (pass
// through, as runc), with /dev/null standing in for a closed one.
func stdio() []*os.File {
	out := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	for i := range out {
		if _, err := unix.FcntlInt(uintptr(i), unix.F_GETFD, 0); err != nil {
			if f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
				out[i] = f
			}
		}
	}
	return out
}

// rootIDs is the host uid and gid of the container's root.
func rootIDs(spec *specs.Spec) (int, int) {
	if !namespaces.Has(spec.Linux.Namespaces, specs.UserNamespace) {
		return 0, 0
	}
	host := func(ms []specs.LinuxIDMapping) int {
		for _, m := range ms {
			if m.ContainerID == 0 {
				return int(m.HostID)
			}
		}
		return 0
	}
	return host(spec.Linux.UIDMappings), host(spec.Linux.GIDMappings)
}

func writePidFile(path string, pid int) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
