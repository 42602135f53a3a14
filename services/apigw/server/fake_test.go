package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// fakeSupervisor stands in for berth-supervisor and its shims on the bus. Its
// "containers" run tiny scripted programs (echo, sh -c 'exit N', cat, sleep)
// so the docker CLI can drive whole scenarios through berth-apigw.
type fakeSupervisor struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	node string

	mu         sync.Mutex
	containers map[string]*fakeCtr
	images     []dockermsg.Image
	logs       map[string][]bus.LogEntry
	imports    map[string][]byte // object name → tarball read from the store
	calls      map[string]int    // verb → count
	keys       map[string]bool
}

type fakeCtr struct {
	rec   dockermsg.Container
	stop  chan int // exit code to die with
	stdin *nats.Subscription
}

func newFakeSupervisor(t *testing.T, url, node string) *fakeSupervisor {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	f := &fakeSupervisor{
		t: t, nc: nc, js: js, node: node,
		containers: map[string]*fakeCtr{}, logs: map[string][]bus.LogEntry{},
		imports: map[string][]byte{}, calls: map[string]int{}, keys: map[string]bool{},
	}
	f.images = []dockermsg.Image{{
		ID:           "sha256:" + strings.Repeat("ab", 32),
		RepoTags:     []string{"busybox:latest"},
		Created:      time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Size:         1234567,
		Architecture: "amd64",
		OS:           "linux",
		Config:       ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}, Labels: map[string]string{"org": "berth"}},
		RootFS:       ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.Digest("sha256:" + strings.Repeat("cd", 32))}},
	}}
	for _, subj := range bus.CommandsAll(node) {
		if _, err := nc.QueueSubscribe(subj, bus.QueueGroup(node), f.handle); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeSupervisor) count(verb string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[verb]
}

func (f *fakeSupervisor) handle(m *nats.Msg) {
	toks := strings.Split(m.Subject, ".")
	area, verb := toks[2], toks[len(toks)-1]
	f.mu.Lock()
	f.calls[area+"."+verb]++
	f.mu.Unlock()
	v, err := f.dispatch(area, verb, m.Data)
	_ = m.Respond(bus.EncodeReply(v, err))
}

func (f *fakeSupervisor) dispatch(area, verb string, data []byte) (any, error) {
	switch area + "." + verb {
	case "system.info":
		f.mu.Lock()
		defer f.mu.Unlock()
		return bus.Info{ID: "fake", Name: "fakehost", Containers: len(f.containers), Images: len(f.images), Driver: "overlay2", CgroupVersion: "2", NCPU: 2, MemTotal: 1 << 30, RootDir: "/var/lib/berth"}, nil
	case "containers.create":
		var req dockermsg.CreateRequest
		if err := bus.Decode(data, &req); err != nil {
			return nil, err
		}
		return f.create(req)
	case "containers.inspect":
		var req bus.IDRequest
		if err := bus.Decode(data, &req); err != nil {
			return nil, err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		c, err := f.find(req.ID)
		if err != nil {
			return nil, err
		}
		return c.rec, nil
	case "containers.list":
		var req bus.ListRequest
		_ = bus.Decode(data, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []dockermsg.Container{}
		for _, c := range f.containers {
			out = append(out, c.rec)
		}
		return out, nil
	case "containers.start":
		var req bus.IDRequest
		_ = bus.Decode(data, &req)
		return nil, f.start(req.ID)
	case "containers.stop", "containers.restart":
		var req bus.StopRequest
		_ = bus.Decode(data, &req)
		if err := f.signal(req.ID, 137, verb == "stop"); err != nil && (verb == "stop" || !errdefs.Is(err, errdefs.Conflict)) {
			return nil, err
		}
		if verb == "restart" {
			time.Sleep(50 * time.Millisecond)
			return nil, f.start(req.ID)
		}
		return nil, nil
	case "containers.kill":
		var req bus.KillRequest
		_ = bus.Decode(data, &req)
		code := 137
		if req.Signal == "SIGTERM" || req.Signal == "15" {
			code = 143
		}
		return nil, f.signal(req.ID, code, false)
	case "containers.remove":
		var req bus.RemoveRequest
		_ = bus.Decode(data, &req)
		return nil, f.remove(req.ID, req.Force)
	case "containers.rename":
		var req bus.RenameRequest
		_ = bus.Decode(data, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		c, err := f.find(req.ID)
		if err != nil {
			return nil, err
		}
		for _, o := range f.containers {
			if o.rec.Name == "/"+req.NewName {
				return nil, errdefs.New(errdefs.Conflict, "Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", req.NewName, o.rec.ID)
			}
		}
		c.rec.Name = "/" + req.NewName
		return nil, nil
	case "containers.prune":
		f.mu.Lock()
		var ids []string
		for id, c := range f.containers {
			if !c.rec.State.Running {
				ids = append(ids, id)
				delete(f.containers, id)
			}
		}
		f.mu.Unlock()
		return bus.PruneResponse{Deleted: ids, SpaceReclaimed: 42}, nil
	case "containers.logs":
		var req bus.LogsRequest
		_ = bus.Decode(data, &req)
		f.mu.Lock()
		c, err := f.find(req.ID)
		var entries []bus.LogEntry
		if err == nil {
			entries = append(entries, f.logs[c.rec.ID]...)
		}
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if req.Tail >= 0 && req.Tail < len(entries) {
			entries = entries[len(entries)-req.Tail:]
		}
		if req.Follow {
			_, _ = f.nc.Subscribe(req.Inbox+".cancel", func(*nats.Msg) {
				f.mu.Lock()
				f.calls["logs.cancel"]++
				f.mu.Unlock()
			})
			_ = f.nc.Flush()
		}
		go func() {
			time.Sleep(10 * time.Millisecond)
			chunk, _ := json.Marshal(bus.LogChunk{Entries: entries})
			_ = f.nc.Publish(req.Inbox, chunk)
			if !req.Follow {
				eof, _ := json.Marshal(bus.LogChunk{EOF: true})
				_ = f.nc.Publish(req.Inbox, eof)
			}
		}()
		return nil, nil
	case "images.list":
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.images, nil
	case "images.inspect":
		var req bus.ImageRequest
		_ = bus.Decode(data, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		im := f.findImage(req.Name)
		if im == nil {
			return nil, errdefs.NoSuchImage(req.Name)
		}
		return im, nil
	case "images.tag":
		var req bus.ImageTagRequest
		_ = bus.Decode(data, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		im := f.findImage(req.Source)
		if im == nil {
			return nil, errdefs.NoSuchImage(req.Source)
		}
		im.RepoTags = append(im.RepoTags, req.Repo+":"+req.Tag)
		return nil, nil
	case "images.remove":
		var req bus.ImageRemoveRequest
		_ = bus.Decode(data, &req)
		f.mu.Lock()
		defer f.mu.Unlock()
		for i := range f.images {
			im := &f.images[i]
			for j, tag := range im.RepoTags {
				if tag == req.Name || tag == req.Name+":latest" {
					im.RepoTags = append(im.RepoTags[:j], im.RepoTags[j+1:]...)
					return []bus.ImageDeleted{{Untagged: tag}}, nil
				}
			}
		}
		return nil, errdefs.NoSuchImage(req.Name)
	case "images.pull":
		// "streamed/…" sends two progress lines then fails; anything else
		// fails before any progress, as a registry that refuses the name
		var req bus.ImagePullRequest
		_ = bus.Decode(data, &req)
		go func() {
			time.Sleep(10 * time.Millisecond)
			chunk := bus.ProgressChunk{Done: true}
			if strings.HasPrefix(req.Ref, "streamed/") {
				_ = f.nc.Publish(req.Inbox, must(json.Marshal(bus.ProgressChunk{Lines: []json.RawMessage{
					json.RawMessage(`{"status":"Pulling from streamed/x","id":"latest"}`),
					json.RawMessage(`{"status":"Pulling fs layer","progressDetail":{},"id":"0123456789ab"}`),
				}})))
				chunk.Error = &bus.ReplyError{Kind: errdefs.Unavailable, Message: "downloading layer 0123456789ab: connection reset"}
			} else {
				name, _, _ := strings.Cut(strings.TrimPrefix(req.Ref, "docker.io/library/"), ":")
				chunk.Error = &bus.ReplyError{Kind: errdefs.NotFound, Message: "pull access denied for " + name + ", repository does not exist or may require 'docker login'"}
			}
			_ = f.nc.Publish(req.Inbox, must(json.Marshal(chunk)))
		}()
		return struct{}{}, nil
	case "images.import":
		var req bus.ImageImportRequest
		_ = bus.Decode(data, &req)
		store, err := f.js.ObjectStore(context.Background(), bus.UploadsBucket)
		if err != nil {
			return nil, err
		}
		tar, err := store.GetBytes(context.Background(), req.Object)
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "no object %s: %v", req.Object, err)
		}
		_ = store.Delete(context.Background(), req.Object)
		id := "sha256:" + digest.FromBytes(tar).Encoded()
		f.mu.Lock()
		f.imports[req.Object] = tar
		im := dockermsg.Image{ID: id, Created: time.Now(), Size: int64(len(tar)), OS: "linux", Architecture: "amd64", Comment: req.Message}
		if req.Repo != "" {
			im.RepoTags = []string{req.Repo + ":" + req.Tag}
		}
		for _, ch := range req.Changes {
			if v, ok := strings.CutPrefix(ch, "ENV "); ok {
				im.Config.Env = append(im.Config.Env, v)
			}
		}
		f.images = append(f.images, im)
		f.mu.Unlock()
		return bus.ImageImportResponse{ID: id}, nil
	}
	return nil, errdefs.New(errdefs.NotImplemented, "fake supervisor: %s.%s not implemented", area, verb)
}

func (f *fakeSupervisor) findImage(ref string) *dockermsg.Image {
	for i := range f.images {
		im := &f.images[i]
		if im.ID == ref || strings.HasPrefix(strings.TrimPrefix(im.ID, "sha256:"), ref) {
			return im
		}
		for _, tag := range im.RepoTags {
			if tag == ref || tag == ref+":latest" {
				return im
			}
		}
	}
	return nil
}

// find resolves an ID, ID prefix or name; f.mu is held.
func (f *fakeSupervisor) find(ref string) (*fakeCtr, error) {
	if c, ok := f.containers[ref]; ok {
		return c, nil
	}
	for _, c := range f.containers {
		if c.rec.Name == "/"+ref || c.rec.Name == ref {
			return c, nil
		}
	}
	for id, c := range f.containers {
		if len(ref) >= 3 && strings.HasPrefix(id, ref) {
			return c, nil
		}
	}
	return nil, errdefs.NoSuchContainer(ref)
}

func (f *fakeSupervisor) create(req dockermsg.CreateRequest) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Key == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "missing idempotency key")
	}
	if f.keys[req.Key] {
		return nil, errdefs.New(errdefs.Conflict, "duplicate key")
	}
	f.keys[req.Key] = true
	im := f.findImage(req.Config.Image)
	if im == nil {
		ref := req.Config.Image
		if !strings.Contains(ref, ":") {
			ref += ":latest"
		}
		return nil, errdefs.NoSuchImage(ref)
	}
	name := req.Name
	id := strings.ReplaceAll(uuid.NewString()+uuid.NewString(), "-", "")[:64]
	if name == "" {
		name = "fake_" + id[:6]
	}
	for _, c := range f.containers {
		if c.rec.Name == "/"+name {
			return nil, errdefs.New(errdefs.Conflict, "Conflict. The container name \"/%s\" is already in use by container %q. You have to remove (or rename) that container to be able to reuse that name.", name, c.rec.ID)
		}
	}
	cmd := append([]string{}, req.Config.Entrypoint...)
	if len(req.Config.Cmd) > 0 {
		cmd = append(cmd, req.Config.Cmd...)
	} else if len(req.Config.Entrypoint) == 0 {
		cmd = append(cmd, im.Config.Cmd...)
	}
	rec := dockermsg.Container{
		ID: id, Name: "/" + name, Created: time.Now(), Path: cmd[0], Args: cmd[1:],
		Config: req.Config, HostConfig: req.HostConfig, Image: im.ID,
		State:   dockermsg.State{Status: container.StateCreated},
		LogPath: "/var/lib/berth/containers/" + id + "/" + id + "-json.log", Driver: "overlay2",
	}
	f.containers[id] = &fakeCtr{rec: rec}
	f.event("create", &rec, nil)
	return dockermsg.CreateResponse{ID: id}, nil
}

// event publishes a container event to JetStream; f.mu may be held.
func (f *fakeSupervisor) event(action string, rec *dockermsg.Container, extra map[string]string) {
	attrs := map[string]string{"name": strings.TrimPrefix(rec.Name, "/"), "image": rec.Config.Image}
	for k, v := range rec.Config.Labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	now := time.Now()
	ev := bus.Event{Type: "container", Action: action, Actor: bus.Actor{ID: rec.ID, Attributes: attrs}, Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()}
	data, _ := json.Marshal(ev)
	if _, err := f.js.Publish(context.Background(), bus.EventSubject(f.node, "container", action), data); err != nil {
		f.t.Logf("fake supervisor: publish event: %v", err)
	}
}

func (f *fakeSupervisor) out(id, stream, s string) {
	m := nats.NewMsg(bus.IOOut(f.node, id))
	m.Header.Set(bus.HeaderStream, stream)
	m.Data = []byte(s)
	_ = f.nc.PublishMsg(m)
	f.mu.Lock()
	f.logs[id] = append(f.logs[id], bus.LogEntry{Log: s, Stream: stream, Time: time.Now()})
	f.mu.Unlock()
}

func (f *fakeSupervisor) start(ref string) error {
	f.mu.Lock()
	c, err := f.find(ref)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	if c.rec.State.Running {
		f.mu.Unlock()
		return errdefs.New(errdefs.NotModified, "container already started")
	}
	if c.rec.Path == "/no/such/binary" {
		// Like dockerd: a failed start of an auto-remove container removes it.
		if c.rec.HostConfig != nil && c.rec.HostConfig.AutoRemove {
			delete(f.containers, c.rec.ID)
			f.event("destroy", &c.rec, nil)
		}
		f.mu.Unlock()
		return errdefs.New(errdefs.InvalidParameter, "failed to create task for container: exec: %q: stat %s: no such file or directory: unknown", c.rec.Path, c.rec.Path)
	}
	c.stop = make(chan int, 1)
	c.rec.State = dockermsg.State{Status: container.StateRunning, Running: true, Pid: 4242, StartedAt: time.Now()}
	rec := c.rec
	stop := c.stop
	f.event("start", &rec, nil)
	var stdin chan []byte
	if rec.Path == "cat" {
		stdin = make(chan []byte, 64)
		sub, _ := f.nc.Subscribe(bus.IOIn(f.node, rec.ID), func(m *nats.Msg) {
			if m.Header.Get(bus.HeaderEOF) == "1" {
				close(stdin)
			} else {
				stdin <- m.Data
			}
			_ = m.Respond(bus.EncodeReply(nil, nil))
		})
		c.stdin = sub
	}
	f.mu.Unlock()
	go f.run(rec, stop, stdin)
	return nil
}

// run plays the container's program.
func (f *fakeSupervisor) run(rec dockermsg.Container, stop chan int, stdin chan []byte) {
	code := 0
	args := rec.Args
	switch rec.Path {
	case "echo":
		f.out(rec.ID, "stdout", strings.Join(args, " ")+"\n")
	case "cat":
		for data := range stdin {
			f.out(rec.ID, "stdout", string(data))
		}
	case "sleep":
		code = <-stop
	case "true":
	case "pwd":
		wd := rec.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		f.out(rec.ID, "stdout", wd+"\n")
	case "hostname":
		h := rec.Config.Hostname
		if h == "" {
			h = rec.ID[:12]
		}
		f.out(rec.ID, "stdout", h+"\n")
	case "id":
		u := rec.Config.User
		if u == "" {
			u = "0"
		}
		f.out(rec.ID, "stdout", u+"\n")
	case "sh":
		script := ""
		if len(args) == 2 && args[0] == "-c" {
			script = args[1]
		}
		for _, part := range strings.Split(script, ";") {
			part = strings.TrimSpace(part)
			switch {
			case strings.HasPrefix(part, "exit "):
				code, _ = strconv.Atoi(strings.TrimPrefix(part, "exit "))
			case strings.HasPrefix(part, "echo ") && strings.HasSuffix(part, ">&2"):
				f.out(rec.ID, "stderr", strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(part, "echo "), ">&2"))+"\n")
			case strings.HasPrefix(part, "echo "):
				f.out(rec.ID, "stdout", expand(strings.TrimPrefix(part, "echo "), rec.Config.Env)+"\n")
			case strings.HasPrefix(part, "sleep "):
				n, _ := strconv.ParseFloat(strings.TrimPrefix(part, "sleep "), 64)
				select {
				case code = <-stop:
					goto exited
				case <-time.After(time.Duration(n * float64(time.Second))):
				}
			}
		}
	}
exited:
	eof := nats.NewMsg(bus.IOOut(f.node, rec.ID))
	eof.Header.Set(bus.HeaderEOF, "1")
	_ = f.nc.PublishMsg(eof)

	f.mu.Lock()
	c, ok := f.containers[rec.ID]
	if !ok {
		f.mu.Unlock()
		return
	}
	if c.stdin != nil {
		_ = c.stdin.Unsubscribe()
		c.stdin = nil
	}
	c.rec.State.Running = false
	c.rec.State.Status = container.StateExited
	c.rec.State.ExitCode = code
	c.rec.State.Pid = 0
	c.rec.State.FinishedAt = time.Now()
	final := c.rec
	c.stop = nil
	f.event("die", &final, map[string]string{"exitCode": strconv.Itoa(code)})
	autoRemove := final.HostConfig != nil && final.HostConfig.AutoRemove
	if autoRemove {
		delete(f.containers, rec.ID)
		f.event("destroy", &final, nil)
	}
	f.mu.Unlock()
}

// signal stops a running container; notModified answers 304 when it is not running.
func (f *fakeSupervisor) signal(ref string, code int, notModified bool) error {
	f.mu.Lock()
	c, err := f.find(ref)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	if !c.rec.State.Running || c.stop == nil {
		f.mu.Unlock()
		if notModified {
			return errdefs.New(errdefs.NotModified, "container already stopped")
		}
		return errdefs.New(errdefs.Conflict, "Container %s is not running", c.rec.ID)
	}
	select {
	case c.stop <- code:
	default:
	}
	id := c.rec.ID
	f.mu.Unlock()
	// Wait for the exit like the real supervisor does.
	for i := 0; i < 200; i++ {
		f.mu.Lock()
		c, ok := f.containers[id]
		running := ok && c.rec.State.Running
		f.mu.Unlock()
		if !running {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("container did not stop")
}

func (f *fakeSupervisor) remove(ref string, force bool) error {
	f.mu.Lock()
	c, err := f.find(ref)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	if c.rec.State.Running && !force {
		f.mu.Unlock()
		return errdefs.New(errdefs.Conflict, "You cannot remove a running container %s. Stop the container before attempting removal or force remove", c.rec.ID)
	}
	running := c.rec.State.Running
	id := c.rec.ID
	f.mu.Unlock()
	if running {
		_ = f.signal(id, 137, false)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		delete(f.containers, id)
		f.event("destroy", &c.rec, nil)
	}
	return nil
}

// expand plays the shell's $$ and $VAR.
func expand(s string, env []string) string {
	s = strings.ReplaceAll(s, "$$", "1")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		s = strings.ReplaceAll(s, "$"+k, v)
	}
	return s
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
