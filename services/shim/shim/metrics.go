package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
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

// BERTH_SHIM_TRIM chooses what trimMemory does, to measure the shim's
// memory with and without it: "off" nothing; "heap" only FreeOSMemory;
// "full" both; anything else (the default) only the pages of the
// executable. FreeOSMemory is not the default: an idle shim's heap never
// reaches the first GC's trigger, and a forced GC allocates the collector's
// own structures, which stay — measured, it adds about 0.4 MiB of private
// memory and frees nothing worth it.
var (
	trimMode  = os.Getenv("BERTH_SHIM_TRIM")
	trimOff   = trimMode == "off"
	trimHeap  = trimMode == "heap" || trimMode == "full"
	trimPages = trimMode != "heap" && trimMode != "off"
)

// trimLoop trims the shim's memory now and then (every
// BERTH_SHIM_TRIM_INTERVAL, default 30s) until stop is closed. The first
// trim comes a second (at most) after the start, not at once: containers
// are often started many at a time, and the trim (a scan of smaps, a full
// GC) would compete with their start for the CPU.
func trimLoop(stop <-chan struct{}) {
	every := 30 * time.Second
	if v, err := time.ParseDuration(os.Getenv("BERTH_SHIM_TRIM_INTERVAL")); err == nil && v > 0 {
		every = v
	}
	first := time.NewTimer(min(every, time.Second))
	select {
	case <-stop:
		first.Stop()
		return
	case <-first.C:
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
// does not: the pages of its executable (and libraries) that start-up
// mapped in — creating a container runs code (exec, JSON, the runtime's
// error parsing) that an idle shim never runs again. Only read-only file
// mappings without a single private (written) page are dropped:
// MADV_DONTNEED on them just unmaps clean page-cache pages, which the next
// access maps again. Those pages are shared with every other shim (and the
// page cache), so this lowers each shim's RSS, not the machine's memory
// use: see docs/benchmarks.md. With BERTH_SHIM_TRIM=heap or full it also
// returns freed heap (FreeOSMemory); the scan of smaps comes first and
// allocates next to nothing.
func trimMemory() {
	if trimOff {
		return
	}
	var drop [64][2]uint64
	n := 0
	if trimPages {
		n = scanDroppable(&drop)
	}
	if trimHeap {
		debug.FreeOSMemory()
	}
	for _, r := range drop[:n] {
		unix.Syscall(unix.SYS_MADVISE, uintptr(r[0]), uintptr(r[1]-r[0]), unix.MADV_DONTNEED)
	}
}

// scanDroppable lists (up to len(drop)) the read-only file mappings of the
// process that hold no private page.
func scanDroppable(drop *[64][2]uint64) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	var start, end uint64
	candidate := false
	flush := func() {
		if candidate && end > start && n < len(drop) {
			drop[n] = [2]uint64{start, end}
			n++
		}
		candidate = false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if isHexDigit(line[0]) {
			// A mapping's header: "start-end perms offset dev inode [path]".
			flush()
			lo, rest, ok := bytes.Cut(line, []byte{'-'})
			hi, rest, ok2 := bytes.Cut(rest, []byte{' '})
			if !ok || !ok2 || len(rest) < 4 {
				continue
			}
			start, end = parseHex(lo), parseHex(hi)
			perms := rest[:4]
			candidate = (string(perms) == "r-xp" || string(perms) == "r--p") && bytes.Contains(rest, []byte(" /"))
			continue
		}
		if bytes.HasPrefix(line, []byte("Anonymous:")) && !bytes.HasSuffix(bytes.TrimSpace(bytes.TrimSuffix(line, []byte("kB"))), []byte(" 0")) {
			candidate = false // written pages (relocations): never drop
		}
	}
	flush()
	return n
}

func isHexDigit(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func parseHex(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0
		}
	}
	return v
}
