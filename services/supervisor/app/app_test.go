package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/busyboxfs"
	"berth/pkg/errdefs"
)

const node = "testnode"

var (
	busyboxTar []byte
	shimPath   string
	shimErr    error
	shimOnce   sync.Once
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the supervisor mounts overlayfs and writes under its roots as root")
	}
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// shim returns a berth-shim binary: $BERTH_TEST_SHIM, <repo>/bin/berth-shim,
// or one built once into a temporary directory.
func shim(t *testing.T) string {
	t.Helper()
	shimOnce.Do(func() {
		if p := os.Getenv("BERTH_TEST_SHIM"); p != "" {
			shimPath = p
			return
		}
		p := filepath.Join(repoRoot(), "bin", "berth-shim")
		if _, err := os.Stat(p); err == nil {
			shimPath = p
			return
		}
		dir, err := os.MkdirTemp("", "berth-shim-build-")
		if err != nil {
			shimErr = err
			return
		}
		p = filepath.Join(dir, "berth-shim")
		cmd := exec.Command("go", "build", "-o", p, "./services/shim")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			shimErr = err
			shimPath = string(out)
			return
		}
		shimPath = p
	})
	if shimErr != nil {
		t.Skipf("berth-shim does not build yet: %v %s", shimErr, shimPath)
	}
	return shimPath
}

func testRuntime(t *testing.T) string {
	rt := os.Getenv("BERTH_TEST_RUNTIME")
	if rt == "" {
		rt = "/usr/sbin/runc"
	}
	if _, err := os.Stat(rt); err != nil {
		t.Skipf("runtime %s not found", rt)
	}
	return rt
}

type env struct {
	t        *testing.T
	root     string
	execRoot string
	sup      *Supervisor
	nc       *nats.Conn
	shim     string
	runtime  string

	natsListen string
}

func newEnv(t *testing.T) *env {
	needRoot(t)
	dir := t.TempDir()
	e := &env{t: t, root: filepath.Join(dir, "root"), execRoot: filepath.Join(dir, "run"), shim: "/nonexistent/berth-shim", runtime: "/nonexistent/berth-runtime"}
	// a fixed port for the embedded NATS, so that shims find it again after
	// a supervisor restart
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.natsListen = ln.Addr().String()
	ln.Close()
	return e
}

func (e *env) start() {
	e.t.Helper()
	lvl := slog.LevelWarn
	if os.Getenv("BERTH_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	sup, err := Start(Config{
		Root: e.root, ExecRoot: e.execRoot, Node: node,
		NATSListen: e.natsListen, MetricsAddr: "127.0.0.1:0",
		Shim: e.shim, Runtime: e.runtime,
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.sup = sup
	// the test speaks as apigw would, with apigw's credentials
	creds, err := bus.LoadCredentials(filepath.Join(e.root, bus.AuthDir, bus.APIGWCredsFile))
	if err != nil {
		e.t.Fatal(err)
	}
	nc, err := nats.Connect(sup.NATSURL, nats.UserInfo(creds.User, creds.Password))
	if err != nil {
		e.t.Fatal(err)
	}
	e.nc = nc
	e.t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.nc != nil {
		e.nc.Close()
		e.nc = nil
	}
	if e.sup != nil {
		e.sup.Close()
		e.sup = nil
	}
}

func (e *env) call(area, verb string, req, resp any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	return natsbus.Call(ctx, e.nc, bus.Command(area, node, verb), req, resp)
}

func (e *env) must(area, verb string, req, resp any) {
	e.t.Helper()
	if err := e.call(area, verb, req, resp); err != nil {
		e.t.Fatalf("%s %s: %v", area, verb, err)
	}
}

func wantErr(t *testing.T, err error, kind errdefs.Kind, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s error %q, got success", kind, msg)
	}
	if errdefs.KindOf(err) != kind || !strings.Contains(err.Error(), msg) {
		t.Fatalf("want %s error containing %q, got %s: %v", kind, msg, errdefs.KindOf(err), err)
	}
}

func (e *env) importBusybox(repo string, changes ...string) string {
	e.t.Helper()
	if busyboxTar == nil {
		if _, err := os.Stat(busyboxfs.Binary); err != nil {
			e.t.Skip("needs busybox-static")
		}
		var b bytes.Buffer
		if err := busyboxfs.WriteTar(&b); err != nil {
			e.t.Fatal(err)
		}
		busyboxTar = b.Bytes()
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	obs, err := js.ObjectStore(ctx, bus.UploadsBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	name := "upload-" + strings.ReplaceAll(e.t.Name(), "/", "_") + "-" + repo
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(busyboxTar)); err != nil {
		e.t.Fatal(err)
	}
	var resp bus.ImageImportResponse
	e.must(bus.AreaImages, bus.VerbImageImport, bus.ImageImportRequest{Object: name, Repo: repo, Changes: changes}, &resp)
	if _, err := obs.GetInfo(ctx, name); err == nil {
		e.t.Error("upload object not deleted after import")
	}
	return resp.ID
}

func (e *env) create(name string, cfg *container.Config, hc *container.HostConfig) string {
	e.t.Helper()
	var resp dockermsg.CreateResponse
	e.must(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Name: name, Config: cfg, HostConfig: hc}, &resp)
	return resp.ID
}

func (e *env) inspect(ref string) dockermsg.Container {
	e.t.Helper()
	var c dockermsg.Container
	e.must(bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: ref}, &c)
	return c
}

type eventLog struct {
	mu  sync.Mutex
	evs []bus.Event
}

func (e *env) events() *eventLog {
	l := &eventLog{}
	_, err := e.nc.Subscribe(bus.EventsNode(node), func(m *nats.Msg) {
		var ev bus.Event
		json.Unmarshal(m.Data, &ev)
		l.mu.Lock()
		l.evs = append(l.evs, ev)
		l.mu.Unlock()
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.nc.Flush()
	return l
}

// actions lists the actions seen for id (waiting a little for stragglers).
func (l *eventLog) actions(id string) []string {
	time.Sleep(100 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.evs {
		if ev.Actor.ID == id {
			out = append(out, ev.Action)
		}
	}
	return out
}

// find waits up to 2s for an event of id with action.
func (l *eventLog) find(id, action string) *bus.Event {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		for i := range l.evs {
			if l.evs[i].Actor.ID == id && l.evs[i].Action == action {
				ev := l.evs[i]
				l.mu.Unlock()
				return &ev
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) {
			return nil
		}
	}
}

func dirEntries(t *testing.T, dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestContainersAndImages(t *testing.T) {
	e := newEnv(t)
	e.start()
	evs := e.events()

	var pong string
	e.must(bus.AreaSystem, bus.VerbPing, struct{}{}, &pong)
	if pong != "OK" {
		t.Fatalf("ping %q", pong)
	}
	imgID := e.importBusybox("busybox", `CMD ["sh"]`, "ENV FOO=bar", "WORKDIR /tmp", "LABEL from=image")
	var img dockermsg.Image
	e.must(bus.AreaImages, bus.VerbImageInspect, bus.ImageRequest{Name: "docker.io/library/busybox:latest"}, &img)
	if img.ID != imgID || img.Config.Cmd[0] != "sh" || len(img.RepoTags) != 1 || img.RepoTags[0] != "busybox:latest" {
		t.Fatalf("image %+v", img)
	}
	if evs.find(imgID, "import") == nil || evs.find(imgID, "tag") == nil {
		t.Errorf("image events %v", evs.actions(imgID))
	}
	e.must(bus.AreaImages, bus.VerbImageTag, bus.ImageTagRequest{Source: imgID[7:19], Repo: "mybox", Tag: "v1"}, nil)
	var imgs []dockermsg.Image
	e.must(bus.AreaImages, bus.VerbImageList, struct{}{}, &imgs)
	if len(imgs) != 1 || len(imgs[0].RepoTags) != 2 {
		t.Fatalf("images %+v", imgs)
	}

	// create
	id := e.create("web", &container.Config{Image: "busybox", Env: []string{"A=1"}, Labels: map[string]string{"l": "v"}}, nil)
	if len(id) != 64 {
		t.Fatalf("id %q", id)
	}
	c := e.inspect("web")
	if c.ID != id || c.Name != "/web" || c.State.Status != "created" || c.Path != "sh" || c.Image != imgID ||
		c.Config.WorkingDir != "/tmp" || c.Config.Labels["from"] != "image" || c.Config.Hostname != id[:12] {
		t.Fatalf("record %+v", c)
	}
	if strings.Join(c.Config.Env, ",") != "A=1,FOO=bar" {
		t.Errorf("env %v", c.Config.Env)
	}
	for _, ref := range []string{"/web", id, id[:5]} {
		if got := e.inspect(ref); got.ID != id {
			t.Errorf("inspect %s", ref)
		}
	}
	ev := evs.find(id, "create")
	if ev == nil || ev.Type != "container" || ev.Actor.Attributes["name"] != "web" || ev.Actor.Attributes["image"] != "busybox" || ev.Actor.Attributes["l"] != "v" || ev.Scope != "local" {
		t.Errorf("create event %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers", id, "container.json")); err != nil {
		t.Fatal(err)
	}
	if ents := dirEntries(t, filepath.Join(e.execRoot, "bundles")); len(ents) != 0 {
		t.Errorf("create made a bundle: %v", ents)
	}

	// Docker's error messages
	err := e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Name: "web", Config: &container.Config{Image: "busybox"}}, nil)
	wantErr(t, err, errdefs.Conflict, `Conflict. The container name "/web" is already in use by container "`+id+`". You have to remove (or rename) that container to be able to reuse that name.`)
	err = e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Name: "bad name!", Config: &container.Config{Image: "busybox"}}, nil)
	wantErr(t, err, errdefs.InvalidParameter, "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
	err = e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Config: &container.Config{Image: "nosuch"}}, nil)
	wantErr(t, err, errdefs.NotFound, "No such image: nosuch:latest")
	err = e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{}, nil)
	wantErr(t, err, errdefs.InvalidParameter, "Config cannot be empty")
	err = e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Config: &container.Config{Image: "busybox"}, HostConfig: &container.HostConfig{Resources: container.Resources{Memory: 1024}}}, nil)
	wantErr(t, err, errdefs.InvalidParameter, "Minimum memory limit allowed is 6MB")
	err = e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Config: &container.Config{Image: "busybox"}, HostConfig: &container.HostConfig{Binds: []string{"relative:/x:zz"}}}, nil)
	if err == nil {
		t.Error("bad bind accepted")
	}
	err = e.call(bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: "nosuch"}, nil)
	wantErr(t, err, errdefs.NotFound, "No such container: nosuch")
	err = e.call(bus.AreaContainers, bus.VerbStop, bus.StopRequest{ID: "web"}, nil)
	wantErr(t, err, errdefs.NotModified, "")
	err = e.call(bus.AreaContainers, bus.VerbKill, bus.KillRequest{ID: "web"}, nil)
	wantErr(t, err, errdefs.Conflict, "cannot kill container: web: container "+id+" is not running")
	err = e.call(bus.AreaContainers, bus.VerbStart, bus.IDRequest{}, nil)
	wantErr(t, err, errdefs.InvalidParameter, "missing container ID")

	// random names are Docker-style and unique
	anon := e.create("", &container.Config{Image: imgID[7:15], Cmd: []string{"true"}}, nil)
	if n := e.inspect(anon).Name; !strings.Contains(n, "_") || !strings.HasPrefix(n, "/") {
		t.Errorf("generated name %q", n)
	}

	// rename
	e.must(bus.AreaContainers, bus.VerbRename, bus.RenameRequest{ID: "web", NewName: "web2"}, nil)
	err = e.call(bus.AreaContainers, bus.VerbRename, bus.RenameRequest{ID: anon, NewName: "web2"}, nil)
	wantErr(t, err, errdefs.Conflict, `The container name "/web2" is already in use`)
	if ev := evs.find(id, "rename"); ev == nil || ev.Actor.Attributes["oldName"] != "/web" || ev.Actor.Attributes["name"] != "web2" {
		t.Errorf("rename event %+v", ev)
	}
	wantErr(t, e.call(bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: "web"}, nil), errdefs.NotFound, "No such container: web")

	// list
	var list []dockermsg.Container
	e.must(bus.AreaContainers, bus.VerbList, bus.ListRequest{All: true}, &list)
	if len(list) != 2 {
		t.Fatalf("list all: %d", len(list))
	}
	e.must(bus.AreaContainers, bus.VerbList, bus.ListRequest{}, &list)
	if len(list) != 0 {
		t.Fatalf("list running: %d", len(list))
	}

	// images in use cannot be deleted
	err = e.call(bus.AreaImages, bus.VerbImageRemove, bus.ImageRemoveRequest{Name: "mybox:v1"}, nil)
	if err != nil {
		t.Fatalf("untag with another tag left: %v", err)
	}
	err = e.call(bus.AreaImages, bus.VerbImageRemove, bus.ImageRemoveRequest{Name: imgID}, nil)
	wantErr(t, err, errdefs.Conflict, "conflict: unable to delete "+imgID[7:19]+" (must be forced) - image is being used by stopped container ")

	// prune by label, then remove
	var pr bus.PruneResponse
	e.must(bus.AreaContainers, bus.VerbPrune, bus.PruneRequest{Filters: map[string][]string{"label": {"l=nomatch"}}}, &pr)
	if len(pr.Deleted) != 0 {
		t.Fatalf("pruned %v", pr.Deleted)
	}
	e.must(bus.AreaContainers, bus.VerbPrune, bus.PruneRequest{Filters: map[string][]string{"label!": {"l"}}}, &pr)
	if len(pr.Deleted) != 1 || pr.Deleted[0] != anon {
		t.Fatalf("pruned %v, want %s", pr.Deleted, anon)
	}
	e.must(bus.AreaContainers, bus.VerbRemove, bus.RemoveRequest{ID: "web2"}, nil)
	if evs.find(id, "destroy") == nil {
		t.Error("no destroy event")
	}
	if ents := dirEntries(t, filepath.Join(e.root, "containers")); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	var del []bus.ImageDeleted
	e.must(bus.AreaImages, bus.VerbImageRemove, bus.ImageRemoveRequest{Name: "busybox"}, &del)
	if len(del) < 2 || del[0].Untagged != "busybox:latest" || del[1].Deleted != imgID {
		t.Errorf("rmi %+v", del)
	}
	if evs.find(imgID, "delete") == nil || evs.find(imgID, "untag") == nil {
		t.Errorf("image events %v", evs.actions(imgID))
	}

	// system info and metrics
	var info bus.Info
	e.must(bus.AreaSystem, bus.VerbInfo, struct{}{}, &info)
	if info.Name != node || info.NCPU == 0 || info.KernelVersion == "" {
		t.Errorf("info %+v", info)
	}
	resp, err := http.Get(e.sup.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`berth_supervisor_containers{state="created"}`, `berth_supervisor_commands_total{outcome="conflict",verb="containers.create"}`, "berth_supervisor_command_duration_seconds_bucket", "berth_supervisor_shims_running", "berth_supervisor_bus_errors_total", "berth_supervisor_create_to_running_seconds"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
}

func TestIdempotencyAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.importBusybox("busybox")

	// the same key twice, even concurrently: one container, one answer
	req := dockermsg.CreateRequest{Meta: bus.Meta{Key: "k-1"}, Config: &container.Config{Image: "busybox", Cmd: []string{"true"}}}
	var wg sync.WaitGroup
	ids := make([]string, 4)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r dockermsg.CreateResponse
			if err := e.call(bus.AreaContainers, bus.VerbCreate, req, &r); err != nil {
				t.Error(err)
			}
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different answers: %v", ids)
		}
	}
	var list []dockermsg.Container
	e.must(bus.AreaContainers, bus.VerbList, bus.ListRequest{All: true}, &list)
	if len(list) != 1 {
		t.Fatalf("%d containers for one key", len(list))
	}
	// the key survives a supervisor restart
	e.stop()
	e.start()
	var again dockermsg.CreateResponse
	e.must(bus.AreaContainers, bus.VerbCreate, req, &again)
	if again.ID != ids[0] {
		t.Fatalf("after restart: %s, want %s", again.ID, ids[0])
	}
	// a different key creates another
	req.Key = "k-2"
	e.must(bus.AreaContainers, bus.VerbCreate, req, nil)

	// malformed messages and missing fields: InvalidParameter, nothing left
	before := dirEntries(t, filepath.Join(e.root, "containers"))
	for _, raw := range []string{`{"config":`, `{"config": "notanobject"}`, `[]`, `{"name": 5}`, `{}`, `{"config":{"Image":""}}`} {
		msg, err := e.nc.Request(bus.Command(bus.AreaContainers, node, bus.VerbCreate), []byte(raw), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		err = bus.DecodeReply(msg.Data, nil)
		if !errdefs.Is(err, errdefs.InvalidParameter) {
			t.Errorf("%s: want InvalidParameter, got %v", raw, err)
		}
	}
	msg, err := e.nc.Request(bus.Command(bus.AreaContainers, node, bus.VerbStart), []byte(`{"id":`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.DecodeReply(msg.Data, nil); !errdefs.Is(err, errdefs.InvalidParameter) || !strings.Contains(err.Error(), "malformed bus message") {
		t.Errorf("start: %v", err)
	}
	if after := dirEntries(t, filepath.Join(e.root, "containers")); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("containers dir changed: %v -> %v", before, after)
	}
	wantErr(t, e.call(bus.AreaContainers, "frobnicate", struct{}{}, nil), errdefs.NotImplemented, "unknown")
}

func TestRestore(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.importBusybox("busybox")
	id := e.create("keep", &container.Config{Image: "busybox", Cmd: []string{"true"}}, nil)
	ghost := e.create("ghost", &container.Config{Image: "busybox", Cmd: []string{"true"}}, nil)
	e.stop()

	// pretend ghost was running when the supervisor died, and its shim is gone
	p := filepath.Join(e.root, "containers", ghost, "container.json")
	data, _ := os.ReadFile(p)
	var rec dockermsg.Container
	json.Unmarshal(data, &rec)
	rec.State = dockermsg.State{Status: "running", Running: true, Pid: 999999, StartedAt: time.Now()}
	data, _ = json.Marshal(rec)
	os.WriteFile(p, data, 0o600)
	// and a create that never finished writing its record
	half := strings.Repeat("ab", 32)
	os.MkdirAll(filepath.Join(e.root, "containers", half), 0o700)

	e.start()
	if c := e.inspect("keep"); c.ID != id || c.State.Status != "created" {
		t.Fatalf("keep: %+v", c.State)
	}
	g := e.inspect("ghost")
	if g.State.Status != "exited" || g.State.ExitCode != 255 || !strings.Contains(g.State.Error, "shim disappeared") || g.State.Running {
		t.Fatalf("ghost: %+v", g.State)
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers", half)); err == nil {
		t.Error("half-created container dir kept")
	}
	var img dockermsg.Image
	e.must(bus.AreaImages, bus.VerbImageInspect, bus.ImageRequest{Name: "busybox"}, &img)
	// the name is still taken after a restart
	err := e.call(bus.AreaContainers, bus.VerbCreate, dockermsg.CreateRequest{Name: "keep", Config: &container.Config{Image: "busybox", Cmd: []string{"true"}}}, nil)
	wantErr(t, err, errdefs.Conflict, "already in use")
}

func TestParseFlags(t *testing.T) {
	c, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	if c.Root != "/var/lib/berth" || c.ExecRoot != "/run/berth" || c.NATSURL != "" || c.NATSListen != "127.0.0.1:4222" ||
		c.MetricsAddr != "127.0.0.1:9325" || c.Shim != filepath.Join(filepath.Dir(self), "berth-shim") ||
		c.Runtime != filepath.Join(filepath.Dir(self), "berth-runtime") || c.Node == "" || strings.Contains(c.Node, ".") {
		t.Errorf("defaults %+v", c)
	}
	if _, err := ParseFlags([]string{"--nosuch"}); err == nil {
		t.Error("unknown flag accepted")
	}
	if _, err := Start(Config{Node: "a.b", Root: t.TempDir(), ExecRoot: t.TempDir(), Logger: slog.Default()}); err == nil {
		t.Error("node with a dot accepted")
	}
}
