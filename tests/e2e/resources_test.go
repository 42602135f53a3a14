package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

// actions lists the container events of name between since and now.
func actions(t *testing.T, s *stack.Stack, name string, since int64) []string {
	t.Helper()
	out := s.MustDocker("events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "type=container", "--filter", "container="+name, "--format", "{{.Action}}")
	var got []string
	for _, a := range strings.Fields(out) {
		if !strings.HasPrefix(a, "exec_") { // an exec's events are not what these tests look at
			got = append(got, a)
		}
	}
	return got
}

// hostCgroup reads a file of a container's v1 cgroup from the host.
func hostCgroup(t *testing.T, id, ctrl, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, "berth", id, file))
	if err != nil {
		t.Fatalf("the container's cgroup: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func requireV1(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		t.Skip("needs cgroup v1 controllers (the files read below)")
	}
}

// TestResourceLimitsInside runs a container per option and reads, from
// inside, what the kernel applies.
func TestResourceLimitsInside(t *testing.T) {
	s := shared(t)
	requireV1(t)
	cases := []struct {
		name string
		opts []string
		cmd  string
		want string
	}{
		{"memory", []string{"--memory", "64m"}, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", "67108864"},
		{"memory-swap-default", []string{"--memory", "64m"}, "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "134217728"},
		{"memory-swap", []string{"--memory", "64m", "--memory-swap", "100m"}, "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "104857600"},
		{"memory-reservation", []string{"--memory-reservation", "32m"}, "cat /sys/fs/cgroup/memory/memory.soft_limit_in_bytes", "33554432"},
		{"cpus", []string{"--cpus", "0.5"}, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us", "50000\n100000"},
		{"cpu-shares", []string{"--cpu-shares", "512"}, "cat /sys/fs/cgroup/cpu/cpu.shares", "512"},
		{"cpuset-cpus", []string{"--cpuset-cpus", "0"}, "cat /sys/fs/cgroup/cpuset/cpuset.cpus; nproc", "0\n1"},
		{"pids-limit", []string{"--pids-limit", "10"}, "cat /sys/fs/cgroup/pids/pids.max", "10"},
		// a shell starting 12 sleeps stops at the limit: it, its parent
		// and 8 sleeps make 10; it dies of the failed fork
		{"pids-limit-enforced", []string{"--pids-limit", "10"}, `sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 5 & done" 2>/dev/null; read n < /sys/fs/cgroup/pids/pids.current; echo $n`, "9"},
		{"ulimit", []string{"--ulimit", "nofile=100:200", "--ulimit", "nproc=50"}, "ulimit -n; ulimit -Hn; ulimit -u", "100\n200\n50"},
		{"oom-score-adj", []string{"--oom-score-adj", "500"}, "cat /proc/self/oom_score_adj", "500"},
		{"shm-size", []string{"--shm-size", "10m"}, "df -k /dev/shm | tail -1 | awk '{print $2}'", "10240"},
		{"shm-default", nil, "df -k /dev/shm | tail -1 | awk '{print $2}'", "65536"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"run", "--rm"}, c.opts...), "busybox", "sh", "-c", c.cmd)
			out, errOut, code := s.Docker(args...)
			if code != 0 || out != c.want {
				t.Fatalf("got exit %d out %q (stderr %q), want %q", code, out, errOut, c.want)
			}
		})
	}
	// inspect shows what the create stored, Docker's defaults included
	name := uniq("res")
	s.MustDocker("create", "--name", name, "--memory", "64m", "--cpus", "1.5", "--pids-limit", "7", "busybox", "true")
	defer s.Docker("rm", name)
	if got := s.MustDocker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.ShmSize}} {{.HostConfig.IpcMode}}", name); got != "67108864 134217728 1500000000 7 67108864 private" {
		t.Fatalf("inspect: %q", got)
	}
}

// TestResourceErrors: invalid values fail at create with Docker's message
// (status 400, exit 125 from docker run) and leave nothing behind.
func TestResourceErrors(t *testing.T) {
	s := shared(t)
	ncpu := runtime.NumCPU()
	cases := []struct {
		opts []string
		msg  string
	}{
		{[]string{"--memory", "1m"}, "Minimum memory limit allowed is 6MB"},
		{[]string{"--memory-reservation", "1m"}, "Minimum memory reservation allowed is 6MB"},
		{[]string{"--memory", "10m", "--memory-reservation", "20m"}, "Minimum memory limit can not be less than memory reservation limit, see usage"},
		{[]string{"--memory-swap", "10m"}, "You should always set the Memory limit when using Memoryswap limit, see usage"},
		{[]string{"--memory", "20m", "--memory-swap", "10m"}, "Minimum memoryswap limit should be larger than memory limit, see usage"},
		{[]string{"--cpus", fmt.Sprint(ncpu + 1)}, fmt.Sprintf("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", ncpu, ncpu)},
		{[]string{"--cpus", "1", "--cpu-period", "50000"}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"},
		{[]string{"--cpu-period", "100"}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{[]string{"--cpuset-cpus", "64"}, "Requested CPUs are not available - requested 64, available: "},
		{[]string{"--cpuset-cpus", "abc"}, "Invalid value abc for cpuset cpus: invalid format: abc"},
		{[]string{"--cpuset-mems", "7"}, "Requested memory nodes are not available - requested 7, available: "},
		{[]string{"--oom-score-adj", "2000"}, "Invalid value 2000, range for oom score adj is [-1000, 1000]"},
		{[]string{"--cap-add", "FOO"}, `invalid CapAdd: unknown capability: "CAP_FOO"`},
		{[]string{"--cap-drop", "BAR"}, `invalid CapDrop: unknown capability: "CAP_BAR"`},
		{[]string{"--security-opt", "foo=bar"}, `invalid --security-opt 2: "foo=bar"`},
		{[]string{"--ipc", "bogus"}, "invalid IPC mode: bogus"},
		{[]string{"--pid", "container:no-such-ctr-e2e"}, "No such container: no-such-ctr-e2e"},
		{[]string{"--ipc", "container:no-such-ctr-e2e"}, "No such container: no-such-ctr-e2e"},
	}
	before := leftovers(s)
	psBefore := s.MustDocker("ps", "-aq")
	for _, c := range cases {
		t.Run(strings.Join(c.opts, " "), func(t *testing.T) {
			args := append(append([]string{"run", "--rm"}, c.opts...), "busybox", "true")
			_, errOut, code := s.Docker(args...)
			if code != 125 || !strings.Contains(errOut, "Error response from daemon: "+c.msg) {
				t.Fatalf("exit %d stderr %q, want 125 and %q", code, errOut, c.msg)
			}
		})
	}
	// the API's status
	if st, msg := call(t, s, "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"Memory":1024}}`); st != 400 || msg != "Minimum memory limit allowed is 6MB" {
		t.Errorf("create with 1 KB of memory: %d %q", st, msg)
	}
	if after := leftovers(s); !slices.Equal(before, after) {
		t.Errorf("left behind: before %v after %v", before, after)
	}
	if ps := s.MustDocker("ps", "-aq"); ps != psBefore {
		t.Errorf("containers before %q after %q", psBefore, ps)
	}

	// a value the kernel clamps fails at start, like runc's
	name := uniq("shares")
	_, errOut, code := s.Docker("run", "--name", name, "--cpu-shares", "1", "busybox", "true")
	defer s.Docker("rm", "-f", name)
	if code != 125 || !strings.Contains(errOut, "the minimum allowed cpu-shares is 2") {
		t.Fatalf("cpu-shares 1: exit %d %q", code, errOut)
	}
	id := s.MustDocker("inspect", "-f", "{{.Id}}", name)
	if m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*/berth", id)); len(m) > 0 {
		t.Errorf("cgroups left after the failed start: %v", m)
	}
	for _, p := range []string{filepath.Join(s.ExecRoot, "bundles", id), filepath.Join(s.ExecRoot, "runtime", id)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after the failed start", p)
		}
	}
}

// TestUpdate changes the limits of a running container (docker update)
// and reads them back from the host and from inside.
func TestUpdate(t *testing.T) {
	s := shared(t)
	requireV1(t)
	name := uniq("upd")
	since := time.Now().Unix()
	// the container prints its own memory limit, as it sees it, every 0.2 s
	id := s.MustDocker("run", "-d", "--name", name, "--memory", "64m", "busybox", "sh", "-c",
		"while true; do cat /sys/fs/cgroup/memory/memory.limit_in_bytes; sleep 0.2; done")
	defer s.Docker("rm", "-f", name)
	s.MustDocker("update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5", "--pids-limit", "20", "--cpu-shares", "256", name)
	for _, c := range []struct{ ctrl, file, want string }{
		{"memory", "memory.limit_in_bytes", "134217728"},
		{"memory", "memory.memsw.limit_in_bytes", "268435456"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.shares", "256"},
		{"pids", "pids.max", "20"},
	} {
		if got := hostCgroup(t, id, c.ctrl, c.file); got != c.want {
			t.Errorf("%s: %s, want %s", c.file, got, c.want)
		}
	}
	waitLog(t, s, name, "134217728")
	if got := s.MustDocker("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}", name); got != "134217728 268435456 500000000 20 256" {
		t.Errorf("inspect after update: %q", got)
	}
	// Docker's refusals; the limits stay
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--memory", "1g"}, "Cannot update container " + id + ": Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"},
		{[]string{"--cpu-period", "50000"}, "Cannot update container " + id + ": Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"},
		{[]string{"--memory", "1m"}, "Minimum memory limit allowed is 6MB"},
	} {
		_, errOut, code := s.Docker(append(append([]string{"update"}, c.args...), name)...)
		if code != 1 || !strings.Contains(errOut, c.msg) {
			t.Errorf("update %v: exit %d %q, want %q", c.args, code, errOut, c.msg)
		}
	}
	if got := hostCgroup(t, id, "memory", "memory.limit_in_bytes"); got != "134217728" {
		t.Errorf("a refused update changed the limit: %s", got)
	}
	// the restart policy too, and a stopped container takes its update at the next start
	s.MustDocker("update", "--restart", "on-failure:3", name)
	if got := s.MustDocker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", name); got != "on-failure:3" {
		t.Errorf("restart policy %q", got)
	}
	s.MustDocker("stop", "-t", "0", name)
	s.MustDocker("update", "--pids-limit", "33", name)
	s.MustDocker("start", name)
	if got := hostCgroup(t, id, "pids", "pids.max"); got != "33" {
		t.Errorf("pids.max after update of the stopped container and start: %s", got)
	}
	if n := strings.Count(strings.Join(actions(t, s, name, since), " "), "update"); n != 3 {
		t.Errorf("%d update events, want 3", n)
	}
	if _, errOut, code := s.Docker("update", "--memory", "64m", "no-such-ctr-e2e"); code != 1 || !strings.Contains(errOut, "No such container: no-such-ctr-e2e") {
		t.Errorf("update of a missing container: %d %q", code, errOut)
	}
}

// TestOOMKill: a container killed by the OOM killer exits 137 with
// State.OOMKilled and an oom event; one whose child is killed survives,
// flagged all the same.
func TestOOMKill(t *testing.T) {
	s := shared(t)
	requireV1(t)
	name := uniq("oom")
	since := time.Now().Unix()
	_, _, code := s.Docker("run", "--name", name, "--memory", "8m", "--memory-swap", "8m", "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done")
	defer s.Docker("rm", "-f", name)
	if code != 137 {
		t.Fatalf("exit %d, want 137", code)
	}
	if got := s.MustDocker("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", name); got != "true 137" {
		t.Fatalf("inspect %q", got)
	}
	if got := strings.Join(actions(t, s, name, since), " "); !strings.Contains(got, "oom die") || strings.Count(got, "oom") != 1 {
		t.Fatalf("events %q, want one oom before die", got)
	}

	child := uniq("oomchild")
	s.MustDocker("run", "-d", "--name", child, "--memory", "8m", "--memory-swap", "8m", "busybox", "sh", "-c", `sh -c 'x=a; while true; do x=$x$x; done'; echo survived; sleep 300`)
	defer s.Docker("rm", "-f", child)
	waitLog(t, s, child, "survived")
	// the oom event and flag come as the kill happens, the container still running
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.OOMKilled}}", child)
		if got == "running true" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a running container whose child was OOM-killed: %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := actions(t, s, child, since); !slices.Contains(got, "oom") || slices.Contains(got, "die") {
		t.Fatalf("events %v", got)
	}
}

// TestStats: docker stats --no-stream with the limits, and the API's
// stream whose samples carry the previous one's CPU figures.
func TestStats(t *testing.T) {
	s := shared(t)
	requireV1(t)
	name := uniq("stats")
	// a busy loop (CPU), 3 processes, a veth pair in the container's
	// network namespace with ARP requests going over it (network)
	s.MustDocker("run", "-d", "--name", name, "--memory", "64m", "--cap-add", "NET_ADMIN", "busybox", "sh", "-c",
		"ip link add v0 type veth peer name v1 && ip addr add 10.99.0.1/24 dev v0 && ip link set v0 up && ip link set veth0 up && "+
			"ping -c 2 -W 1 10.99.0.2 >/dev/null; sleep 300 & sleep 300 & while true; do :; done")
	defer s.Docker("rm", "-f", name)
	time.Sleep(2 * time.Second)
	out := s.MustDocker("stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}", name)
	f := strings.Split(out, "|")
	if len(f) != 6 || f[0] != name {
		t.Fatalf("stats %q", out)
	}
	var cpu float64
	fmt.Sscanf(f[1], "%f%%", &cpu)
	if cpu < 20 {
		t.Errorf("CPU %s of a busy loop", f[1])
	}
	if !strings.HasSuffix(f[2], " / 64MiB") {
		t.Errorf("memory %q, want a 64MiB limit", f[2])
	}
	if f[3] == "0B / 0B" || !strings.Contains(f[3], "B / ") {
		t.Errorf("net I/O %q: ARP went both ways over the veth pair", f[3])
	}
	// block I/O: this host's kernel accounts none in v1 blkio (Docker
	// shows 0B too); the figures are checked on a fake cgroup tree in
	// services/supervisor/stats
	if !strings.Contains(f[4], "B / ") {
		t.Errorf("block I/O %q", f[4])
	}
	if f[5] != "3" {
		t.Errorf("PIDs %q, want 3", f[5])
	}

	// the API stream: one sample a second, precpu = the previous sample
	resp, err := api(s).Get("http://berth/containers/" + name + "/stats?stream=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type sample struct {
		Name     string `json:"name"`
		Read     time.Time
		PreRead  time.Time
		CPUStats struct {
			CPUUsage struct {
				TotalUsage uint64 `json:"total_usage"`
			} `json:"cpu_usage"`
			SystemUsage uint64 `json:"system_cpu_usage"`
			OnlineCPUs  uint32 `json:"online_cpus"`
		} `json:"cpu_stats"`
		PreCPUStats struct {
			CPUUsage struct {
				TotalUsage uint64 `json:"total_usage"`
			} `json:"cpu_usage"`
		} `json:"precpu_stats"`
		MemoryStats struct {
			Limit uint64 `json:"limit"`
		} `json:"memory_stats"`
		PidsStats struct {
			Current uint64 `json:"current"`
		} `json:"pids_stats"`
	}
	sc := bufio.NewScanner(resp.Body)
	var got []sample
	for len(got) < 3 && sc.Scan() {
		var x sample
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("stats line %q: %v", sc.Text(), err)
		}
		got = append(got, x)
	}
	if len(got) != 3 {
		t.Fatalf("%d samples", len(got))
	}
	for i := 1; i < 3; i++ {
		if got[i].PreCPUStats.CPUUsage.TotalUsage != got[i-1].CPUStats.CPUUsage.TotalUsage || !got[i].PreRead.Equal(got[i-1].Read) {
			t.Errorf("sample %d: precpu is not the previous sample", i)
		}
		if d := got[i].Read.Sub(got[i-1].Read); d < 800*time.Millisecond || d > 3*time.Second {
			t.Errorf("samples %v apart", d)
		}
	}
	if g := got[2]; g.Name != "/"+name || g.MemoryStats.Limit != 64<<20 || g.PidsStats.Current != 3 || g.CPUStats.OnlineCPUs != uint32(runtime.NumCPU()) || g.CPUStats.SystemUsage == 0 {
		t.Errorf("sample %+v", g)
	}

	// a stopped container: zeros, as Docker
	stopped := uniq("stopped")
	s.MustDocker("create", "--name", stopped, "busybox", "true")
	defer s.Docker("rm", stopped)
	if out := s.MustDocker("stats", "--no-stream", "--format", "{{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", stopped); out != "0.00% 0B / 0B 0" {
		t.Errorf("stats of a created container %q", out)
	}
	if _, errOut, code := s.Docker("stats", "--no-stream", "no-such-ctr-e2e"); code != 1 || !strings.Contains(errOut, "No such container: no-such-ctr-e2e") {
		t.Errorf("stats of a missing container: %d %q", code, errOut)
	}
}
