package main

import (
	"os/exec"
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
