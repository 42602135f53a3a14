package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestComposeProject: Debian's docker-compose (docker-py underneath), a
// client that people drive berth with, brings up a project — its network,
// named volume, a published port, a healthcheck, one service reaching
// another by its name — and takes it all down again.
func TestComposeProject(t *testing.T) {
	s := shared(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose is not installed (make deps installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "docker-compose.yml"), []byte(`version: "3.8"
services:
  web:
    image: busybox
    command: sh -c "mkdir -p /www && echo composed > /www/index.html && exec httpd -f -p 80 -h /www"
    ports: ["`+port+`:80"]
    volumes: ["data:/data"]
    healthcheck: {test: ["CMD", "true"], interval: 1s}
  client:
    image: busybox
    command: sh -c "until wget -q -O - http://web/; do sleep 0.2; done; exec sleep 600"
    depends_on: [web]
volumes:
  data: {}
`), 0o644)
	project := uniq("proj")
	compose := func(args ...string) (string, error) {
		cmd := exec.Command("docker-compose", append([]string{"-p", project}, args...)...)
		cmd.Dir, cmd.Env = dir, s.Env()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	defer compose("down", "-v")
	deadline := time.Now().Add(20 * time.Second)
	var logs, health string
	for time.Now().Before(deadline) {
		logs, _, _ = s.Docker("logs", project+"_client_1")
		health, _, _ = s.Docker("inspect", "-f", "{{.State.Health.Status}}", project+"_web_1")
		if strings.Contains(logs, "composed") && health == "healthy" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs, "composed") || health != "healthy" {
		t.Fatalf("client's logs %q, web's health %q", logs, health)
	}
	if body, err := exec.Command("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:"+port+"/").Output(); err != nil || string(body) != "composed\n" {
		t.Fatalf("the published port: %v %q", err, body)
	}
	if out, err := compose("down", "-v"); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	label := "label=com.docker.compose.project=" + project
	for _, list := range [][]string{{"ps", "-aq", "--filter", label}, {"network", "ls", "-q", "--filter", label}, {"volume", "ls", "-q", "--filter", label}} {
		if out := s.MustDocker(list...); out != "" {
			t.Errorf("docker %s after down: %q", strings.Join(list[:2], " "), out)
		}
	}
}
