package libct

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/services/runtime/hooks"
	"berth/services/runtime/process"
	"berth/services/runtime/rootfs"
	"berth/services/runtime/seccomp"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// Credentials, capabilities, no_new_privs and seccomp are per
		// thread: keep main on the initial thread and exec from it.
		runtime.LockOSThread()
	}
}

// Init is the container-side init of create (`berth-runtime init`, started
// through the protected binary; an exec's init never gets here, see
// nsenter/execinit.c). It never returns.
func Init() {
	// Nobody in the container may ptrace us or open our /proc files.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	fd, err := strconv.Atoi(os.Getenv("_BERTH_SYNCFD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-runtime init: not started by berth-runtime")
		os.Exit(1)
	}
	os.Unsetenv("_BERTH_SYNCFD")
	os.Unsetenv("_BERTH_NSENTER")
	ch := newChannel(os.NewFile(uintptr(fd), "sync"))
	c, err := ch.recvConfig()
	if err != nil {
		os.Exit(1)
	}
	ierr := initCreate(ch, c)
	// Only reached on failure.
	if ch.send(message{Type: msgError, Msg: ierr.Error()}) != nil {
		fmt.Fprintln(os.Stderr, "berth-runtime init:", ierr)
	}
	os.Exit(1)
}

var initStart = time.Now()

// debug reports the init's progress to the runtime's --debug log.
func debug(ch *channel, c *initConfig, what string) {
	if c.Debug {
		_ = ch.send(message{Type: msgDebug, Msg: fmt.Sprintf("init +%.2fms %s", float64(time.Since(initStart).Microseconds())/1000, what)})
	}
}

func initCreate(ch *channel, c *initConfig) error {
	spec, err := decodeInitSpec(c.Spec)
	if err != nil {
		return err
	}
	debug(ch, c, "config received")
	rc := &rootfs.Config{
		Rootfs: c.Rootfs, Spec: spec, NoPivot: c.NoPivot, UserNS: c.UserNS,
		CgroupNS: c.CgroupNS, CgroupPaths: c.CgroupPaths, CgroupV2: c.CgroupV2,
		Debugf: func(f string, a ...any) { debug(ch, c, fmt.Sprintf(f, a...)) },
	}
	if c.CgroupNS {
		// We are in the container's cgroups now (see Create).
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	if c.TimeNS {
		if err := unix.Unshare(cloneNewTime); err != nil {
			return fmt.Errorf("unshare time namespace: %w", err)
		}
		if err := writeTimeOffsets(spec.Linux.TimeOffsets); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	if err := rootfs.Prepare(rc); err != nil {
		return err
	}
	debug(ch, c, "mounts done")
	h := spec.Hooks
	//lint:ignore SA1019 prestart hooks are deprecated but still in the spec, and runc runs them
	if h != nil && (len(h.Prestart) > 0 || len(h.CreateRuntime) > 0) {
		if err := ch.send(message{Type: msgHooks}); err != nil {
			return err
		}
		m, err := ch.recv()
		if err != nil {
			// The runtime gave up (it reports the reason itself).
			os.Exit(1)
		}
		if m.Type != msgHooksDone {
			return errors.New("hooks failed")
		}
	}
	if h != nil && len(h.CreateContainer) > 0 {
		if err := hooks.Run("createContainer", h.CreateContainer, c.State); err != nil {
			return err
		}
	}
	if err := rootfs.Pivot(rc); err != nil {
		return err
	}
	debug(ch, c, "pivoted")
	if c.ConsoleFd >= 0 {
		if err := setupConsole(c.ConsoleFd, spec.Process); err != nil {
			return err
		}
	}
	if err := rootfs.Finalize(rc); err != nil {
		return err
	}
	debug(ch, c, "rootfs finalized")
	if !c.NoNewKeyring {
		_, _ = unix.KeyctlJoinSessionKeyring("_ses." + c.ID)
	}
	if err := prepareProcess(spec.Process); err != nil {
		return err
	}
	l, err := newLaunch(spec.Process, c.Seccomp)
	if err != nil {
		return err
	}
	if !l.seccompNeedsAdmin() {
		// Drop privileges now, so that after `start` only the exec is left.
		if err := l.drop(); err != nil {
			return err
		}
	}
	debug(ch, c, "privileges dropped")
	fifo := "/proc/self/fd/" + strconv.Itoa(c.FifoFd)
	if err := unix.Access(fifo, unix.W_OK); err != nil {
		return fmt.Errorf("exec fifo: %w", err)
	}
	if err := ch.send(message{Type: msgReady}); err != nil {
		return err
	}
	// Park until `start` opens the fifo for reading.
	ff, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	if _, err := ff.Write([]byte("0")); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	ff.Close()
	ch.f.Close()
	if h != nil && len(h.StartContainer) > 0 {
		state := strings.Replace(string(c.State), `"status":"creating"`, `"status":"running"`, 1)
		if err := hooks.Run("startContainer", h.StartContainer, []byte(state)); err != nil {
			fmt.Fprintln(os.Stderr, "berth-runtime init:", err)
			os.Exit(1)
		}
	}
	if !l.dropped {
		err = l.drop()
	}
	if err == nil {
		err = l.exec(c.PreserveFds)
	}
	fmt.Fprintln(os.Stderr, "berth-runtime init:", err)
	os.Exit(127)
	return nil
}

// decodeInitSpec decodes the spec but for what the runtime has done for the
// init (the cgroup limits, the seccomp filter it sent compiled): in a cold
// process, decoding costs by the types met, and those two are most of a
// Docker container's spec.
func decodeInitSpec(b []byte) (*specs.Spec, error) {
	var s struct {
		specs.Spec
		Linux *struct {
			specs.Linux
			Resources json.RawMessage `json:"resources"`
			Seccomp   json.RawMessage `json:"seccomp"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Process == nil || s.Linux == nil {
		return nil, fmt.Errorf("init: bad spec: %v", err)
	}
	s.Spec.Linux = &s.Linux.Linux
	return &s.Spec, nil
}

// setupConsole opens a pty in the container, binds it to /dev/console,
// hands the master to the console socket and makes the slave our stdio and
// controlling tty.
func setupConsole(sockFd int, p *specs.Process) error {
	master, slave, err := process.OpenPty("/dev/ptmx")
	if err != nil {
		return err
	}
	defer master.Close()
	if err := rootfs.BindConsole(slave); err != nil {
		return fmt.Errorf("bind /dev/console: %w", err)
	}
	if err := process.SendFd(sockFd, master.Name(), master); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	unix.Close(sockFd)
	var size *struct{ Height, Width uint }
	if p.ConsoleSize != nil {
		size = &struct{ Height, Width uint }{p.ConsoleSize.Height, p.ConsoleSize.Width}
	}
	return process.SetCtty(slave, size)
}

// prepareProcess does the steps that may still fail before the container
// counts as created (or before exec returns success).
func prepareProcess(p *specs.Process) error {
	if err := process.CheckAppArmor(p.ApparmorProfile); err != nil {
		return err
	}
	if p.OOMScoreAdj != nil {
		if err := process.SetOOMScoreAdj(*p.OOMScoreAdj); err != nil {
			return fmt.Errorf("oom_score_adj: %w", err)
		}
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", p.Cwd, err)
	}
	if _, err := process.LookPath(p.Args[0], p.Env); err != nil {
		return err
	}
	return nil
}

// launch is the last stage of the init: privileges dropped, then exec.
type launch struct {
	p       *specs.Process
	sc      *seccomp.Filter
	path    string
	env     []string
	caps    process.Caps
	dropped bool
}

func newLaunch(p *specs.Process, sc *seccomp.Filter) (*launch, error) {
	path, err := process.LookPath(p.Args[0], p.Env)
	if err != nil {
		return nil, err
	}
	l := &launch{p: p, sc: sc, path: path, env: p.Env}
	if !hasEnv(l.env, "HOME") {
		l.env = append(l.env, "HOME="+homeDir(p.User.UID))
	}
	if pc := p.Capabilities; pc != nil {
		l.caps.Bounding, _ = process.ParseCaps(pc.Bounding)
		l.caps.Effective, _ = process.ParseCaps(pc.Effective)
		l.caps.Inheritable, _ = process.ParseCaps(pc.Inheritable)
		l.caps.Permitted, _ = process.ParseCaps(pc.Permitted)
		l.caps.Ambient, _ = process.ParseCaps(pc.Ambient)
	}
	return l, nil
}

// seccompNeedsAdmin: without no_new_privs the filter can only be loaded
// while we still hold CAP_SYS_ADMIN, i.e. before dropping privileges.
func (l *launch) seccompNeedsAdmin() bool { return l.sc != nil && !l.p.NoNewPrivileges }

// drop applies rlimits, AppArmor, the user, capabilities and no_new_privs
// (and the seccomp filter when it needs CAP_SYS_ADMIN).
func (l *launch) drop() error {
	p := l.p
	if err := process.SetRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := process.ApplyAppArmor(p.ApparmorProfile); err != nil {
		return err
	}
	if l.seccompNeedsAdmin() {
		if err := l.sc.Load(); err != nil {
			return err
		}
	}
	if err := l.caps.DropBounding(); err != nil {
		return err
	}
	if err := process.SetUser(p.User); err != nil {
		return err
	}
	if err := l.caps.Apply(); err != nil {
		return err
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", p.Cwd, err)
	}
	l.dropped = true
	return nil
}

// exec loads a no_new_privs seccomp filter (as late as possible) and
// execs the user's program. It only returns on failure.
func (l *launch) exec(preserve int) error {
	if l.sc != nil && l.p.NoNewPrivileges {
		if err := l.sc.Load(); err != nil {
			return err
		}
	}
	// Nothing of ours may leak into the container.
	_ = unix.CloseRange(uint(3+preserve), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	return fmt.Errorf("exec %s: %w", l.p.Args[0], unix.Exec(l.path, l.p.Args, l.env))
}

func writeTimeOffsets(offs map[string]specs.LinuxTimeOffset) error {
	var b strings.Builder
	for clock, o := range offs {
		switch clock {
		case "monotonic", "boottime":
		default:
			return fmt.Errorf("time offset for unknown clock %q", clock)
		}
		fmt.Fprintf(&b, "%s %d %d\n", clock, o.Secs, o.Nanosecs)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := os.WriteFile("/proc/self/timens_offsets", []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("time offsets: %w", err)
	}
	return nil
}

func hasEnv(env []string, k string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, k+"=") {
			return true
		}
	}
	return false
}

func homeDir(uid uint32) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) >= 6 && parts[2] == strconv.Itoa(int(uid)) {
			return parts[5]
		}
	}
	return "/"
}
