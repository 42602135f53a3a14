package libct

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/services/runtime/cgroups"
	"berth/services/runtime/hooks"
	"berth/services/runtime/namespaces"
)

// Warnf receives non-fatal problems (poststart/poststop hook failures).
var Warnf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// Start releases a created container's init.
func Start(root, id string) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	switch s := st.Status(); s {
	case Created:
	case Stopped:
		return errors.New("cannot start a container that has stopped")
	case Running:
		return errors.New("cannot start an already running container")
	default:
		return fmt.Errorf("cannot start a container in the %s state", s)
	}
	fifo := filepath.Join(st.dir, fifoName)
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(fd, buf)
		if n == 1 {
			break
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			return fmt.Errorf("read exec fifo: %w", err)
		}
		if !st.alive() {
			return errors.New("container init exited before start")
		}
		_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
	}
	if err := os.Remove(fifo); err != nil {
		return err
	}
	if h := st.part().Hooks; h != nil && len(h.Poststart) > 0 {
		if err := hooks.Run("poststart", h.Poststart, st.ociJSON(Running)); err != nil {
			Warnf("%v", err)
		}
	}
	return nil
}

// Kill sends sig to the init, or to every process of the container.
func Kill(root, id string, sig unix.Signal, all bool) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	status := st.Status()
	if status == Stopped && !all {
		return errors.New("container not running")
	}
	if all {
		return st.signalAll(sig)
	}
	return unix.Kill(st.Pid, sig)
}

func (s *State) signalAll(sig unix.Signal) error {
	if len(s.Cgroups) == 0 {
		if s.alive() {
			return unix.Kill(s.Pid, sig)
		}
		return nil
	}
	cg := cgroups.Load(s.Cgroups)
	frozen := cg.Frozen()
	pids, err := cg.Pids()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, p := range pids {
		_ = unix.Kill(p, sig)
	}
	if frozen && sig == unix.SIGKILL {
		// Frozen tasks act on SIGKILL once thawed.
		_ = cg.Freeze(false)
	}
	return nil
}

// Delete removes a container; a running one only with force.
func Delete(root, id string, force bool) error {
	st, err := Load(root, id)
	if err != nil {
		if force && ValidateID(id) == nil {
			// A half-created leftover: remove what is there.
			if _, serr := os.Stat(filepath.Join(root, id)); serr == nil {
				return os.RemoveAll(filepath.Join(root, id))
			}
			return nil
		}
		return err
	}
	switch s := st.Status(); s {
	case Stopped:
	case Created:
		_ = unix.Kill(st.Pid, unix.SIGKILL)
		_ = waitGone(st.Pid, st.StartTime, 10*time.Second)
	default:
		if !force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, s)
		}
		_ = st.signalAll(unix.SIGKILL)
		_ = unix.Kill(st.Pid, unix.SIGKILL)
		if err := waitGone(st.Pid, st.StartTime, 10*time.Second); err != nil {
			return err
		}
	}
	return st.destroy()
}

func (s *State) destroy() error {
	var errs []error
	if len(s.Cgroups) > 0 {
		cg := cgroups.Load(s.Cgroups)
		// Leftovers in a shared pid namespace die with the container.
		if pids, _ := cg.Pids(); len(pids) > 0 {
			_ = s.signalAll(unix.SIGKILL)
		}
		if err := cg.Destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if h := s.part().Hooks; h != nil && len(h.Poststop) > 0 {
		if err := hooks.Run("poststop", h.Poststop, s.ociJSON(Stopped)); err != nil {
			Warnf("%v", err)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Pause freezes the container.
func Pause(root, id string) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if s := st.Status(); s != Running && s != Created {
		return errors.New("container not running")
	}
	return cgroups.Load(st.Cgroups).Freeze(true)
}

// Resume thaws the container.
func Resume(root, id string) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if st.Status() != Paused {
		return errors.New("container not paused")
	}
	return cgroups.Load(st.Cgroups).Freeze(false)
}

// Pids lists the container's processes.
func Pids(root, id string) ([]int, error) {
	st, err := Load(root, id)
	if err != nil {
		return nil, err
	}
	if len(st.Cgroups) == 0 {
		return []int{st.Pid}, nil
	}
	pids, err := cgroups.Load(st.Cgroups).Pids()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return pids, err
}

// Update applies new resource limits.
func Update(root, id string, r *specs.LinuxResources) error {
	st, err := Load(root, id)
	if err != nil {
		return err
	}
	if st.Status() == Stopped {
		return errors.New("container not running")
	}
	if err := cgroups.Load(st.Cgroups).Set(r); err != nil {
		return err
	}
	spec, err := st.Spec()
	if err != nil {
		return err
	}
	if spec.Linux.Resources != nil {
		return nil
	}
	spec.Linux.Resources = r
	if st.Config, err = json.Marshal(spec); err != nil {
		return err
	}
	return st.save()
}

// ExecOpts are the exec command's options.
type ExecOpts struct {
	Root, ID      string
	Process       *specs.Process
	ConsoleSocket string
	PidFile       string
	PreserveFds   int
	Detach        bool
}

// Exec runs a new process in the container. Without Detach it waits and
// returns the exit code.
func Exec(o ExecOpts) (int, error) {
	st, err := Load(o.Root, o.ID)
	if err != nil {
		return 1, err
	}
	switch st.Status() {
	case Stopped:
		return 1, errors.New("cannot exec in a stopped container")
	case Paused:
		return 1, errors.New("cannot exec in a paused container")
	}
	p := o.Process
	if err := validateProcess(p); err != nil {
		return 1, err
	}
	if p.Terminal && o.ConsoleSocket == "" {
		return 1, errors.New("cannot allocate a tty without --console-socket")
	}
	if !o.Detach {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	so := spawnOpts{
		joins:    namespaces.ForExec(st.Pid),
		stdio:    stdio(),
		preserve: o.PreserveFds,
		dir:      "/",
		execInit: true,
	}
	consoleFd := -1
	if p.Terminal {
		f, err := dialConsole(o.ConsoleSocket)
		if err != nil {
			return 1, err
		}
		defer f.Close()
		consoleFd = firstExtraFd(o.PreserveFds)
		so.extra = []*os.File{f}
	}
	parentAttach := false
	if len(st.Cgroups) > 0 {
		so.cgroupTasks, so.cgroupDir = cgroups.Load(st.Cgroups).Entry()
	}
	sp, err := spawn(so)
	if err != nil && so.cgroupDir != "" {
		so.cgroupDir, parentAttach = "", true
		sp, err = spawn(so)
	}
	if err != nil {
		return 1, err
	}
	defer sp.ch.f.Close()
	fail := func(err error) (int, error) {
		sp.kill()
		return 1, err
	}
	// While the init starts: its config (it needs nothing of the spec but
	// the seccomp filter create compiled), sent at once unless we must move
	// it into the cgroups first.
	filter, err := st.filter()
	if err != nil {
		return fail(err)
	}
	cfg, err := encodeExecConfig(p, consoleFd, o.PreserveFds, filter)
	if err != nil {
		return fail(err)
	}
	if !parentAttach {
		if _, err := sp.ch.f.Write(cfg); err != nil {
			return fail(err)
		}
	}
	if err := sp.waitPid(); err != nil {
		return 1, err
	}
	if parentAttach {
		if err := cgroups.Load(st.Cgroups).Apply(sp.pid); err != nil {
			return fail(fmt.Errorf("join cgroup: %w", err))
		}
		if _, err := sp.ch.f.Write(cfg); err != nil {
			return fail(err)
		}
	}
	m, err := sp.ch.recv()
	if err == nil {
		if m.Type == msgError {
			return fail(errors.New(startFailed + m.Msg))
		}
		return fail(fmt.Errorf("unexpected message %q from init", m.Type))
	}
	// EOF: the process exec'd.
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, sp.pid); err != nil {
			return 1, err
		}
	}
	if o.Detach {
		if !sp.forked {
			_ = sp.proc.Release()
		}
		return 0, nil
	}
	return WaitForward(sp.pid), nil
}

func dialConsole(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "console-socket"), nil
}
