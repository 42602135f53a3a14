package stats

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const procStat = "cpu  100 0 50 800 10 0 5 7 0 0\ncpu0 50 0 25 400 5 0 3 3 0 0\ncpu1 50 0 25 400 5 0 2 4 0 0\nintr 1\n"

const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     999       9    0    0    0     0          0         0      999       9    0    0    0     0       0          0
  eth0:    1000      10    1    2    0     0          0         0     2000      20    3    4    0     0       0          0
`

func TestCollectV1(t *testing.T) {
	root := t.TempDir()
	cg := "/berth/c1"
	write(t, root, map[string]string{
		"proc/stat":                                                    procStat,
		"proc/42/net/dev":                                              netDev,
		"cg/cpuacct" + cg + "/cpuacct.usage":                           "5000000000\n",
		"cg/cpuacct" + cg + "/cpuacct.usage_percpu":                    "3000000000 2000000000 \n",
		"cg/cpuacct" + cg + "/cpuacct.stat":                            "user 300\nsystem 100\n",
		"cg/cpu" + cg + "/cpu.stat":                                    "nr_periods 10\nnr_throttled 2\nthrottled_time 777\n",
		"cg/memory" + cg + "/memory.usage_in_bytes":                    "10485760\n",
		"cg/memory" + cg + "/memory.max_usage_in_bytes":                "20971520\n",
		"cg/memory" + cg + "/memory.failcnt":                           "3\n",
		"cg/memory" + cg + "/memory.limit_in_bytes":                    "9223372036854771712\n",
		"cg/memory" + cg + "/memory.stat":                              "cache 4096\nrss 8192\ntotal_inactive_file 1048576\n",
		"cg/pids" + cg + "/pids.current":                               "4\n",
		"cg/pids" + cg + "/pids.max":                                   "max\n",
		"cg/blkio" + cg + "/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8388608\n8:0 Total 8392704\nTotal 8392704\n",
		"cg/blkio" + cg + "/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 8\nTotal 9\n",
	})
	h := &Host{Root: root, MemTotal: 1 << 30, V1: map[string]string{
		"cpuacct": "cg/cpuacct", "cpu": "cg/cpu", "memory": "cg/memory", "pids": "cg/pids", "blkio": "cg/blkio"}}
	s := h.Collect(cg, 42, true)
	u := s.CPUStats.CPUUsage
	if u.TotalUsage != 5e9 || len(u.PercpuUsage) != 2 || u.PercpuUsage[1] != 2e9 || u.UsageInUsermode != 3e9 || u.UsageInKernelmode != 1e9 {
		t.Errorf("cpu %+v", u)
	}
	// system: the first 7 fields of the cpu line (100+0+50+800+10+0+5 ticks)
	if s.CPUStats.SystemUsage != 965*1e7 || s.CPUStats.OnlineCPUs != 2 {
		t.Errorf("system %d online %d", s.CPUStats.SystemUsage, s.CPUStats.OnlineCPUs)
	}
	if th := s.CPUStats.ThrottlingData; th.Periods != 10 || th.ThrottledPeriods != 2 || th.ThrottledTime != 777 {
		t.Errorf("throttling %+v", th)
	}
	m := s.MemoryStats
	// no limit: the machine's memory, as Docker shows it
	if m.Usage != 10<<20 || m.MaxUsage != 20<<20 || m.Failcnt != 3 || m.Limit != 1<<30 || m.Stats["total_inactive_file"] != 1<<20 {
		t.Errorf("memory %+v", m)
	}
	if s.PidsStats.Current != 4 || s.PidsStats.Limit != 0 {
		t.Errorf("pids %+v", s.PidsStats)
	}
	b := s.BlkioStats.IoServiceBytesRecursive
	if len(b) != 3 || b[1].Op != "Write" || b[1].Value != 8388608 || b[1].Major != 8 || len(s.BlkioStats.IoServicedRecursive) != 2 {
		t.Errorf("blkio %+v", s.BlkioStats)
	}
	if len(s.Networks) != 1 {
		t.Fatalf("networks %+v (lo is not one)", s.Networks)
	}
	if n := s.Networks["eth0"]; n.RxBytes != 1000 || n.RxPackets != 10 || n.RxErrors != 1 || n.RxDropped != 2 || n.TxBytes != 2000 || n.TxPackets != 20 || n.TxErrors != 3 || n.TxDropped != 4 {
		t.Errorf("eth0 %+v", n)
	}
	if s := h.Collect(cg, 42, false); s.Networks != nil {
		t.Error("host network: networks reported")
	}
}

func TestCollectV2(t *testing.T) {
	root := t.TempDir()
	d := "sys/fs/cgroup/berth/c2/"
	write(t, root, map[string]string{
		"proc/stat":          procStat,
		d + "cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 9\n",
		d + "memory.current": "2097152\n",
		d + "memory.max":     "67108864\n",
		d + "memory.stat":    "anon 1024\ninactive_file 4096\n",
		d + "pids.current":   "2\n",
		d + "pids.max":       "50\n",
		d + "io.stat":        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
	})
	h := &Host{Root: root, MemTotal: 1 << 30}
	s := h.Collect("/berth/c2", 0, true)
	if u := s.CPUStats.CPUUsage; u.TotalUsage != 1500e3 || u.UsageInUsermode != 1000e3 || u.UsageInKernelmode != 500e3 {
		t.Errorf("cpu %+v", u)
	}
	if th := s.CPUStats.ThrottlingData; th.Periods != 4 || th.ThrottledPeriods != 1 || th.ThrottledTime != 9000 {
		t.Errorf("throttling %+v", th)
	}
	if m := s.MemoryStats; m.Usage != 2<<20 || m.Limit != 64<<20 || m.Stats["inactive_file"] != 4096 {
		t.Errorf("memory %+v", m)
	}
	if s.PidsStats.Current != 2 || s.PidsStats.Limit != 50 {
		t.Errorf("pids %+v", s.PidsStats)
	}
	b := s.BlkioStats.IoServiceBytesRecursive
	if len(b) != 2 || b[0].Op != "read" || b[0].Value != 4096 || b[1].Op != "write" || b[1].Value != 8192 {
		t.Errorf("io %+v", s.BlkioStats)
	}
	if sv := s.BlkioStats.IoServicedRecursive; len(sv) != 2 || sv[1].Value != 2 {
		t.Errorf("ios %+v", sv)
	}
}
