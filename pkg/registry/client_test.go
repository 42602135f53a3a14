package registry

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestParseChallenge(t *testing.T) {
	scheme, p := parseChallenge(`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`)
	if scheme != "Bearer" || p["realm"] != "https://auth.example/token" || p["service"] != "registry.example" || p["scope"] != "repository:a/b:pull,push" {
		t.Fatalf("%s %v", scheme, p)
	}
	if scheme, p := parseChallenge(`Basic realm=registry`); scheme != "Basic" || p["realm"] != "registry" {
		t.Fatalf("%s %v", scheme, p)
	}
}

func TestInsecure(t *testing.T) {
	c, err := New(Config{Insecure: []string{"reg.example:5000", "10.1.0.0/16"}})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "reg.example:5000": true,
		"10.1.2.3:443": true, "10.2.0.1": false, "reg.example:5001": false, "192.0.2.1": false,
	} {
		if got := c.IsInsecure(host); got != want {
			t.Errorf("IsInsecure(%s) = %v", host, got)
		}
	}
	if _, err := New(Config{Insecure: []string{"bad value/x"}}); err == nil {
		t.Error("a bad --insecure-registry value was accepted")
	}
}

// A secure registry's certificate is checked: trusted through
// <certs-dir>/<host>/ca.crt, refused without it.
func TestCertsDir(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	dir := t.TempDir()
	c, _ := New(Config{CertsDir: dir})
	hc, err := c.httpClient(host, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hc.Get(srv.URL + "/v2/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, host), 0o755)
	os.WriteFile(filepath.Join(dir, host, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	c, _ = New(Config{CertsDir: dir})
	hc, err = c.httpClient(host, false)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(srv.URL + "/v2/")
	if err != nil {
		t.Fatalf("trusted certificate refused: %v", err)
	}
	resp.Body.Close()
}

// Tags follows the registry's Link header through every page.
func TestTagsPages(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/berth/x/tags/list" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("last") == "" {
			w.Header().Set("Link", `</v2/berth/x/tags/list?last=b&n=2>; rel="next"`)
			w.Write([]byte(`{"name":"berth/x","tags":["a","b"]}`))
			return
		}
		w.Write([]byte(`{"name":"berth/x","tags":["c"]}`))
	}))
	defer srv.Close()
	c, _ := New(Config{})
	named, err := reference.ParseNormalizedNamed(strings.TrimPrefix(srv.URL, "http://") + "/berth/x")
	if err != nil {
		t.Fatal(err)
	}
	tags, err := c.Repository(named, Auth{}, false).Tags(context.Background())
	if err != nil || strings.Join(tags, ",") != "a,b,c" {
		t.Fatalf("tags %v, %v", tags, err)
	}
}
