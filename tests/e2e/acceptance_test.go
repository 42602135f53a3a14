package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSharedAcceptance runs ../shared/acceptance/docker-cli.sh against the stack.
func TestSharedAcceptance(t *testing.T) {
	s := shared(t)
	script := sharedScript(t)
	cmd := exec.Command("bash", script)
	cmd.Env = append(s.Env(), "IMAGE=busybox")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if err != nil || !strings.HasSuffix(last, " 0 failed") {
		t.Fatalf("acceptance script: %v; last line %q", err, last)
	}
}
