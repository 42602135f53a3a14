package shim

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
)

// tuneMemory keeps the shim small: there is one per container, so its
// resident size is multiplied by the number of containers. The shim does
// little work, so frequent GC costs nothing that matters.
func tuneMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		goruntime.GOMAXPROCS(1)
	}
}

// serveMetrics serves /metrics on a loopback ephemeral port and writes the
// address to <stateDir>/metrics.addr. The format is Prometheus' text
// exposition, written by hand: client_golang would cost the shim more
// memory than everything else it does.
func (d *daemon) serveMetrics() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.log.Warn("metrics listener", "err", err)
		return
	}
	if err := os.WriteFile(filepath.Join(d.cfg.StateDir, bus.ShimMetricsFile), []byte(l.Addr().String()), 0o644); err != nil {
		d.log.Warn("write metrics address", "err", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", d.writeMetrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
}

func (d *daemon) writeMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := d.metrics
	var logBytes int64
	if d.logw != nil {
		logBytes = d.logw.Written()
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	fmt.Fprintf(w, `# HELP berth_shim_output_bytes_total Bytes the container wrote to stdout and stderr.
# TYPE berth_shim_output_bytes_total counter
berth_shim_output_bytes_total{stream="stdout"} %d
berth_shim_output_bytes_total{stream="stderr"} %d
# HELP berth_shim_input_bytes_total Bytes written to the container's stdin.
# TYPE berth_shim_input_bytes_total counter
berth_shim_input_bytes_total %d
# HELP berth_shim_log_bytes_total Bytes written to the container's json-file log.
# TYPE berth_shim_log_bytes_total counter
berth_shim_log_bytes_total %d
# HELP berth_shim_exit_reports_pending Exit reports waiting for the supervisor's acknowledgement.
# TYPE berth_shim_exit_reports_pending gauge
berth_shim_exit_reports_pending %d
# HELP berth_shim_exit_report_retries_total Failed attempts to deliver the exit report.
# TYPE berth_shim_exit_report_retries_total counter
berth_shim_exit_report_retries_total %d
# HELP berth_shim_go_heap_inuse_bytes Go heap in use.
# TYPE berth_shim_go_heap_inuse_bytes gauge
berth_shim_go_heap_inuse_bytes %d
`, m.out[0].Load(), m.out[1].Load(), m.in.Load(), logBytes, m.pending.Load(), m.retries.Load(), ms.HeapInuse)
}

// trimLoop trims the shim's memory now and then (every
// BERTH_SHIM_TRIM_INTERVAL, default 30s) until stop is closed.
func trimLoop(stop <-chan struct{}) {
	every := 30 * time.Second
	if v, err := time.ParseDuration(os.Getenv("BERTH_SHIM_TRIM_INTERVAL")); err == nil && v > 0 {
		every = v
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		trimMemory()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// trimMemory gives back what the shim's start-up used and its steady state
// does not: freed heap (FreeOSMemory), and the pages of its executable (and
// libraries) that start-up mapped in: creating a container runs code —
// exec, JSON, the runtime's error parsing — that an idle shim never runs
// again. Only read-only file mappings without a single private (written)
// page are dropped: MADV_DONTNEED on them just unmaps clean page-cache
// pages, which the next access maps again.
func trimMemory() {
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	var start, end uint64
	candidate := false
	var drop [][2]uint64 // dropped at the end: the scan itself runs code
	flush := func() {
		if candidate && end > start && len(drop) < 64 {
			drop = append(drop, [2]uint64{start, end})
		}
		candidate = false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1024), 4096)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 && !strings.HasSuffix(f[0], ":") {
			// A mapping's header: "start-end perms offset dev inode [path]".
			flush()
			var err1, err2 error
			start, err1 = strconv.ParseUint(lo, 16, 64)
			end, err2 = strconv.ParseUint(hi, 16, 64)
			candidate = err1 == nil && err2 == nil && len(f) >= 6 &&
				strings.HasPrefix(f[5], "/") && (f[1] == "r-xp" || f[1] == "r--p")
			continue
		}
		if f[0] == "Anonymous:" && len(f) >= 2 && f[1] != "0" {
			candidate = false // written pages (relocations): never drop
		}
	}
	flush()
	for _, r := range drop {
		unix.Syscall(unix.SYS_MADVISE, uintptr(r[0]), uintptr(r[1]-r[0]), unix.MADV_DONTNEED)
	}
}
