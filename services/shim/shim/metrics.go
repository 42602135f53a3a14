package shim

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"

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
// memory than everything else it does. So would net/http: the server is a
// few lines of HTTP/1.1 (one request per connection, answered with
// Connection: close), enough for Prometheus, curl and Go's client.
func (d *daemon) serveMetrics() {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		d.log.Warn("metrics listener", "err", err)
		return
	}
	if err := os.WriteFile(filepath.Join(d.cfg.StateDir, bus.ShimMetricsFile), []byte(l.Addr().String()), 0o644); err != nil {
		d.log.Warn("write metrics address", "err", err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				return
			}
			go d.serveHTTP(c)
		}
	}()
}

// serveHTTP answers one HTTP request on c: GET (or HEAD) /metrics.
func (d *daemon) serveHTTP(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// The request line and headers, up to the blank line (8 KiB at most).
	buf := make([]byte, 0, 1024)
	var chunk [512]byte
	for !bytes.Contains(buf, []byte("\r\n\r\n")) && !bytes.Contains(buf, []byte("\n\n")) {
		if len(buf) > 8192 {
			io.WriteString(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		n, err := c.Read(chunk[:])
		buf = append(buf, chunk[:n]...)
		if err != nil {
			return
		}
	}
	line, _, _ := bytes.Cut(buf, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	method, path := f[0], f[1]
	path, _, _ = strings.Cut(path, "?")
	switch {
	case path != "/metrics":
		io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n")
		return
	case method != "GET" && method != "HEAD":
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		return
	}
	var body bytes.Buffer
	d.writeMetrics(&body)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", body.Len())
	if method == "GET" {
		c.Write(body.Bytes())
	}
}

// writeMetrics writes the shim's metrics in Prometheus' text format.
func (d *daemon) writeMetrics(w io.Writer) {
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
