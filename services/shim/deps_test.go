package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShimLinksNothingHeavy keeps out of berth-shim the packages that cost
// every container megabytes of resident memory (docs/benchmarks.md, "Shim
// memory"): nats.go, net/http, crypto and Docker's API types.
func TestShimLinksNothingHeavy(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/nats-io/nats.go", "net/http", "crypto/", "github.com/docker/", "github.com/opencontainers/image-spec", "regexp"} {
			if p == strings.TrimSuffix(bad, "/") || strings.HasPrefix(p, bad) {
				t.Errorf("berth-shim links %s", p)
			}
		}
	}
}

// TestShimLinksNoResolver: Go's DNS resolver is a fifth of the shim's
// binary; anything taking a host name (net.Dial, net.Listen) links it.
// natslite dials and resolves without it.
func TestShimLinksNoResolver(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	bin := filepath.Join(t.TempDir(), "berth-shim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v %s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	if strings.Contains(string(out), "net.(*Resolver)") {
		t.Error("berth-shim links net.Resolver")
	}
}
