package server

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerCLI runs the stock docker CLI against the test server.
func (e *testEnv) dockerCLI(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+e.sock, "DOCKER_CONFIG="+e.dockerConfig())
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimRight(out.String(), "\n"), errb.String(), code
}

func (e *testEnv) dockerConfig() string {
	dir := filepath.Join(os.TempDir(), "apigw-docker-config")
	_ = os.MkdirAll(dir, 0o700)
	return dir
}

func needDockerCLI(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("needs the docker CLI")
	}
}

func TestDockerCLI(t *testing.T) {
	needDockerCLI(t)
	e := newEnv(t)
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		want  string
		code  int
	}{
		{"version", "", []string{"version", "--format", "{{.Server.APIVersion}} {{.Server.Version}}"}, "1.51 " + EngineVersion, 0},
		{"info", "", []string{"info", "--format", "{{.ID}} {{.OSType}}"}, "fake linux", 0},
		{"images", "", []string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, "busybox:latest", 0},
		{"ps empty", "", []string{"ps", "-a", "--format", "{{.Names}}"}, "", 0},
		{"run", "", []string{"run", "--rm", "busybox", "echo", "hello"}, "hello", 0},
		{"run exit", "", []string{"run", "--rm", "busybox", "sh", "-c", "exit 3"}, "", 3},
		{"run stdin", "piped\n", []string{"run", "--rm", "-i", "busybox", "cat"}, "piped", 0},
		{"run no image", "", []string{"run", "--rm", "nosuch", "true"}, "", 125},
		{"run no cmd", "", []string{"run", "--rm", "busybox", "/no/such/binary"}, "", 127},
	} {
		t.Logf("docker %s", strings.Join(c.args, " "))
		out, errOut, code := e.dockerCLI(c.stdin, c.args...)
		if out != c.want || code != c.code {
			t.Errorf("%s: got %q exit %d (stderr %q), want %q exit %d", c.name, out, code, errOut, c.want, c.code)
		}
	}
	_, errOut, _ := e.dockerCLI("", "run", "--rm", "nosuch", "true")
	if !strings.Contains(errOut, "pull access denied for nosuch") {
		t.Errorf("pull error: %q", errOut)
	}
}

// TestAcceptanceScriptAgainstFake runs the project's acceptance script
// against apigw with the fake supervisor: it checks apigw's half of every
// scenario (the real stack is the lead's end-to-end test).
func TestAcceptanceScriptAgainstFake(t *testing.T) {
	needDockerCLI(t)
	script, _ := filepath.Abs("../../../../shared/acceptance/docker-cli.sh")
	if _, err := os.Stat(script); err != nil {
		t.Skip("acceptance script not found")
	}
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t)
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+e.sock, "DOCKER_CONFIG="+e.dockerConfig(), "IMAGE=busybox")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("acceptance script (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("acceptance script failed: %v", err)
	}
}

func TestDockerCLIImagesAndMore(t *testing.T) {
	needDockerCLI(t)
	e := newEnv(t)
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarPath, bytes.Repeat([]byte("tar!"), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(want string, wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := e.dockerCLI("", args...)
		if code != wantCode || (want != "*" && out != want) {
			t.Fatalf("docker %s: %q exit %d (stderr %q), want %q exit %d", strings.Join(args, " "), out, code, errOut, want, wantCode)
		}
		return out
	}
	id := run("*", 0, "import", "--change", "ENV X=1", "-m", "imported", tarPath, "myimg:v1")
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("import printed %q", id)
	}
	run("X=1", 0, "image", "inspect", "-f", "{{index .Config.Env 0}}", "myimg:v1")
	run("", 0, "tag", "myimg:v1", "localhost:5000/team/myimg:v2")
	run("localhost:5000/team/myimg:v2", 0, "images", "--format", "{{.Repository}}:{{.Tag}}", "localhost:5000/team/myimg")
	run("*", 0, "rmi", "localhost:5000/team/myimg:v2")
	run("*", 1, "image", "inspect", "nosuchimage")

	run("*", 0, "run", "-d", "--name", "lg", "busybox", "sh", "-c", "echo one; echo two; sleep 300")
	time.Sleep(100 * time.Millisecond)
	run("two", 0, "logs", "--tail", "1", "lg")
	out := run("*", 0, "logs", "-t", "lg")
	if !strings.Contains(out, "Z one") {
		t.Fatalf("logs -t: %q", out)
	}
	run("", 0, "rename", "lg", "lg2")
	run("lg2", 0, "ps", "--filter", "name=lg", "--format", "{{.Names}}")
	run("lg2", 0, "ps", "--filter", "ancestor=busybox", "--format", "{{.Names}}")
	run("running", 0, "inspect", "-f", "{{.State.Status}}", "lg2")
	run("lg2", 0, "restart", "-t", "0", "lg2")
	run("lg2", 0, "rm", "-f", "lg2")
	run("*", 0, "create", "--name", "pr", "busybox", "true")
	out = run("*", 0, "container", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers") {
		t.Fatalf("prune: %q", out)
	}
	_, errOut, code := e.dockerCLI("", "run", "--name", "x", "busybox")
	if code != 125 || !strings.Contains(errOut, "Invalid container name (x)") {
		t.Fatalf("bad name: %d %q", code, errOut)
	}
}
