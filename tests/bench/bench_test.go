// Package bench measures berth side by side with a Docker engine (Debian's
// docker.io, started on a temporary root) when one is installed, with the
// same docker CLI: run latency, concurrent starts, and resident memory.
//
//	make bench   (go test -run XXX -bench . -benchtime 1x ./tests/bench/)
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/tests/stack"
)

const (
	defaultRuns = 20 // (a) sequential docker run --rm
	concurrent  = 20 // (b) docker run -d at once
)

// runs is the number of sequential runs of (a): BERTH_BENCH_RUNS, at least
// the default 20.
var runs = func() int {
	if n, err := strconv.Atoi(os.Getenv("BERTH_BENCH_RUNS")); err == nil && n > defaultRuns {
		return n
	}
	return defaultRuns
}()

// engine is a daemon the docker CLI talks to.
type engine struct {
	name string
	host string
	// rss reports the resident memory of one shim (RSS, and PSS: its
	// shared pages divided among their users) and of the daemons, in MiB.
	rss func() (shim, shimPSS, daemons float64)
}

func dockerCLI(host string, args ...string) error {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// runMedian is the median time of `docker run --rm [args] busybox true`.
func runMedian(b *testing.B, e engine, args ...string) time.Duration {
	var times []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		if err := dockerCLI(e.host, append(append([]string{"run", "--rm"}, args...), "busybox", "true")...); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	return median(times)
}

// measure runs the measurements against e: run --rm with the default
// bridge network and with none, concurrent starts, memory.
func measure(b *testing.B, e engine) (bridgeMedian, noneMedian, concurrentAll time.Duration, shim, shimPSS, daemons float64) {
	bridgeMedian = runMedian(b, e)
	noneMedian = runMedian(b, e, "--network", "none")

	var wg sync.WaitGroup
	errs := make(chan error, concurrent)
	start := time.Now()
	for i := 0; i < concurrent; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- dockerCLI(e.host, "run", "-d", "--label", "bench=1", "busybox", "sleep", "300")
		}()
	}
	wg.Wait()
	concurrentAll = time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	shim, shimPSS, daemons = e.rss()
	cmd := exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=bench=1)")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
	cmd.Run()
	return
}

// rssMiB reads VmRSS of pid.
func rssMiB(pid int) float64 {
	return procKB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

// pssMiB reads the PSS of pid: its private pages plus its share of the
// pages it shares (a shim's executable with every other shim).
func pssMiB(pid int) float64 {
	return procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

func procKB(path, field string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// pidsNamed lists the pids of the program name (whose /proc/PID/comm is
// name cut to the kernel's 15 bytes) whose command line mentions dir (this
// engine's own temporary root: other engines may run on a shared machine).
func pidsNamed(name, dir string) []int {
	if len(name) > 15 {
		name = name[:15]
	}
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range dirs {
		b, err := os.ReadFile(c)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(filepath.Dir(c), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), dir) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
		pids = append(pids, pid)
	}
	return pids
}

func medianRSS(pids []int) float64 { return medianOf(pids, rssMiB) }

func medianPSS(pids []int) float64 { return medianOf(pids, pssMiB) }

func medianOf(pids []int, f func(int) float64) float64 {
	if len(pids) == 0 {
		return 0
	}
	var v []float64
	for _, p := range pids {
		v = append(v, f(p))
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func sumRSS(pids []int) float64 {
	var s float64
	for _, p := range pids {
		s += rssMiB(p)
	}
	return s
}

// execRootTmpfs mounts a tmpfs on dir: both engines keep their state
// (bundles, shims, runtime state) under an exec root on /run, a tmpfs on any
// production host, while the benchmark's temporary roots are on the disk.
func execRootTmpfs(b *testing.B, dir string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"); err != nil {
		b.Fatal(err)
	}
}

func berthEngine(b *testing.B) engine {
	s := stack.StartWith(b, func(s *stack.Stack) { execRootTmpfs(b, s.ExecRoot) })
	s.ImportBusybox()
	return engine{name: "berth", host: s.Host, rss: func() (float64, float64, float64) {
		dir := filepath.Dir(s.Root)
		shims := pidsNamed("berth-shim", dir)
		return medianRSS(shims), medianPSS(shims), sumRSS(append(pidsNamed("berth-supervisor", dir), pidsNamed("berth-apigw", dir)...))
	}}
}

// dockerEngine starts Debian's dockerd on a temporary root, if installed,
// with its default bridge network on a bridge of its own (a test network
// slot's, so that it meets no other engine's). It runs with --iptables=false:
// Docker's rules live in global chains (DOCKER, DOCKER-USER…) that
// another dockerd on the host would share; berth's bridge start installs
// no per-container rule either when nothing is published.
func dockerEngine(b *testing.B) (engine, bool) {
	if _, err := exec.LookPath("dockerd"); err != nil {
		return engine{}, false
	}
	dir, err := os.MkdirTemp("", "bench-dockerd-")
	if err != nil {
		b.Fatal(err)
	}
	host := "unix://" + filepath.Join(dir, "d.sock")
	execRootTmpfs(b, filepath.Join(dir, "exec"))
	log, _ := os.Create(filepath.Join(dir, "dockerd.log"))
	slot, err := stack.TakeNetSlot()
	if err != nil {
		b.Fatal(err)
	}
	br := "bd" + strings.TrimPrefix(slot.Bridge, "bt")
	for _, args := range [][]string{{"link", "add", br, "type", "bridge"}, {"addr", "add", slot.BIP, "dev", br}, {"link", "set", br, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			b.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	b.Cleanup(func() { exec.Command("ip", "link", "del", br).Run(); slot.Release() })
	cmd := exec.Command("dockerd", "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", host, "--pidfile", filepath.Join(dir, "d.pid"), "--iptables=false", "--bridge="+br, "--ip-masq=false", "--userland-proxy=false")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		for _, m := range stack.Mounts(dir) {
			exec.Command("umount", "-l", m).Run()
		}
		os.RemoveAll(dir)
	})
	for i := 0; ; i++ {
		if dockerCLI(host, "version") == nil {
			break
		}
		if i > 300 {
			b.Logf("dockerd did not start; see %s", filepath.Join(dir, "dockerd.log"))
			return engine{}, false
		}
		time.Sleep(100 * time.Millisecond)
	}
	root, _ := stack.ModuleRoot()
	imp := exec.Command("sh", "-c", "go run ./deploy/mkbusybox | docker import -c 'CMD [\"sh\"]' - busybox:latest")
	imp.Dir = root
	imp.Env = append(os.Environ(), "DOCKER_HOST="+host)
	if out, err := imp.CombinedOutput(); err != nil {
		b.Fatalf("import into dockerd: %v %s", err, out)
	}
	return engine{name: "docker", host: host, rss: func() (float64, float64, float64) {
		shims := pidsNamed("containerd-shim-runc-v2", dir)
		return medianRSS(shims), medianPSS(shims), sumRSS(append(pidsNamed("dockerd", dir), pidsNamed("containerd", dir)...))
	}}, true
}

// BenchmarkEngines prints one table: berth, and Docker when installed.
func BenchmarkEngines(b *testing.B) {
	stack.RequireRoot(b)
	engines := []engine{berthEngine(b)}
	// BERTH_BENCH_SKIP_DOCKER=1 measures berth alone (quicker iterations).
	if os.Getenv("BERTH_BENCH_SKIP_DOCKER") == "" {
		if d, ok := dockerEngine(b); ok {
			engines = append(engines, d)
		}
	}
	type row struct {
		run, none, conc        time.Duration
		shim, shimPSS, daemons float64
	}
	rows := map[string]row{}
	for _, e := range engines {
		r, n, c, s, sp, d := measure(b, e)
		rows[e.name] = row{r, n, c, s, sp, d}
	}
	fmt.Printf("\n%-8s %18s %18s %26s %13s %13s %22s\n", "engine", "run --rm (bridge)", "run --rm (none)", "20x run -d, all running", "shim RSS MiB", "shim PSS MiB", "daemons RSS MiB (20 up)")
	for _, e := range engines {
		r := rows[e.name]
		fmt.Printf("%-8s %18s %18s %26s %13.1f %13.1f %22.1f\n", e.name, r.run.Round(time.Millisecond), r.none.Round(time.Millisecond), r.conc.Round(time.Millisecond), r.shim, r.shimPSS, r.daemons)
	}
	if d, ok := rows["docker"]; ok {
		br := rows["berth"]
		fmt.Printf("ratios berth/docker: run (bridge) %.2f  run (none) %.2f  concurrent %.2f  shim RSS %.2f  shim PSS %.2f\n",
			float64(br.run)/float64(d.run), float64(br.none)/float64(d.none), float64(br.conc)/float64(d.conc), br.shim/d.shim, br.shimPSS/d.shimPSS)
	}
	b.ReportMetric(float64(rows["berth"].run.Milliseconds()), "berth-run-ms")
}
