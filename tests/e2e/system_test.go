package e2e

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestSystemEndpoints(t *testing.T) {
	s := shared(t)
	for _, method := range []string{"GET", "HEAD"} {
		req, _ := http.NewRequest(method, "http://berth/_ping", nil)
		resp, err := api(s).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Api-Version") == "" || resp.Header.Get("Ostype") != "linux" {
			t.Fatalf("%s /_ping: %d %v", method, resp.StatusCode, resp.Header)
		}
		if method == "GET" && string(body) != "OK" {
			t.Fatalf("GET /_ping body %q", body)
		}
	}
	if got := s.MustDocker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"); got != "1.51 linux" {
		t.Fatalf("version: %q", got)
	}
	name := uniq("info")
	s.MustDocker("run", "-d", "--name", name, "busybox", "sleep", "300")
	defer s.Docker("rm", "-f", name)
	info := s.MustDocker("info", "--format", "{{.ContainersRunning}} {{.OSType}} {{.Driver}}")
	f := strings.Fields(info)
	if len(f) != 3 || f[0] == "0" || f[1] != "linux" {
		t.Fatalf("info: %q", info)
	}
	if perm := socketMode(t, strings.TrimPrefix(s.Host, "unix://")); perm != 0o660 {
		t.Fatalf("socket mode %o, want 660", perm)
	}
}

func socketMode(t *testing.T, path string) os.FileMode {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestMetrics checks that operators' scrapes see what the issue names.
func TestMetrics(t *testing.T) {
	s := shared(t)
	s.MustDocker("run", "--rm", "busybox", "true")
	scrape := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	sup := scrape(s.SupervisorMetrics)
	for _, m := range []string{"berth_supervisor_containers", "berth_supervisor_commands_total", "berth_supervisor_command_duration_seconds",
		"berth_supervisor_create_to_running_seconds", "berth_supervisor_shims_running", "berth_supervisor_bus_errors_total"} {
		if !strings.Contains(sup, m) {
			t.Errorf("supervisor metrics lack %s", m)
		}
	}
	if !strings.Contains(sup, `berth_supervisor_commands_total{outcome="ok",verb="containers.start"}`) {
		t.Errorf("no successful start counted")
	}
	gw := scrape(s.APIGWMetrics)
	for _, m := range []string{"berth_apigw_requests_total", "berth_apigw_request_duration_seconds", "berth_apigw_bus_errors_total", "berth_apigw_attach_sessions"} {
		if !strings.Contains(gw, m) {
			t.Errorf("apigw metrics lack %s", m)
		}
	}
}
