package server

//lint:file-ignore SA1019 events keep the legacy status/id/from fields that older API clients still read

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"berth/pkg/bus"
)

func (e *testEnv) sdk(opts ...client.Opt) *client.Client {
	e.t.Helper()
	opts = append([]client.Opt{client.WithHost("unix://" + e.sock)}, opts...)
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func TestPing(t *testing.T) {
	e := newEnv(t, envOpts{noSupervisor: true})
	for _, p := range []string{"/_ping", "/v1.45/_ping"} {
		code, h, body := e.do("GET", p, nil)
		if code != 200 || string(body) != "OK" {
			t.Fatalf("GET %s: %d %q", p, code, body)
		}
		for k, v := range map[string]string{"Api-Version": "1.51", "Docker-Experimental": "false", "Ostype": "linux", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"} {
			if h.Get(k) != v {
				t.Errorf("GET %s: header %s = %q, want %q", p, k, h.Get(k), v)
			}
		}
	}
	code, h, body := e.do("HEAD", "/_ping", nil)
	if code != 200 || len(body) != 0 || h.Get("Api-Version") != "1.51" {
		t.Fatalf("HEAD: %d %q %v", code, body, h)
	}
}

func TestVersionNegotiationAndNotFound(t *testing.T) {
	e := newEnv(t, envOpts{noSupervisor: true})
	code, _, body := e.do("GET", "/v1.99/version", nil)
	if code != 400 || errMessage(t, body) != "client version 1.99 is too new. Maximum supported API version is 1.51" {
		t.Fatalf("too new: %d %s", code, body)
	}
	code, _, body = e.do("GET", "/v1.12/version", nil)
	if code != 400 || !strings.Contains(errMessage(t, body), "too old") {
		t.Fatalf("too old: %d %s", code, body)
	}
	for _, p := range []string{"/nope", "/v1.44/nope", "/containers/x/frobnicate", "/vx/version"} {
		code, _, body = e.do("GET", p, nil)
		if code != 404 || errMessage(t, body) != "page not found" {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	var v struct {
		ApiVersion, MinAPIVersion, Version, Os, Arch, KernelVersion string
		Components                                                  []struct{ Name string }
	}
	if code := e.doJSON("GET", "/v1.44/version", nil, &v); code != 200 {
		t.Fatal(code)
	}
	if v.ApiVersion != "1.51" || v.MinAPIVersion != "1.24" || v.Version != EngineVersion || v.Os != "linux" || len(v.Components) == 0 {
		t.Fatalf("version: %+v", v)
	}

	// The SDK negotiates down to what the server offers, or keeps its own.
	c := e.sdk(client.WithAPIVersionNegotiation())
	if _, err := c.ServerVersion(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.ClientVersion() != "1.51" {
		t.Fatalf("negotiated %s", c.ClientVersion())
	}
	old := e.sdk(client.WithVersion("1.41"))
	if _, err := old.ServerVersion(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBusUnavailable(t *testing.T) {
	e := newEnv(t, envOpts{noSupervisor: true})
	start := time.Now()
	for _, p := range []string{"/info", "/containers/json", "/images/json", "/containers/x/json"} {
		code, _, body := e.do("GET", p, nil)
		if code != 503 || !strings.Contains(errMessage(t, body), "supervisor") {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("no responders must fail fast, took %v", time.Since(start))
	}
	if n := metricValue(e.srv.metrics.busErrors); n < 4 {
		t.Fatalf("bus errors metric = %v", n)
	}
	// No connection at all.
	s := New(Config{Node: testNode, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "/info", nil)
	s.Handler().ServeHTTP(rec, req)
	if rec.code != 503 {
		t.Fatalf("no conn: %d %s", rec.code, rec.body.String())
	}
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }

func TestInfo(t *testing.T) {
	e := newEnv(t)
	info, err := e.sdk().Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "fake" || info.Images != 1 || info.OSType != "linux" || info.Driver != "overlay2" || info.NCPU != 2 {
		t.Fatalf("info: %+v", info)
	}
}

// TestUploadLimit: a streamed body (docker import, load) past the upload
// limit gets 413 with Docker's JSON error, and nothing stays in the uploads
// bucket.
func TestUploadLimit(t *testing.T) {
	e := newEnv(t, envOpts{maxUpload: 1 << 20})
	for _, path := range []string{"/images/create?fromSrc=-&repo=big", "/images/load"} {
		code, _, body := e.do("POST", path, strings.NewReader(strings.Repeat("z", 2<<20)), "Content-Type", "application/x-tar")
		if code != 413 || !strings.Contains(errMessage(t, body), "request body too large") {
			t.Errorf("%s: got %d %s, want 413 request body too large", path, code, body)
		}
	}
	store, err := e.js.ObjectStore(context.Background(), bus.UploadsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if objs, err := store.List(context.Background()); err == nil && len(objs) > 0 {
		t.Errorf("%d objects left in the uploads bucket, e.g. %s", len(objs), objs[0].Name)
	}
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t, envOpts{maxBody: 64 << 10})
	cases := []struct {
		name, path, body, ctype string
		code                    int
		msg                     string
	}{
		{"malformed", "/containers/create", `{"Image":`, "application/json", 400, "invalid JSON"},
		{"syntax", "/containers/create", `{"Image": busybox}`, "application/json", 400, "invalid JSON"},
		{"wrong type", "/containers/create", `{"Image":"busybox","Env":"FOO=bar"}`, "application/json", 400, "invalid JSON: field Env must be of type []string, not string"},
		{"wrong nested type", "/containers/create", `{"Image":"busybox","HostConfig":{"Memory":"lots"}}`, "application/json", 400, "HostConfig.Memory"},
		{"empty", "/containers/create", ``, "application/json", 400, "config cannot be empty"},
		{"no image", "/containers/create", `{"Cmd":["true"]}`, "application/json", 400, "no image"},
		{"content type", "/containers/create", `{"Image":"busybox"}`, "text/plain", 400, "unsupported Content-Type"},
		{"bad name", "/containers/create?name=a/b", `{"Image":"busybox"}`, "application/json", 400, "Invalid container name (a/b)"},
		{"no such image", "/containers/create", `{"Image":"nope"}`, "application/json", 404, "No such image: nope:latest"},
		{"oversized", "/containers/create", `{"Image":"busybox","Env":["` + strings.Repeat("x", 100<<10) + `"]}`, "application/json", 413, "too large"},
	}
	for _, c := range cases {
		code, _, body := e.do("POST", c.path, strings.NewReader(c.body), "Content-Type", c.ctype)
		if code != c.code || !strings.Contains(errMessage(t, body), c.msg) {
			t.Errorf("%s: got %d %s, want %d %q", c.name, code, body, c.code, c.msg)
		}
	}
	// Chunked (no Content-Length) oversized body.
	req, _ := http.NewRequest("POST", "http://docker/containers/create", io.MultiReader(strings.NewReader(`{"Image":"busybox","Env":["`), strings.NewReader(strings.Repeat("y", 100<<10)), strings.NewReader(`"]}`)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked oversized: %d", resp.StatusCode)
	}
	if n := e.sup.count("containers.create"); n != 1 {
		t.Errorf("only the no-such-image case may reach the supervisor, got %d creates", n)
	}
}

func TestContainerLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk(client.WithAPIVersionNegotiation())
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"sleep", "300"}, Labels: map[string]string{"app": "web"}}, nil, nil, nil, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.ID) != 64 || cr.Warnings == nil {
		t.Fatalf("create: %+v", cr)
	}
	if _, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox"}, nil, nil, nil, "web1"); err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("conflict: %v", err)
	}
	if err := c.ContainerStart(ctx, "web1", container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	code, _, _ := e.do("POST", "/v1.51/containers/web1/start", nil)
	if code != 304 {
		t.Fatalf("start again: %d", code)
	}
	ins, err := c.ContainerInspect(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if ins.Name != "/web1" || ins.State.Status != "running" || !ins.State.Running || ins.Config.Image != "busybox" || ins.Path != "sleep" || ins.Args[0] != "300" || ins.Driver != "overlay2" || ins.Platform != "linux" || ins.Mounts == nil {
		t.Fatalf("inspect: %+v %+v", ins.ContainerJSONBase, ins.State)
	}
	if _, err := time.Parse(time.RFC3339Nano, ins.Created); err != nil {
		t.Fatalf("created %q: %v", ins.Created, err)
	}
	// a second, stopped container
	if _, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"true"}}, nil, nil, nil, "db1"); err != nil {
		t.Fatal(err)
	}
	list := func(o container.ListOptions) []string {
		t.Helper()
		cs, err := c.ContainerList(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range cs {
			names = append(names, s.Names[0])
		}
		return names
	}
	if got := list(container.ListOptions{}); len(got) != 1 || got[0] != "/web1" {
		t.Fatalf("ps: %v", got)
	}
	if got := list(container.ListOptions{All: true}); len(got) != 2 || got[0] != "/db1" {
		t.Fatalf("ps -a (newest first): %v", got)
	}
	if got := list(container.ListOptions{Filters: filters.NewArgs(filters.Arg("status", "created"))}); len(got) != 1 || got[0] != "/db1" {
		t.Fatalf("status=created implies all: %v", got)
	}
	if got := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "app=web"))}); len(got) != 1 || got[0] != "/web1" {
		t.Fatalf("label: %v", got)
	}
	if got := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", "busybox"))}); len(got) != 2 {
		t.Fatalf("ancestor: %v", got)
	}
	if got := list(container.ListOptions{All: true, Limit: 1}); len(got) != 1 {
		t.Fatalf("limit: %v", got)
	}
	code, _, body := e.do("GET", "/containers/json?filters="+`{"status":["bogus"]}`, nil)
	if code != 400 || !strings.Contains(errMessage(t, body), "invalid filter 'status=bogus'") {
		t.Fatalf("bad status: %d %s", code, body)
	}
	code, _, body = e.do("GET", "/containers/json?filters="+`{"colour":["red"]}`, nil)
	if code != 400 || !strings.Contains(errMessage(t, body), "invalid filter 'colour'") {
		t.Fatalf("bad key: %d %s", code, body)
	}

	if err := c.ContainerRemove(ctx, "web1", container.RemoveOptions{}); err == nil || !strings.Contains(err.Error(), "cannot remove a running container") {
		t.Fatalf("rm running: %v", err)
	}
	code, _, body = e.do("DELETE", "/containers/web1", nil)
	if code != 409 {
		t.Fatalf("rm running status %d %s", code, body)
	}
	if err := c.ContainerRename(ctx, "web1", "web2"); err != nil {
		t.Fatal(err)
	}
	if code, _, body = e.do("POST", "/containers/web2/rename?name=no/slash", nil); code != 400 {
		t.Fatalf("rename bad: %d %s", code, body)
	}
	timeout := 1
	if err := c.ContainerStop(ctx, "web2", container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ = e.do("POST", "/containers/web2/stop?t=1", nil); code != 304 {
		t.Fatalf("stop again: %d", code)
	}
	ins, _ = c.ContainerInspect(ctx, "web2")
	if ins.State.Status != "exited" || ins.State.ExitCode != 137 {
		t.Fatalf("after stop: %+v", ins.State)
	}
	if code, _, body = e.do("POST", "/containers/web2/kill?signal=NOPE", nil); code != 400 || !strings.Contains(errMessage(t, body), "invalid signal") {
		t.Fatalf("bad signal: %d %s", code, body)
	}
	if code, _, body = e.do("POST", "/containers/web2/kill", nil); code != 409 {
		t.Fatalf("kill stopped: %d %s", code, body)
	}
	if err := c.ContainerRestart(ctx, "web2", container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerKill(ctx, "web2", "TERM"); err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerRemove(ctx, "web2", container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ContainerInspect(ctx, "web2")
	if err == nil || !strings.Contains(err.Error(), "No such container: web2") {
		t.Fatalf("inspect gone: %v", err)
	}
	code, _, body = e.do("GET", "/containers/web2/json", nil)
	if code != 404 || errMessage(t, body) != "No such container: web2" {
		t.Fatalf("gone: %d %s", code, body)
	}
	rep, err := c.ContainersPrune(ctx, filters.NewArgs())
	if err != nil || len(rep.ContainersDeleted) != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if n := metricValue(e.srv.metrics.requests.WithLabelValues("/containers/{id}/json", "GET", "404")); n < 1 {
		t.Fatalf("requests metric by route: %v", n)
	}
}

func TestWaitConditions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk()
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "sleep 0.3; exit 7"}}, nil, nil, nil, "w1")
	if err != nil {
		t.Fatal(err)
	}
	// not-running on a created container answers at once, like dockerd.
	resC, errC := c.ContainerWait(ctx, cr.ID, container.WaitConditionNotRunning)
	select {
	case r := <-resC:
		if r.StatusCode != 0 {
			t.Fatalf("created: %+v", r)
		}
	case err := <-errC:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("not-running on a created container did not answer")
	}
	resC, errC = c.ContainerWait(ctx, cr.ID, container.WaitConditionNextExit)
	time.Sleep(50 * time.Millisecond)
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-resC:
		if r.StatusCode != 7 {
			t.Fatalf("next-exit: %+v", r)
		}
	case err := <-errC:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("wait timed out")
	}
	// removed, with auto-remove
	cr2, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "exit 5"}}, &container.HostConfig{AutoRemove: true}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	resC, errC = c.ContainerWait(ctx, cr2.ID, container.WaitConditionRemoved)
	time.Sleep(50 * time.Millisecond)
	if err := c.ContainerStart(ctx, cr2.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-resC:
		if r.StatusCode != 5 {
			t.Fatalf("removed: %+v", r)
		}
	case err := <-errC:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("wait removed timed out")
	}
	code, _, body := e.do("POST", "/containers/nope/wait", nil)
	if code != 404 {
		t.Fatalf("wait missing: %d %s", code, body)
	}
	code, _, _ = e.do("POST", "/containers/"+cr.ID+"/wait?condition=sometime", nil)
	if code != 400 {
		t.Fatalf("bad condition: %d", code)
	}
}

func TestAttachStdinAndLogs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk(client.WithAPIVersionNegotiation())
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"cat"}, OpenStdin: true, StdinOnce: true, AttachStdin: true}, nil, nil, nil, "catter")
	if err != nil {
		t.Fatal(err)
	}
	hr, err := c.ContainerAttach(ctx, cr.ID, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	if mt, _ := hr.MediaType(); mt != multiplexedStream {
		t.Fatalf("media type %q", mt)
	}
	// stdin is sent before the container (and its shim) exists: apigw retries.
	if _, err := hr.Conn.Write([]byte("piped\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := hr.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { _, err := stdcopy.StdCopy(&stdout, &stderr, hr.Reader); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end")
	}
	if stdout.String() != "piped\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	for i := 0; metricValue(e.srv.metrics.attachSessions) != 0; i++ {
		if i > 200 {
			t.Fatalf("attach sessions = %v after the end", metricValue(e.srv.metrics.attachSessions))
		}
		time.Sleep(10 * time.Millisecond)
	}

	// logs
	rc, err := c.ContainerLogs(ctx, "catter", container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if _, err := stdcopy.StdCopy(&stdout, &stderr, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	line := stdout.String()
	ts, rest, _ := strings.Cut(line, " ")
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || rest != "piped\n" {
		t.Fatalf("logs with timestamps: %q", line)
	}
	code, h, body := e.do("GET", "/containers/catter/logs?stdout=1", nil)
	if code != 200 || h.Get("Content-Type") != multiplexedStream || !bytes.Equal(body, append([]byte{1, 0, 0, 0, 0, 0, 0, 6}, "piped\n"...)) {
		t.Fatalf("raw logs: %d %v %q", code, h, body)
	}
	code, _, body = e.do("GET", "/containers/catter/logs", nil)
	if code != 400 || !strings.Contains(errMessage(t, body), "You must choose at least one stream") {
		t.Fatalf("no stream: %d %s", code, body)
	}
	code, _, _ = e.do("GET", "/containers/nope/logs?stdout=1", nil)
	if code != 404 {
		t.Fatalf("logs missing: %d", code)
	}
	code, _, _ = e.do("POST", "/containers/nope/attach?stream=1&stdout=1", nil)
	if code != 404 {
		t.Fatalf("attach missing: %d", code)
	}
}

// TestAttachPlainHTTP checks the non-upgrade form (200 + stream) and stderr frames.
func TestAttachPlainHTTP(t *testing.T) {
	e := newEnv(t)
	var cr struct{ Id string }
	if code := e.doJSON("POST", "/containers/create", map[string]any{"Image": "busybox", "Cmd": []string{"sh", "-c", "echo out; echo err >&2"}}, &cr); code != 201 {
		t.Fatal(code)
	}
	req, _ := http.NewRequest("POST", "http://docker/containers/"+cr.Id+"/attach?stream=1&stdout=1&stderr=1", nil)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != multiplexedStream {
		t.Fatalf("attach: %d %v", resp.StatusCode, resp.Header)
	}
	if code, _, _ := e.do("POST", "/containers/"+cr.Id+"/start", nil); code != 204 {
		t.Fatal(code)
	}
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, resp.Body); err != nil && err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk()
	since := time.Now().Add(-time.Second)
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "exit 2"}}, nil, nil, nil, "ev1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	until := time.Now().Add(300 * time.Millisecond)
	opts := events.ListOptions{
		Since:   since.Format(time.RFC3339Nano),
		Until:   until.Format(time.RFC3339Nano),
		Filters: filters.NewArgs(filters.Arg("container", "ev1"), filters.Arg("event", "die")),
	}
	msgs, errs := c.Events(ctx, opts)
	var got []events.Message
	timeout := time.After(10 * time.Second)
loop:
	for {
		select {
		case m := <-msgs:
			got = append(got, m)
		case err := <-errs:
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			break loop
		case <-timeout:
			t.Fatal("events did not end at until")
		}
	}
	if len(got) != 1 || got[0].Action != "die" || got[0].Actor.Attributes["exitCode"] != "2" || got[0].Status != "die" || got[0].ID != cr.ID {
		t.Fatalf("events: %+v", got)
	}

	// Live: a stream without since sees new events only.
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs = c.Events(ctx2, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"))})
	time.Sleep(200 * time.Millisecond)
	if err := c.ContainerRemove(ctx, "ev1", container.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m.Action != "destroy" {
			t.Fatalf("live: %+v", m)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no live event")
	}
	code, _, body := e.do("GET", "/events?filters="+`{"colour":["x"]}`, nil)
	if code != 400 {
		t.Fatalf("bad filter: %d %s", code, body)
	}
}

func TestEventsWithoutStream(t *testing.T) {
	e := newEnv(t, envOpts{noStream: true})
	code, _, body := e.do("GET", "/events", nil)
	if code != 503 || !strings.Contains(errMessage(t, body), "BERTH_EVENTS") {
		t.Fatalf("%d %s", code, body)
	}
}

func TestImages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk(client.WithAPIVersionNegotiation())
	ims, err := c.ImageList(ctx, image.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ims) != 1 || ims[0].RepoTags[0] != "busybox:latest" || ims[0].Created != 1704164645 || ims[0].Labels["org"] != "berth" {
		t.Fatalf("list: %+v", ims)
	}
	ins, err := c.ImageInspect(ctx, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	if ins.RootFS.Type != "layers" || len(ins.RootFS.Layers) != 1 || ins.Os != "linux" || ins.Config == nil || ins.Config.Cmd[0] != "sh" {
		t.Fatalf("inspect: %+v", ins)
	}
	if err := c.ImageTag(ctx, "busybox", "localhost:5000/x/y:v1"); err != nil {
		t.Fatal(err)
	}
	ins, err = c.ImageInspect(ctx, "localhost:5000/x/y:v1")
	if err != nil || ins.ID != ims[0].ID {
		t.Fatalf("inspect by slashed name: %v %+v", err, ins.ID)
	}
	ims, _ = c.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", "localhost:5000/x/*"))})
	if len(ims) != 1 {
		t.Fatalf("reference filter: %+v", ims)
	}
	del, err := c.ImageRemove(ctx, "localhost:5000/x/y:v1", image.RemoveOptions{})
	if err != nil || len(del) != 1 || del[0].Untagged != "localhost:5000/x/y:v1" {
		t.Fatalf("remove: %+v %v", del, err)
	}
	code, _, body := e.do("GET", "/images/nope/json", nil)
	if code != 404 || errMessage(t, body) != "No such image: nope" {
		t.Fatalf("missing: %d %s", code, body)
	}
	code, _, body = e.do("POST", "/images/create?fromImage=nope&tag=latest", nil)
	if code != 404 || !strings.Contains(errMessage(t, body), "pull access denied for nope") {
		t.Fatalf("pull: %d %s", code, body)
	}
	// a failure after progress began is the stream's last line
	code, _, body = e.do("POST", "/images/create?fromImage=streamed/x&tag=latest", nil)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if code != 200 || len(lines) != 3 || !strings.Contains(lines[0], "Pulling from streamed/x") ||
		lines[2] != `{"error":"downloading layer 0123456789ab: connection reset","errorDetail":{"message":"downloading layer 0123456789ab: connection reset"}}` {
		t.Fatalf("streamed pull: %d %s", code, body)
	}

	// import through the object store
	tarball := bytes.Repeat([]byte("rootfs-tar-bytes"), 100000) // 1.6 MB: several chunks
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, "myimg:v2", image.ImportOptions{Changes: []string{"ENV A=b"}, Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	var st struct{ Status string }
	if err := json.Unmarshal(out, &st); err != nil || !strings.HasPrefix(st.Status, "sha256:") {
		t.Fatalf("import answer %q: %v", out, err)
	}
	ins, err = c.ImageInspect(ctx, "myimg:v2")
	if err != nil || ins.ID != st.Status || ins.Config.Env[0] != "A=b" || ins.Comment != "hi" {
		t.Fatalf("imported: %v %+v", err, ins)
	}
	e.sup.mu.Lock()
	n := 0
	for _, b := range e.sup.imports {
		if bytes.Equal(b, tarball) {
			n++
		}
	}
	e.sup.mu.Unlock()
	if n != 1 {
		t.Fatal("the supervisor did not get the tarball intact")
	}
}

func TestResize(t *testing.T) {
	e := newEnv(t)
	var cr struct{ Id string }
	e.doJSON("POST", "/containers/create", map[string]any{"Image": "busybox", "Cmd": []string{"sleep", "9"}, "Tty": true}, &cr)
	e.do("POST", "/containers/"+cr.Id+"/start", nil)
	if code, _, body := e.do("POST", "/containers/"+cr.Id+"/resize?h=40&w=120", nil); code != 200 {
		t.Fatalf("resize: %d %s", code, body)
	}
	if code, _, _ := e.do("POST", "/containers/"+cr.Id+"/resize?h=x&w=120", nil); code != 400 {
		t.Fatalf("bad resize: %d", code)
	}
	e.do("DELETE", "/containers/"+cr.Id+"?force=1", nil)
}

// metricValue reads a counter or gauge.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestLogsFollowCancel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk()
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "echo hi; sleep 30"}, Tty: true}, nil, nil, nil, "fol")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	lctx, cancel := context.WithCancel(ctx)
	rc, err := c.ContainerLogs(lctx, "fol", container.LogsOptions{ShowStdout: true, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "hi\n" {
		t.Fatalf("tty logs are raw: %q %v", buf, err)
	}
	cancel()
	rc.Close()
	for i := 0; e.sup.count("logs.cancel") == 0; i++ {
		if i > 300 {
			t.Fatal("apigw did not cancel the follow on disconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.do("DELETE", "/containers/fol?force=1", nil)
}

func TestAttachTTY(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.sdk()
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox", Cmd: []string{"echo", "raw"}, Tty: true}, nil, nil, nil, "tty1")
	if err != nil {
		t.Fatal(err)
	}
	hr, err := c.ContainerAttach(ctx, cr.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	if mt, _ := hr.MediaType(); mt != rawStream {
		t.Fatalf("media type %q", mt)
	}
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(hr.Reader)
	if err != nil || string(out) != "raw\n" {
		t.Fatalf("tty output %q %v", out, err)
	}
}

// A supervisor that takes the command but never answers: apigw answers 503
// after its timeout instead of hanging.
func TestBusTimeout(t *testing.T) {
	e := newEnv(t, envOpts{noSupervisor: true, callTimeout: 300 * time.Millisecond})
	for _, subj := range bus.CommandsAll(testNode) {
		if _, err := e.nc.Subscribe(subj, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
	}
	_ = e.nc.Flush()
	start := time.Now()
	code, _, body := e.do("POST", "/containers/x/start", nil)
	if code != 503 || !strings.Contains(errMessage(t, body), "did not answer in time") {
		t.Fatalf("%d %s", code, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
	code, _, _ = e.do("POST", "/containers/x/wait", nil)
	if code != 503 {
		t.Fatalf("wait: %d", code)
	}
}

// The bus goes away: requests fail fast with 503 instead of sitting in the
// NATS client's reconnect buffer.
func TestBusGone(t *testing.T) {
	e := newEnv(t)
	if code, _, _ := e.do("GET", "/info", nil); code != 200 {
		t.Fatal(code)
	}
	e.ns.Shutdown()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	code, _, body := e.do("GET", "/containers/json", nil)
	if code != 503 || !strings.Contains(errMessage(t, body), "unavailable") {
		t.Fatalf("%d %s", code, body)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("took %v", d)
	}
}
