// Package bench compares the full lifecycle of a busybox /bin/true
// container (create, start, wait for exit, delete) under berth-runtime and,
// when it is installed, runc, on the same bundle in the same run:
//
//	go test -run XXX -bench . ./services/runtime/bench/
//
// It prints the median and p90 wall time of BENCH_RUNS (default 30) runs
// of each, interleaved, and the peak RSS (wait4 ru_maxrss) of the runtime
// commands and of the container's init (whose high-water mark includes the
// runtime's init phase before it execs /bin/true).
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/busyboxfs"
	"berth/services/runtime/cli"
)

type runtime struct {
	name, bin, root string
	durs            []time.Duration
	phases          [4][]time.Duration // create, start, wait, delete
	cmdRSS, initRSS int64              // KiB
	timeBin         string
}

// cmd runs one runtime command. ru_maxrss survives exec, and Go starts
// children with vfork, so a child of this (large) test process reports at
// least the test's own RSS. For the memory pass the command is therefore
// started by GNU time (a small process), which reports the wait4 maxrss.
func (r *runtime) cmd(args ...string) error {
	argv := append([]string{r.bin, "--root", r.root}, args...)
	var rssFile string
	if r.timeBin != "" {
		rssFile = filepath.Join(r.root, "rss")
		argv = append([]string{r.timeBin, "-f", "%M", "-o", rssFile}, argv...)
	}
	c := exec.Command(argv[0], argv[1:]...)
	null, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer null.Close()
	c.Stdin, c.Stdout, c.Stderr = null, null, null
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %v: %w", r.name, args, err)
	}
	if rssFile != "" {
		b, _ := os.ReadFile(rssFile)
		if kb, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && kb > r.cmdRSS {
			r.cmdRSS = kb
		}
	}
	return nil
}

func (r *runtime) lifecycle(bundle string, i int) error {
	id := fmt.Sprintf("bench-%d", i)
	pidFile := filepath.Join(r.root, id+".pid")
	start := time.Now()
	if err := r.cmd("create", "--bundle", bundle, "--pid-file", pidFile, id); err != nil {
		return err
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return err
	}
	pid, _ := strconv.Atoi(string(b))
	t1 := time.Now()
	if err := r.cmd("start", id); err != nil {
		return err
	}
	t2 := time.Now()
	var ws unix.WaitStatus
	var ru unix.Rusage
	if _, err := unix.Wait4(pid, &ws, 0, &ru); err != nil {
		return fmt.Errorf("wait init: %w", err)
	}
	t3 := time.Now()
	if err := r.cmd("delete", id); err != nil {
		return err
	}
	t4 := time.Now()
	r.durs = append(r.durs, t4.Sub(start))
	for i, d := range []time.Duration{t1.Sub(start), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)} {
		r.phases[i] = append(r.phases[i], d)
	}
	os.Remove(pidFile)
	if ws.ExitStatus() != 0 {
		return fmt.Errorf("%s: container exited %d", r.name, ws.ExitStatus())
	}
	if ru.Maxrss > r.initRSS {
		r.initRSS = ru.Maxrss
	}
	return nil
}

func (r *runtime) median() time.Duration { return pct(r.durs, 50) }

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration{}, d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func BenchmarkLifecycle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: containers need namespaces, cgroups and mounts")
	}
	runs := 30
	if v, err := strconv.Atoi(os.Getenv("BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	tmp := b.TempDir()
	bin := filepath.Join(tmp, "berth-runtime")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = ".."
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatal(err)
	}
	bundle := filepath.Join(tmp, "bundle")
	if err := busyboxfs.Build(filepath.Join(bundle, "rootfs")); err != nil {
		b.Fatal(err)
	}
	// The same config for both: runc's default spec, running /bin/true.
	spec := cli.DefaultSpec()
	spec.Process.Terminal = false
	spec.Process.Args = []string{"/bin/true"}
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	rts := []*runtime{{name: "berth-runtime", bin: bin, root: filepath.Join(tmp, "berth-root")}}
	if p, err := exec.LookPath("runc"); err == nil {
		rts = append(rts, &runtime{name: "runc", bin: p, root: filepath.Join(tmp, "runc-root")})
	} else {
		b.Log("runc not on PATH: measuring berth-runtime alone")
	}
	// one warm-up each (page cache), then interleaved runs
	for _, r := range rts {
		if err := r.lifecycle(bundle, -1); err != nil {
			b.Fatal(err)
		}
		r.durs, r.cmdRSS, r.initRSS = nil, 0, 0
	}
	b.ResetTimer()
	for i := 0; i < runs; i++ {
		for _, r := range rts {
			if err := r.lifecycle(bundle, i); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	// memory pass
	timeBin, _ := exec.LookPath("time")
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		timeBin = "/usr/bin/time"
	}
	for _, r := range rts {
		r.timeBin = timeBin
		durs, phases := r.durs, r.phases
		for i := 0; i < 5; i++ {
			if err := r.lifecycle(bundle, 1000+i); err != nil {
				b.Fatal(err)
			}
		}
		r.durs, r.phases = durs, phases
	}
	if timeBin == "" {
		fmt.Println("(GNU time not found: peak RSS of the runtime commands not measured)")
	}
	fmt.Printf("\nlifecycle of a busybox /bin/true container (create, start, wait, delete), %d runs each\n", runs)
	fmt.Printf("%-14s %10s %10s %10s %14s %14s\n", "runtime", "median", "p90", "min", "peak RSS cmd", "peak RSS init")
	for _, r := range rts {
		fmt.Printf("%-14s %10s %10s %10s %11d KiB %11d KiB\n", r.name, r.median().Round(10*time.Microsecond),
			pct(r.durs, 90).Round(10*time.Microsecond), pct(r.durs, 0).Round(10*time.Microsecond), r.cmdRSS, r.initRSS)
	}
	fmt.Printf("%-14s %10s %10s %10s %10s   (medians per phase)\n", "", "create", "start", "wait", "delete")
	for _, r := range rts {
		fmt.Printf("%-14s %10s %10s %10s %10s\n", r.name, pct(r.phases[0], 50).Round(10*time.Microsecond), pct(r.phases[1], 50).Round(10*time.Microsecond),
			pct(r.phases[2], 50).Round(10*time.Microsecond), pct(r.phases[3], 50).Round(10*time.Microsecond))
	}
	if len(rts) == 2 {
		fmt.Printf("berth-runtime/runc: time %.2fx, peak RSS %.2fx\n",
			float64(rts[0].median())/float64(rts[1].median()),
			float64(max(rts[0].cmdRSS, rts[0].initRSS))/float64(max(rts[1].cmdRSS, rts[1].initRSS)))
	}
	b.ReportMetric(float64(rts[0].median().Microseconds())/1000, "berth-ms/lifecycle")
	b.ReportMetric(float64(max(rts[0].cmdRSS, rts[0].initRSS)), "berth-peak-KiB")
	if len(rts) == 2 {
		b.ReportMetric(float64(rts[1].median().Microseconds())/1000, "runc-ms/lifecycle")
		b.ReportMetric(float64(max(rts[1].cmdRSS, rts[1].initRSS)), "runc-peak-KiB")
	}
}
