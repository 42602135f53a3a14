package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	v2 "berth/services/runtime/cgroups/v2"
)

func TestCgroupLimitsAndRemoval(t *testing.T) {
	e := newEnv(t)
	limit := int64(64 << 20)
	res := int64(32 << 20)
	swap := int64(128 << 20)
	pids := int64(8)
	shares := uint64(512)
	quota, period := int64(50000), uint64(100000)
	rel := fmt.Sprintf("berth-test-%d/limits", os.Getpid())
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = rel // unique: parallel runs of this test must not share a cgroup
		s.Linux.Resources = &specs.LinuxResources{
			Memory:  &specs.LinuxMemory{Limit: &limit, Reservation: &res, Swap: &swap},
			Pids:    &specs.LinuxPids{Limit: &pids},
			CPU:     &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0"},
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		}
	})
	pid := e.create("cg", b)
	paths := e.cgroupPaths("cg")
	if !strings.HasSuffix(paths["memory"], "/"+rel) {
		t.Fatalf("relative cgroupsPath: %v", paths)
	}
	check := func(ctrl, file, want string) {
		t.Helper()
		got := strings.TrimSpace(readFile(t, filepath.Join(paths[ctrl], file)))
		if got != want {
			t.Fatalf("%s/%s = %q, want %q", ctrl, file, got, want)
		}
	}
	check("memory", "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	check("memory", "memory.soft_limit_in_bytes", strconv.FormatInt(res, 10))
	if _, err := os.Stat(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes")); err == nil {
		check("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(swap, 10))
	}
	check("pids", "pids.max", "8")
	check("cpu", "cpu.shares", "512")
	check("cpu", "cpu.cfs_quota_us", "50000")
	check("cpuset", "cpuset.cpus", "0")
	contains(t, readFile(t, filepath.Join(paths["devices"], "devices.list")), "c 1:3 rwm")
	for k, p := range paths {
		procs := readFile(t, filepath.Join(p, "cgroup.procs"))
		if !strings.Contains(procs, strconv.Itoa(pid)) {
			t.Fatalf("init not in %s cgroup %s", k, p)
		}
	}
	e.ok("start", "cg")
	// pids.max=8 stops a fork loop run by exec (which joins the cgroup)
	r := e.rt("exec", "cg", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 100 & done; wait")
	if r.code == 0 {
		t.Fatalf("fork loop not stopped: %v", r)
	}
	if n := len(strings.Fields(readFile(t, filepath.Join(paths["pids"], "cgroup.procs")))); n > 8 {
		t.Fatalf("%d processes despite pids.max=8", n)
	}
	if readFile(t, filepath.Join(paths["pids"], "pids.events")) == "max 0\n" {
		t.Fatal("pids limit never hit")
	}
	// update
	newLimit := int64(128 << 20)
	e.rtIn([]byte(`{"memory":{"limit":`+strconv.FormatInt(newLimit, 10)+`},"pids":{"limit":20}}`), "update", "--resources", "-", "cg")
	check("memory", "memory.limit_in_bytes", strconv.FormatInt(newLimit, 10))
	check("pids", "pids.max", "20")
	// pause / resume
	e.ok("pause", "cg")
	check("freezer", "freezer.state", "FROZEN")
	if s := e.state("cg"); s.Status != "paused" {
		t.Fatalf("status %s", s.Status)
	}
	e.ok("resume", "cg")
	check("freezer", "freezer.state", "THAWED")
	if r := e.rt("resume", "cg"); r.code != 1 || !strings.Contains(r.stderr, "not paused") {
		t.Fatalf("resume running: %v", r)
	}
	e.ok("delete", "--force", "cg")
	reap(t, pid)
	for k, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s cgroup %s not removed", k, p)
		}
	}
	for _, p := range paths {
		os.Remove(filepath.Dir(p)) // the berth-test parent
	}
}

func TestCgroupAbsolutePath(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"cat", "/proc/self/cgroup"}, func(s *specs.Spec) {
		s.Linux.CgroupsPath = "/berth-abs-test"
		s.Linux.Namespaces = s.Linux.Namespaces[:5] // no cgroup namespace: see the full path
	})
	r := e.run(b)
	contains(t, r.stdout, "pids:/berth-abs-test")
	contains(t, r.stdout, "0::/berth-abs-test") // the hybrid cgroup2 hierarchy too
	if _, err := os.Stat("/sys/fs/cgroup/pids/berth-abs-test"); !os.IsNotExist(err) {
		t.Fatal("cgroup not removed")
	}
}

// The v2 code against the real (controller-less) cgroup2 mount and a temp
// directory standing in for a v2 cgroup with controllers.
func TestCgroupV2Files(t *testing.T) {
	needRoot(t)
	mnt := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(mnt, "cgroup.procs")); err == nil {
		dir := filepath.Join(mnt, "berth-v2-test")
		m := v2.New(dir)
		if err := m.Apply(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		got, _ := m.Pids()
		found := false
		for _, p := range got {
			found = found || p == os.Getpid()
		}
		if !found {
			t.Fatalf("pid not moved: %v", got)
		}
		// move back out, then remove
		if err := os.WriteFile(filepath.Join(mnt, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := m.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	m := v2.New(dir)
	limit, swap, res := int64(100<<20), int64(150<<20), int64(50<<20)
	shares, period := uint64(1024), uint64(50000)
	quota := int64(25000)
	pids := int64(42)
	w := uint16(500)
	err := m.Set(&specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: &limit, Swap: &swap, Reservation: &res},
		CPU:            &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0-1", Mems: "0"},
		Pids:           &specs.LinuxPids{Limit: &pids},
		BlockIO:        &specs.LinuxBlockIO{Weight: &w, ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1000}}},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		Unified:        map[string]string{"memory.high": "90000000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory.max": "104857600", "memory.swap.max": "52428800", "memory.low": "52428800",
		"cpu.weight": "39", "cpu.max": "25000 50000", "cpuset.cpus": "0-1", "cpuset.mems": "0",
		"pids.max": "42", "io.weight": "4950", "io.max": "8:0 rbps=1000", "hugetlb.2MB.max": "4194304",
		"memory.high": "90000000",
	} {
		if got := readFile(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

// Device rules on cgroup v2 are an eBPF program: attach one to a cgroup of
// the real cgroup2 hierarchy and check what a process in it may open.
func TestCgroupV2DeviceFilter(t *testing.T) {
	needRoot(t)
	mnt := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(mnt, "cgroup.procs")); err != nil {
		mnt = "/sys/fs/cgroup"
		if _, err := os.Stat(filepath.Join(mnt, "cgroup.controllers")); err != nil {
			t.Skip("no cgroup2 hierarchy")
		}
	}
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skip("no /dev/kmsg to test with")
	}
	dir := filepath.Join(mnt, "berth-devices-test")
	m := v2.New(dir)
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	defer m.Destroy()
	one := int64(1)
	if err := m.Set(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: &one, Minor: nil, Access: "r"}, // all of major 1, read only
	}}); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	run := func(script string) string {
		cmd := exec.Command("/bin/busybox", "sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	// kmsg (1:11): readable through the major-1 rule, not writable
	out := run("(: < /dev/kmsg) && echo read-ok; (: >> /dev/kmsg) && echo write-ok; echo done")
	if !strings.Contains(out, "read-ok") || strings.Contains(out, "write-ok") || !strings.Contains(out, "Operation not permitted") || !strings.Contains(out, "done") {
		t.Fatalf("device filter: %q", out)
	}
	// the default allowed devices stay usable
	if out := run("head -c 3 /dev/zero | wc -c; : > /dev/null && echo null-ok"); !strings.Contains(out, "3") || !strings.Contains(out, "null-ok") {
		t.Fatalf("default devices: %q", out)
	}
}
