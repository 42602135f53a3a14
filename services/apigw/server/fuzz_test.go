package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzRequest sends arbitrary HTTP requests (request line, headers, body)
// to the whole API with no bus behind it: whatever the input, apigw must
// answer without panicking, never with a 500, and with Docker's JSON error
// body when it refuses.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
		"HEAD /v1.51/_ping HTTP/1.1\r\nHost: d\r\n\r\n",
		"GET /v1.12/version HTTP/1.1\r\nHost: d\r\n\r\n",
		"POST /v1.50/containers/create?name=x HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n{\"Image\":\"busybox\"}\r\n",
		"GET /containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%22%5D%7D HTTP/1.1\r\nHost: d\r\n\r\n",
		"POST /containers/x/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: d\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
		"GET /events?since=1&until=2&filters=%7B%7D HTTP/1.1\r\nHost: d\r\n\r\n",
		"POST /images/create?fromImage=busybox&tag=latest HTTP/1.1\r\nHost: d\r\nX-Registry-Auth: e30=\r\n\r\n",
		"DELETE /v99.0/containers/x?force=maybe HTTP/1.1\r\nHost: d\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := New(Config{Node: testNode, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := s.Handler()
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return // net/http's own parser refused it: the server never sees it
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: status %d: %s", req.Method, req.URL, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && req.Method != http.MethodHead {
			var m struct{ Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m.Message == "" {
				t.Fatalf("%s %s: status %d with body %q, want {\"message\": …}", req.Method, req.URL, rec.Code, rec.Body)
			}
		}
	})
}
