// Package stack starts a real berth stack (supervisor with its embedded NATS,
// apigw, shims, berth-runtime) on temporary roots for end-to-end tests and
// benchmarks, and drives it with the real docker CLI.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/services/supervisor/network"
)

// Services are the binaries a stack needs.
var Services = []string{"apigw", "supervisor", "shim", "runtime", "init"}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// ModuleRoot finds the directory holding go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

// Binaries builds the four binaries once per test process and returns their
// directory. BERTH_BIN points at prebuilt ones instead.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		if d := os.Getenv("BERTH_BIN"); d != "" {
			buildDir = d
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "berth-bin-")
		if buildErr != nil {
			return
		}
		// the Makefile's build, with its flags (a stripped static shim:
		// what runs, and what the benchmarks measure)
		targets := []string{"-s", "BIN=" + buildDir}
		for _, s := range Services {
			targets = append(targets, filepath.Join(buildDir, "berth-"+s))
		}
		cmd := exec.Command("make", targets...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make %s: %v\n%s", strings.Join(targets, " "), err, out)
		}
	})
	return buildDir, buildErr
}

// Stack is one running berth.
type Stack struct {
	Bin      string
	Root     string // --root
	ExecRoot string // --exec-root
	Host     string // DOCKER_HOST
	NATSAddr string // host:port of the embedded NATS
	Node     string

	SupervisorMetrics string // host:port of the supervisor's /metrics
	APIGWMetrics      string // host:port of apigw's /metrics
	// SupervisorArgs are extra flags of the supervisor (set them in
	// StartWith's prepare), e.g. --userns-remap.
	SupervisorArgs []string

	// Net is the stack's own bridge, subnets and iptables chains.
	Net *NetSlot
	// NATS is the external bus of a stack started by StartExternal (nil:
	// the supervisor's embedded one, at NATSAddr).
	NATS *ExternalNATS

	t   testing.TB
	sup *exec.Cmd
	gw  *exec.Cmd
}

// RequireRoot skips t unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts namespaces, cgroups and overlay mounts")
	}
}

// FreeAddr returns a loopback address with a free TCP port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start starts a stack and stops it when t ends.
func Start(t testing.TB) *Stack {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is Start with prepare run before the daemons start (to mount a
// small file system on s.Root, say); mounts under the stack's directory are
// undone when t ends. BERTH_TEST_EXTERNAL_BUS=1 puts every stack on an
// external bus, as StartExternal does (to run a whole suite that way).
func StartWith(t testing.TB, prepare func(s *Stack)) *Stack {
	t.Helper()
	return start(t, prepare, os.Getenv("BERTH_TEST_EXTERNAL_BUS") != "")
}

// StartExternal is Start with the bus on an external nats-server configured
// from deploy/nats.conf (s.NATS) rather than the supervisor's embedded one.
func StartExternal(t testing.TB) *Stack {
	t.Helper()
	return start(t, nil, true)
}

func start(t testing.TB, prepare func(s *Stack), external bool) *Stack {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("needs the docker CLI")
	}
	bin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{
		Bin: bin, Root: filepath.Join(base, "lib"), ExecRoot: filepath.Join(base, "run"),
		NATSAddr: natsAddr, Node: "n" + strings.ReplaceAll(filepath.Base(base), ".", ""), t: t,
	}
	s.Host = "unix://" + filepath.Join(s.ExecRoot, "berth.sock")
	if s.Net, err = TakeNetSlot(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if s.NATS != nil {
			s.NATS.Stop(syscall.SIGTERM)
		}
		s.CleanupNetwork()
		s.Net.Release()
		os.RemoveAll(base)
	})
	if external {
		s.NATS = NewExternalNATS(t, filepath.Join(base, "nats"), filepath.Join(bin, "berth-supervisor"))
		s.NATSAddr = s.NATS.Addr
	}
	if prepare != nil {
		prepare(s)
	}
	s.StartSupervisor()
	s.StartAPIGW()
	return s
}

func (s *Stack) logFile(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(filepath.Dir(s.Root), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	return f
}

// StartSupervisor starts (or restarts) the supervisor and waits for its bus.
func (s *Stack) StartSupervisor() {
	s.t.Helper()
	s.SupervisorMetrics, _ = FreeAddr()
	args := []string{"--root", s.Root, "--exec-root", s.ExecRoot, "--node", s.Node,
		"--metrics-addr", s.SupervisorMetrics,
		"--bridge", s.Net.Bridge, "--bip", s.Net.BIP, "--default-address-pool", "base=" + s.Net.Pool + ",size=24",
		"--iptables-chain-prefix", s.Net.ChainPrefix}
	if s.NATS != nil {
		args = append(args, "--nats-url", "nats://"+s.NATSAddr, "--nats-credentials", s.Credentials("supervisor"), "--nats-callout-key", s.NATS.CalloutKey())
	} else {
		args = append(args, "--nats-listen", s.NATSAddr)
	}
	cmd := exec.Command(filepath.Join(s.Bin, "berth-supervisor"), append(args, s.SupervisorArgs...)...)
	cmd.Stdout, cmd.Stderr = s.logFile("supervisor"), s.logFile("supervisor")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // a crashed test leaves no daemon
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.sup = cmd
	// The supervisor opens its metrics listener once it has restored its
	// containers and answers on the bus (NATS itself is up earlier).
	s.waitFor("the supervisor", func() bool {
		c, err := net.DialTimeout("tcp", s.SupervisorMetrics, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// StartAPIGW starts (or restarts) apigw and waits until the API answers.
func (s *Stack) StartAPIGW() {
	s.t.Helper()
	s.APIGWMetrics, _ = FreeAddr()
	cmd := exec.Command(filepath.Join(s.Bin, "berth-apigw"),
		"--host", s.Host, "--nats-url", "nats://"+s.NATSAddr, "--node", s.Node, "--metrics-addr", s.APIGWMetrics,
		"--nats-credentials", s.Credentials("apigw"))
	cmd.Stdout, cmd.Stderr = s.logFile("apigw"), s.logFile("apigw")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.gw = cmd
	s.waitFor("API", func() bool { _, _, code := s.Docker("version"); return code == 0 })
	if s.sup != nil {
		// the API answers version before apigw is on the bus
		s.waitFor("apigw on the bus", func() bool { _, _, code := s.Docker("ps", "-q"); return code == 0 })
	}
}

// Credentials is the path of the bus credentials file of user ("apigw",
// "supervisor"): generated by the supervisor under the stack's root, or
// the deployer's of an external bus.
func (s *Stack) Credentials(user string) string {
	if s.NATS != nil {
		return s.NATS.Credentials(user)
	}
	return filepath.Join(s.Root, "auth", user+".json")
}

func (s *Stack) waitFor(what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s did not come up in 30s; logs in %s", what, filepath.Dir(s.Root))
}

// KillSupervisor kills the supervisor with sig and reaps it.
func (s *Stack) KillSupervisor(sig syscall.Signal) {
	if s.sup != nil && s.sup.Process != nil {
		s.sup.Process.Signal(sig)
		s.sup.Wait()
		s.sup = nil
	}
}

// KillAPIGW kills apigw with sig and reaps it.
func (s *Stack) KillAPIGW(sig syscall.Signal) {
	if s.gw != nil && s.gw.Process != nil {
		s.gw.Process.Signal(sig)
		s.gw.Wait()
		s.gw = nil
	}
}

// Bind returns a view of the stack whose failures are reported to t: tests
// share one stack but each fails on its own.
func (s *Stack) Bind(t testing.TB) *Stack {
	cp := *s
	cp.t = t
	return &cp
}

// Env is the environment for a docker CLI aimed at this stack.
func (s *Stack) Env() []string {
	return append(os.Environ(), "DOCKER_HOST="+s.Host, "DOCKER_CLI_HINTS=false")
}

// Docker runs the docker CLI against the stack.
func (s *Stack) Docker(args ...string) (stdout, stderr string, code int) {
	return s.DockerIn(nil, args...)
}

// DockerIn runs the docker CLI with stdin.
func (s *Stack) DockerIn(stdin []byte, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = s.Env()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
	}
	return strings.TrimRight(o.String(), "\n"), strings.TrimRight(e.String(), "\n"), code
}

// MustDocker runs the docker CLI and fails t unless it exits 0.
func (s *Stack) MustDocker(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.Docker(args...)
	if code != 0 {
		s.t.Fatalf("docker %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

var (
	busyboxOnce sync.Once
	busyboxTar  []byte
	busyboxErr  error
)

// ImportBusybox imports busybox:latest built from busybox-static (the
// tarball is built once per test process).
func (s *Stack) ImportBusybox() {
	s.t.Helper()
	s.ImportBusyboxAs("busybox:latest", `CMD ["sh"]`)
}

// ImportBusyboxAs imports the busybox tarball as ref with the given
// Dockerfile changes (docker import --change).
func (s *Stack) ImportBusyboxAs(ref string, changes ...string) {
	s.t.Helper()
	busyboxOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			busyboxErr = err
			return
		}
		mk := exec.Command("go", "run", "./deploy/mkbusybox")
		mk.Dir = root
		busyboxTar, busyboxErr = mk.Output()
	})
	if busyboxErr != nil {
		s.t.Fatalf("mkbusybox: %v", busyboxErr)
	}
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "-c", c)
	}
	if _, errOut, code := s.DockerIn(busyboxTar, append(args, "-", ref)...); code != 0 {
		s.t.Fatalf("docker import: %s", errOut)
	}
}

// Stop stops the daemons and removes everything the stack's containers left:
// shims and container processes, mounts under the roots, cgroups.
func (s *Stack) Stop() {
	s.KillAPIGW(syscall.SIGTERM)
	s.KillSupervisor(syscall.SIGTERM)
	rt := filepath.Join(s.Bin, "berth-runtime")
	runtimeRoot := filepath.Join(s.ExecRoot, "runtime")
	entries, _ := os.ReadDir(runtimeRoot)
	for _, e := range entries {
		exec.Command(rt, "--root", runtimeRoot, "delete", "--force", e.Name()).Run()
	}
	shims, _ := filepath.Glob(filepath.Join(s.ExecRoot, "shims", "*", "shim.pid"))
	for _, p := range shims {
		var pid int
		if b, err := os.ReadFile(p); err == nil {
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	// shims whose state directory is gone (a remove cut short) are found
	// by their command line, which names their config under the exec root
	if procs, err := os.ReadDir("/proc"); err == nil {
		for _, p := range procs {
			var pid int
			if _, err := fmt.Sscan(p.Name(), &pid); err != nil || pid <= 1 || pid == os.Getpid() {
				continue
			}
			if cmd, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline")); err == nil &&
				bytes.Contains(cmd, []byte("berth-shim")) && bytes.Contains(cmd, []byte(s.ExecRoot+"/")) {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	for _, m := range Mounts(filepath.Dir(s.Root)) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
	// cgroups the runtime could not delete (a container killed with its shim)
	ids, _ := os.ReadDir(filepath.Join(s.Root, "containers"))
	for _, e := range ids {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "berth", e.Name()))
		dirs2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "berth", e.Name()))
		for _, d := range append(dirs, dirs2...) {
			if procs, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(procs)) {
					var pid int
					if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
						unix.Kill(pid, unix.SIGKILL)
					}
				}
			}
			for i := 0; i < 20 && os.Remove(d) != nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// CleanupNetwork removes the stack's bridges, veths, namespaces and
// iptables chains (after Stop: its containers are gone).
func (s *Stack) CleanupNetwork() {
	network.Cleanup(s.Root, s.ExecRoot, s.Net.ChainPrefix)
	deleteLink(s.Net.Bridge)
}

func runQuiet(name string, args ...string) error { return exec.Command(name, args...).Run() }

// Mounts lists the mount points under dir, deepest first.
func Mounts(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append([]string{f[4]}, out...)
		}
	}
	return out
}
