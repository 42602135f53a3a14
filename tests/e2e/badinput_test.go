package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth/tests/stack"
)

func busyboxTar(t *testing.T) []byte {
	t.Helper()
	root, err := stack.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "./deploy/mkbusybox")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leftovers lists container records, bundles, shims and mounts of the stack.
func leftovers(s *stack.Stack) []string {
	var out []string
	for _, pattern := range []string{
		filepath.Join(s.Root, "containers", "*"),
		filepath.Join(s.ExecRoot, "bundles", "*"),
		filepath.Join(s.ExecRoot, "shims", "*"),
		filepath.Join(s.ExecRoot, "runtime", "*"),
		filepath.Join(s.Root, "volumes", "*"),
	} {
		m, _ := filepath.Glob(pattern)
		out = append(out, m...)
	}
	for _, m := range stack.Mounts(filepath.Dir(s.Root)) {
		out = append(out, "mount "+m)
	}
	return out
}

func TestBadInputLeavesNothing(t *testing.T) {
	s := shared(t)
	// remove what other tests left so the before/after comparison is exact
	if ids := s.MustDocker("ps", "-aq"); ids != "" {
		s.Docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	before := leftovers(s)
	cases := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"malformed-json", "POST", "/containers/create", `{"Image":`, 400, ""},
		{"wrong-type", "POST", "/containers/create", `{"Image":"busybox","Cmd":42}`, 400, ""},
		{"wrong-type-hostconfig", "POST", "/containers/create", `{"Image":"busybox","HostConfig":{"Memory":"lots"}}`, 400, ""},
		{"no-image", "POST", "/containers/create", `{"Image":"no-such-image-e2e"}`, 404, "No such image: no-such-image-e2e:latest"},
		{"empty-image", "POST", "/containers/create", `{}`, 400, ""},
		{"bad-name", "POST", "/containers/create?name=../../etc", `{"Image":"busybox"}`, 400, "Invalid container name"},
		{"unknown-endpoint", "GET", "/nope/nothing", "", 404, "page not found"},
		{"unknown-container", "POST", "/containers/nonexistent-e2e/start", "", 404, "No such container: nonexistent-e2e"},
		{"bad-signal", "POST", "/containers/nonexistent-e2e/kill?signal=SIGNOPE", "", 0, ""},
		{"too-new", "GET", "/v9.99/version", "", 400, "too new"},
		{"oversized", "POST", "/containers/create", `{"Image":"busybox","Env":["` + strings.Repeat("x", 20<<20) + `"]}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, msg := call(t, s, c.method, c.path, c.body)
			if c.status == 0 {
				if st < 400 {
					t.Fatalf("status %d: %s", st, msg)
				}
				return
			}
			if st != c.status && !(c.status == 413 && st == 400) {
				t.Fatalf("status %d want %d (%s)", st, c.status, msg)
			}
			if !strings.Contains(msg, c.msg) {
				t.Fatalf("message %q lacks %q", msg, c.msg)
			}
		})
	}
	// start failing in the runtime leaves no mount, bundle or shim behind
	if _, _, code := s.Docker("run", "--name", "e2e-fails", "busybox", "/no/such/binary"); code != 127 {
		t.Fatalf("run of a missing binary: exit %d", code)
	}
	id := s.MustDocker("inspect", "-f", "{{.Id}}", "e2e-fails")
	s.MustDocker("rm", "e2e-fails")
	after := leftovers(s)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("left behind:\nbefore %v\nafter  %v", before, after)
	}
	if cg, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id); len(cg) > 0 {
		t.Fatalf("cgroups left: %v", cg)
	}
}
