// Package deploy checks the deployment files.
package deploy

import (
	"os/exec"
	"testing"
)

// TestComposeConfig checks that docker-compose accepts docker-compose.yml.
func TestComposeConfig(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not installed (make deps installs it)")
	}
	cmd := exec.Command("docker-compose", "-f", "../../docker-compose.yml", "config", "-q")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}
