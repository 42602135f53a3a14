package shim

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestMetricsHTTP: the hand-written /metrics server speaks enough HTTP/1.1.
func TestMetricsHTTP(t *testing.T) {
	d := &daemon{metrics: &metrics{}}
	d.metrics.out[0].Store(42)
	for _, c := range []struct {
		req, status, body string
	}{
		{"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "200 OK", `berth_shim_output_bytes_total{stream="stdout"} 42`},
		{"GET /metrics?x=1 HTTP/1.0\n\n", "200 OK", "berth_shim_go_heap_inuse_bytes"},
		{"HEAD /metrics HTTP/1.1\r\n\r\n", "200 OK", ""},
		{"GET / HTTP/1.1\r\n\r\n", "404 Not Found", "404 page not found"},
		{"POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed", ""},
		{"garbage\r\n\r\n", "400 Bad Request", ""},
		{"GET /metrics HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", "431 Request Header Fields Too Large", ""},
	} {
		client, server := net.Pipe()
		go d.serveHTTP(server)
		go io.WriteString(client, c.req)
		resp, err := http.ReadResponse(bufio.NewReader(client), &http.Request{Method: strings.Fields(c.req)[0]})
		if err != nil {
			t.Fatalf("%.30q: %v", c.req, err)
		}
		body, _ := io.ReadAll(resp.Body)
		client.Close()
		if resp.Status != c.status || !strings.Contains(string(body), c.body) {
			t.Errorf("%.30q: %s %q", c.req, resp.Status, body)
		}
		if c.status == "200 OK" && resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
			t.Errorf("content type %q", resp.Header.Get("Content-Type"))
		}
	}
}
