package dockerapi

//lint:file-ignore SA1019 events keep the legacy status/id/from fields that older API clients still read

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

func TestNegotiateVersion(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"", "1.51", ""},
		{"1.51", "1.51", ""},
		{"1.24", "1.24", ""},
		{"1.41", "1.41", ""},
		{"1.99", "", "client version 1.99 is too new. Maximum supported API version is 1.51"},
		{"2.0", "", "too new"},
		{"1.23", "", "client version 1.23 is too old. Minimum supported API version is 1.24"},
		{"1.x", "", "invalid API version"},
	} {
		got, err := NegotiateVersion(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || errdefs.HTTPStatus(errdefs.KindOf(err)) != http.StatusBadRequest {
				t.Errorf("%q: err %v, want %q (400)", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v", c.in, got, err)
		}
	}
}

func TestSplitVersionPrefix(t *testing.T) {
	for _, c := range []struct{ in, v, rest string }{
		{"/v1.45/containers/json", "1.45", "/containers/json"},
		{"/v1.45", "1.45", "/"},
		{"/containers/json", "", "/containers/json"},
		{"/version", "", "/version"},
		{"/v/x", "", "/v/x"},
		{"/vx/version", "", "/vx/version"},
		{"/v1.45x/version", "", "/v1.45x/version"},
	} {
		v, rest := SplitVersionPrefix(c.in)
		if v != c.v || rest != c.rest {
			t.Errorf("%q: %q %q", c.in, v, rest)
		}
	}
}

func TestErrorKindsMapToDockerStatuses(t *testing.T) {
	for k, want := range map[errdefs.Kind]int{
		errdefs.NotFound: 404, errdefs.Conflict: 409, errdefs.InvalidParameter: 400,
		errdefs.NotModified: 304, errdefs.Unavailable: 503, errdefs.Unknown: 500, errdefs.NotImplemented: 501,
	} {
		if got := errdefs.HTTPStatus(errdefs.KindOf(errdefs.New(k, "x"))); got != want {
			t.Errorf("%q: %d, want %d", k, got, want)
		}
	}
	_, err := DecodeCreateBody([]byte(`{`))
	if errdefs.KindOf(err) != errdefs.InvalidParameter {
		t.Fatalf("decode error kind %q", errdefs.KindOf(err))
	}
}

func TestDecodeCreateBody(t *testing.T) {
	b, err := DecodeCreateBody([]byte(`{"Image":"busybox","Cmd":"echo hi","Env":["A=b"],"HostConfig":{"AutoRemove":true,"Memory":1024},"NetworkingConfig":{"EndpointsConfig":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if b.Image != "busybox" || len(b.Cmd) != 1 || b.Cmd[0] != "echo hi" || !b.HostConfig.AutoRemove || b.HostConfig.Memory != 1024 || b.NetworkingConfig == nil {
		t.Fatalf("%+v", b)
	}
	for in, msg := range map[string]string{
		``:                              "config cannot be empty",
		`null`:                          "config cannot be empty",
		`{"Image":`:                     "invalid JSON",
		`{"Image":"a"} x`:               "unexpected data after",
		`{"Image":1}`:                   "field Image must be of type string, not number",
		`{"Image":"a","Env":"x"}`:       "field Env must be of type []string",
		`{"Image":"a","HostConfig":[]}`: "field HostConfig must be of type",
		`{"Image":"a","HostConfig":{"Memory":"1g"}}`: "field HostConfig.Memory must be of type int64",
		`{"Image":""}`: "no image specified",
		`[]`:           "invalid JSON",
		`{"Image":"a","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}`: "AutoRemove",
	} {
		_, err := DecodeCreateBody([]byte(in))
		if err == nil || !strings.Contains(err.Error(), msg) || errdefs.KindOf(err) != errdefs.InvalidParameter {
			t.Errorf("%s: %v, want %q", in, err, msg)
		}
	}
}

func TestValidateContainerName(t *testing.T) {
	for _, ok := range []string{"", "ab", "/ab", "a_b.c-d", "A1"} {
		if err := ValidateContainerName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"a", "-ab", "a/b", "a b", "ä1", "/"} {
		if err := ValidateContainerName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]string{"": "", "KILL": "SIGKILL", "sigterm": "SIGTERM", "9": "9", "SIGUSR1": "SIGUSR1"} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"NOPE", "0", "-1", "65"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestQueryHelpers(t *testing.T) {
	for in, want := range map[string]bool{"": false, "0": false, "false": false, "no": false, "1": true, "true": true, "yes": true} {
		if BoolValue(in) != want {
			t.Errorf("BoolValue(%q)", in)
		}
	}
	if n, err := ParseTail("all"); n != -1 || err != nil {
		t.Error("tail all")
	}
	if n, err := ParseTail("5"); n != 5 || err != nil {
		t.Error("tail 5")
	}
	if _, err := ParseTail("x"); err == nil {
		t.Error("tail x")
	}
	if p, err := IntValue("t", "3"); err != nil || *p != 3 {
		t.Error("int")
	}
	if p, err := IntValue("t", ""); err != nil || p != nil {
		t.Error("int empty")
	}
	if _, err := IntValue("t", "x"); err == nil {
		t.Error("int x")
	}
}

func rec(id, name, status string, created time.Time, labels map[string]string, image string) dockermsg.Container {
	return dockermsg.Container{
		ID: id, Name: "/" + name, Created: created, Image: "sha256:" + id + "img",
		Config: &container.Config{Image: image, Labels: labels},
		State:  dockermsg.State{Status: status, Running: status == "running"},
	}
}

func names(cs []dockermsg.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, strings.TrimPrefix(c.Name, "/"))
	}
	return strings.Join(out, ",")
}

func TestFilterContainers(t *testing.T) {
	t0 := time.Now()
	all := []dockermsg.Container{
		rec("aaa111", "web", "running", t0, map[string]string{"app": "web", "tier": "front"}, "busybox"),
		rec("bbb222", "db", "exited", t0.Add(time.Second), map[string]string{"app": "db"}, "postgres:16"),
		rec("ccc333", "web-old", "created", t0.Add(2*time.Second), nil, "docker.io/library/busybox:latest"),
		rec("ddd444", "cache", "running", t0.Add(3*time.Second), nil, "redis"),
	}
	cases := []struct {
		name string
		opts ListOptions
		f    filters.Args
		want string
		err  string
	}{
		{"default running only, newest first", ListOptions{}, filters.NewArgs(), "cache,web", ""},
		{"all", ListOptions{All: true}, filters.NewArgs(), "cache,web-old,db,web", ""},
		{"limit implies all", ListOptions{Limit: 2}, filters.NewArgs(), "cache,web-old", ""},
		{"name regexp", ListOptions{All: true}, filters.NewArgs(filters.Arg("name", "web")), "web-old,web", ""},
		{"name anchored", ListOptions{All: true}, filters.NewArgs(filters.Arg("name", "^/web$")), "web", ""},
		{"id prefix", ListOptions{All: true}, filters.NewArgs(filters.Arg("id", "bbb")), "db", ""},
		{"label key", ListOptions{All: true}, filters.NewArgs(filters.Arg("label", "app")), "db,web", ""},
		{"label kv", ListOptions{All: true}, filters.NewArgs(filters.Arg("label", "app=web")), "web", ""},
		{"two labels", ListOptions{All: true}, filters.NewArgs(filters.Arg("label", "app=web"), filters.Arg("label", "tier=back")), "", ""},
		{"status implies all", ListOptions{}, filters.NewArgs(filters.Arg("status", "exited")), "db", ""},
		{"status or", ListOptions{}, filters.NewArgs(filters.Arg("status", "exited"), filters.Arg("status", "created")), "web-old,db", ""},
		{"ancestor by name", ListOptions{All: true}, filters.NewArgs(filters.Arg("ancestor", "busybox")), "web-old,web", ""},
		{"ancestor by tag", ListOptions{All: true}, filters.NewArgs(filters.Arg("ancestor", "postgres:16")), "db", ""},
		{"ancestor by id", ListOptions{All: true, AncestorIDs: map[string]bool{"sha256:ddd444img": true}}, filters.NewArgs(filters.Arg("ancestor", "x")), "cache", ""},
		{"bad status", ListOptions{}, filters.NewArgs(filters.Arg("status", "sleeping")), "", "invalid filter 'status=sleeping'"},
		{"bad key", ListOptions{}, filters.NewArgs(filters.Arg("size", "1")), "", "invalid filter 'size'"},
	}
	for _, c := range cases {
		o := c.opts
		o.Filters = c.f
		err := ValidateListFilters(&o)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || errdefs.KindOf(err) != errdefs.InvalidParameter {
				t.Errorf("%s: err %v", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		cs := append([]dockermsg.Container(nil), all...)
		if got := names(FilterContainers(cs, o)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseFilters(t *testing.T) {
	f, err := ParseFilters(`{"name":{"x":true}}`)
	if err != nil || f.Get("name")[0] != "x" {
		t.Fatal(err)
	}
	f, err = ParseFilters(`{"name":["x"]}`) // the legacy form
	if err != nil || f.Get("name")[0] != "x" {
		t.Fatal(err)
	}
	if _, err := ParseFilters(`{bad`); errdefs.KindOf(err) != errdefs.InvalidParameter {
		t.Fatalf("bad filters: %v", err)
	}
}

func TestMatchEvent(t *testing.T) {
	die := EventMessage(&bus.Event{Type: "container", Action: "die", Actor: bus.Actor{ID: "abc123", Attributes: map[string]string{"name": "web", "image": "busybox", "exitCode": "3", "app": "x"}}, Time: 100})
	tag := EventMessage(&bus.Event{Type: "image", Action: "tag", Actor: bus.Actor{ID: "sha256:fff", Attributes: map[string]string{"name": "busybox:latest"}}, TimeNano: 5e9})
	exec := EventMessage(&bus.Event{Type: "container", Action: "exec_start: sh -c true", Actor: bus.Actor{ID: "abc123", Attributes: map[string]string{"name": "web"}}})
	if die.Status != "die" || die.ID != "abc123" || die.From != "busybox" || die.Scope != "local" || die.TimeNano != 100e9 || tag.Time != 5 {
		t.Fatalf("legacy fields: %+v %+v", die, tag)
	}
	for _, c := range []struct {
		f    filters.Args
		m    events.Message
		want bool
	}{
		{filters.NewArgs(), die, true},
		{filters.NewArgs(filters.Arg("type", "container")), die, true},
		{filters.NewArgs(filters.Arg("type", "image")), die, false},
		{filters.NewArgs(filters.Arg("container", "web")), die, true},
		{filters.NewArgs(filters.Arg("container", "abc")), die, true},
		{filters.NewArgs(filters.Arg("container", "db")), die, false},
		{filters.NewArgs(filters.Arg("container", "web")), tag, false},
		{filters.NewArgs(filters.Arg("event", "die")), die, true},
		{filters.NewArgs(filters.Arg("event", "start"), filters.Arg("event", "die")), die, true},
		{filters.NewArgs(filters.Arg("event", "start")), die, false},
		{filters.NewArgs(filters.Arg("event", "exec_start")), exec, true},
		{filters.NewArgs(filters.Arg("label", "app=x")), die, true},
		{filters.NewArgs(filters.Arg("label", "app=y")), die, false},
		{filters.NewArgs(filters.Arg("image", "busybox")), die, true},
		{filters.NewArgs(filters.Arg("image", "busybox:latest")), tag, true},
		{filters.NewArgs(filters.Arg("image", "alpine")), die, false},
	} {
		if got := MatchEvent(c.f, &c.m); got != c.want {
			data, _ := json.Marshal(c.f)
			t.Errorf("%s on %s %s: %v", data, c.m.Type, c.m.Action, got)
		}
	}
	if err := ValidateEventFilters(filters.NewArgs(filters.Arg("colour", "x"))); err == nil {
		t.Fatal("bad key accepted")
	}
}

func TestContainerMapping(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := dockermsg.Container{
		ID: "abc", Name: "web", Created: now.Add(-time.Hour), Path: "sh", Args: []string{"-c", "sleep 9"},
		Config: &container.Config{Image: "busybox", Tty: true, Labels: map[string]string{"a": "b"}},
		Image:  "sha256:img", LogPath: "/l",
		State: dockermsg.State{Status: "running", Running: true, Pid: 7, StartedAt: now.Add(-3 * time.Second)},
	}
	ins := ContainerInspect(&c)
	data, _ := json.Marshal(ins)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	for _, k := range []string{"Id", "Created", "Path", "Args", "State", "Image", "Name", "Config", "HostConfig", "Mounts", "NetworkSettings", "LogPath", "Driver", "Platform"} {
		if _, ok := m[k]; !ok {
			t.Errorf("inspect lacks %s", k)
		}
	}
	if ins.Name != "/web" || ins.Created != "2025-01-01T11:00:00Z" || ins.State.FinishedAt != "0001-01-01T00:00:00Z" || ins.Driver != "overlay2" || !Tty(&c) {
		t.Fatalf("inspect: %s", data)
	}
	s := ContainerSummary(&c, now)
	if s.Names[0] != "/web" || s.Image != "busybox" || s.ImageID != "sha256:img" || s.Command != "sh -c sleep 9" || s.Status != "Up 3 seconds" || s.State != "running" || s.Labels["a"] != "b" {
		t.Fatalf("summary: %+v", s)
	}
	for _, c := range []struct {
		st   dockermsg.State
		want string
	}{
		{dockermsg.State{Status: "created"}, "Created"},
		{dockermsg.State{Status: "exited", ExitCode: 137, StartedAt: now.Add(-time.Hour), FinishedAt: now.Add(-2 * time.Minute)}, "Exited (137) 2 minutes ago"},
		{dockermsg.State{Status: "running", Running: true, Paused: true, StartedAt: now.Add(-time.Minute)}, "Up About a minute (Paused)"},
		{dockermsg.State{Status: "dead", Dead: true}, "Dead"},
		{dockermsg.State{Status: "removing", StartedAt: now}, "Removal In Progress"},
	} {
		if got := StatusString(c.st, now); got != c.want {
			t.Errorf("status %+v: %q, want %q", c.st, got, c.want)
		}
	}
}

func TestImageMapping(t *testing.T) {
	im := dockermsg.Image{ID: "sha256:x", Created: time.Unix(1000, 0)}
	s := ImageSummary(&im)
	if s.RepoTags == nil || s.RepoDigests == nil || s.Labels == nil || s.Created != 1000 {
		t.Fatalf("summary: %+v", s)
	}
	ins := ImageInspect(&im)
	if ins.RootFS.Type != "layers" || ins.Os != "linux" || ins.Config == nil || ins.RepoTags == nil {
		t.Fatalf("inspect: %+v", ins)
	}
	if NormalizeImageRef("busybox") != "busybox:latest" || NormalizeImageRef("docker.io/library/busybox:1") != "busybox:1" || NormalizeImageRef("localhost:5000/x") != "localhost:5000/x:latest" {
		t.Fatal("normalize")
	}
}
