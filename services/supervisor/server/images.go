package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	dockerregistry "github.com/docker/docker/api/types/registry"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/image"
	"berth/pkg/registry"
)

// Streamed image commands (pull, push) publish their progress at most this
// often, and at least this often as a heartbeat so apigw knows the
// supervisor is still at it.
const (
	progressFlush     = 100 * time.Millisecond
	progressHeartbeat = 5 * time.Second
)

// moreImageCommand handles the image commands of issue 5: registry, archive
// and housekeeping commands.
func (s *Server) moreImageCommand(ctx context.Context, verb string, m *nats.Msg) (any, error) {
	switch verb {
	case bus.VerbImagePull:
		req, err := decode[bus.ImagePullRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.pull(req)
	case bus.VerbImagePush:
		req, err := decode[bus.ImagePushRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.push(req)
	case bus.VerbImageLogin:
		req, err := decode[bus.ImageLoginRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.login(ctx, req)
	case bus.VerbImageLoad:
		req, err := decode[bus.ImageLoadRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.load(ctx, req)
	case bus.VerbImageSave:
		req, err := decode[bus.ImageSaveRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.save(ctx, req)
	case bus.VerbImageHistory:
		req, err := decode[bus.ImageRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.Images.History(req.Name)
	case bus.VerbImagePrune:
		req, err := decode[bus.ImagePruneRequest](m.Data)
		if err != nil {
			return nil, err
		}
		return s.Images.Prune(req.Filters)
	case bus.VerbImageUsage:
		return s.Images.Usage(), nil
	case bus.VerbImageCommit:
		return s.commit(m.Data)
	}
	return nil, errdefs.New(errdefs.NotImplemented, "unknown image command %q", verb)
}

// registryAuth reads X-Registry-Auth (base64url JSON, as the docker CLI
// sends it; "" is anonymous).
func registryAuth(h string) (registry.Auth, error) {
	if h == "" {
		return registry.Auth{}, nil
	}
	ac, err := dockerregistry.DecodeAuthConfig(h)
	if err != nil {
		return registry.Auth{}, errdefs.New(errdefs.InvalidParameter, "invalid X-Registry-Auth header: %v", err)
	}
	return authFrom(ac.Username, ac.Password, ac.Auth, ac.IdentityToken, ac.RegistryToken), nil
}

func authFrom(user, pass, auth, identity, token string) registry.Auth {
	if user == "" && auth != "" {
		if b, err := base64.StdEncoding.DecodeString(auth); err == nil {
			user, pass, _ = strings.Cut(string(b), ":")
		}
	}
	return registry.Auth{Username: user, Password: pass, IdentityToken: identity, RegistryToken: token}
}

func validInbox(inbox string) error {
	if inbox == "" || strings.ContainsAny(inbox, "*> \t\r\n") || strings.HasPrefix(inbox, "berth.") {
		return errdefs.New(errdefs.InvalidParameter, "invalid inbox %q", inbox)
	}
	return nil
}

// stream runs fn in the background, publishing its progress messages to
// inbox in chunks and a last chunk with Done (and the error); a message on
// inbox+".cancel" cancels it. The command itself is answered at once.
func (s *Server) stream(inbox string, fn func(ctx context.Context, p image.Progress) error) (any, error) {
	if err := validInbox(inbox); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sub, err := s.Conn.Subscribe(inbox+".cancel", func(*nats.Msg) { cancel() })
	if err != nil {
		cancel()
		return nil, errdefs.Wrap(errdefs.Unavailable, err)
	}
	var mu sync.Mutex
	var lines []json.RawMessage
	send := func(c bus.ProgressChunk) {
		data, err := json.Marshal(c)
		if err == nil {
			err = s.Conn.Publish(inbox, data)
		}
		if err != nil {
			s.busError("publishing progress", err)
		}
	}
	flush := func(force bool) {
		mu.Lock()
		batch := lines
		lines = nil
		mu.Unlock()
		if len(batch) > 0 || force {
			send(bus.ProgressChunk{Lines: batch})
		}
	}
	progress := func(msg image.Message) {
		data, err := json.Marshal(msg)
		if err != nil {
			return
		}
		mu.Lock()
		lines = append(lines, data)
		mu.Unlock()
	}
	s.spawn(func() {
		defer cancel()
		defer func() { _ = sub.Unsubscribe() }()
		done := make(chan struct{})
		go func() {
			t := time.NewTicker(progressFlush)
			defer t.Stop()
			last := time.Now()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					beat := time.Since(last) > progressHeartbeat
					if beat {
						last = time.Now()
					}
					flush(beat)
				}
			}
		}()
		err := fn(ctx, progress)
		close(done)
		flush(false)
		end := bus.ProgressChunk{Done: true}
		if err != nil {
			end.Error = &bus.ReplyError{Kind: errdefs.KindOf(err), Message: err.Error()}
		}
		send(end)
	})
	return struct{}{}, nil
}

func (s *Server) pull(req *bus.ImagePullRequest) (any, error) {
	if req.Ref == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "missing image reference")
	}
	if _, err := reference.ParseNormalizedNamed(req.Ref); err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid reference format: %v", err)
	}
	if _, err := image.ParsePlatform(req.Platform); err != nil {
		return nil, err
	}
	auth, err := registryAuth(req.Auth)
	if err != nil {
		return nil, err
	}
	return s.stream(req.Inbox, func(ctx context.Context, p image.Progress) error {
		t0 := time.Now()
		o := image.PullOptions{Ref: req.Ref, Auth: auth, Platform: req.Platform, Progress: p}
		var res []*image.PullResult
		var err error
		if req.AllTags {
			res, err = s.Images.PullAllTags(ctx, s.Registry, o)
		} else {
			var r *image.PullResult
			if r, err = s.Images.Pull(ctx, s.Registry, o); err == nil {
				res = append(res, r)
			}
		}
		s.countTransfer("pull", err)
		if err != nil {
			s.Log.Info("pull failed", "ref", req.Ref, "err", err)
			return err
		}
		for _, r := range res {
			if s.Metrics != nil {
				s.Metrics.LayersFetched.Add(float64(r.Fetched))
			}
			s.Log.Info("pulled", "ref", r.Ref, "id", r.Image.ID, "layersFetched", r.Fetched, "seconds", time.Since(t0).Seconds())
		}
		return nil
	})
}

// login is POST /auth: the registry must accept the credentials.
func (s *Server) login(ctx context.Context, req *bus.ImageLoginRequest) (any, error) {
	addr := req.ServerAddress
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "https://"), "http://")
	addr, _, _ = strings.Cut(addr, "/")
	if addr == "" || addr == "index.docker.io" {
		addr = "docker.io"
	}
	named, err := reference.ParseNormalizedNamed(addr + "/berth-login-check")
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid registry address %q: %v", req.ServerAddress, err)
	}
	auth := authFrom(req.Username, req.Password, "", req.IdentityToken, req.RegistryToken)
	repo := s.Registry.Repository(named, auth, false)
	repo.Path = "" // a login asks for no repository scope
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := repo.Ping(ctx); err != nil {
		if registry.IsAuthError(err) {
			return nil, errdefs.New(errdefs.Unauthorized, "login attempt to %s failed: %v", registry.Host(named), err)
		}
		return nil, err
	}
	return map[string]string{"Status": "Login Succeeded"}, nil
}

func (s *Server) push(req *bus.ImagePushRequest) (any, error) {
	if req.Name == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "missing image name")
	}
	auth, err := registryAuth(req.Auth)
	if err != nil {
		return nil, err
	}
	if req.Tag != "" {
		// a missing image is an error answer, not a stream
		if _, err := s.Images.Get(req.Name + ":" + req.Tag); err != nil {
			return nil, errdefs.New(errdefs.NotFound, "An image does not exist locally with the tag: %s", image.RefForError(req.Name+":"+req.Tag))
		}
	}
	return s.stream(req.Inbox, func(ctx context.Context, p image.Progress) error {
		err := s.Images.Push(ctx, s.Registry, image.PushOptions{Name: req.Name, Tag: req.Tag, Auth: auth, Progress: p})
		s.countTransfer("push", err)
		if err != nil {
			s.Log.Info("push failed", "name", req.Name, "tag", req.Tag, "err", err)
		}
		return err
	})
}

func (s *Server) load(ctx context.Context, req *bus.ImageLoadRequest) (any, error) {
	var lines []string
	err := s.readUpload(ctx, req.Object, func(r io.Reader) error {
		var err error
		lines, err = s.Images.Load(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &bus.ImageLoadResponse{Lines: lines}, nil
}

// save writes the tarball into the uploads bucket for apigw to stream.
func (s *Server) save(ctx context.Context, req *bus.ImageSaveRequest) (any, error) {
	if len(req.Names) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "no images named to save")
	}
	for _, n := range req.Names {
		if _, err := s.Images.Get(n); err != nil {
			return nil, err
		}
	}
	if s.JS == nil {
		return nil, errdefs.New(errdefs.Unavailable, "JetStream is not available on the bus: cannot hand over the saved images")
	}
	obs, err := s.JS.ObjectStore(ctx, bus.UploadsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = s.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bus.UploadsBucket, Description: "berth: request bodies handed from apigw to the supervisor"})
	}
	if err != nil {
		return nil, errdefs.New(errdefs.Unavailable, "object store %s: %v", bus.UploadsBucket, err)
	}
	object := "save-" + uuid.NewString()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.Images.Save(req.Names, pw)) }()
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: object, Description: "docker save"}, pr); err != nil {
		pr.CloseWithError(err)
		_ = obs.Delete(context.WithoutCancel(ctx), object)
		return nil, err
	}
	return &bus.ImageSaveResponse{Object: object}, nil
}

// commit is POST /commit: the container's upper directory becomes a layer
// on top of its image.
func (s *Server) commit(data []byte) (any, error) {
	req, err := decode[dockermsg.CommitRequest](data)
	if err != nil {
		return nil, err
	}
	c, err := s.Containers.Inspect(req.Container)
	if err != nil {
		return nil, err
	}
	cfg := imageConfigOf(c.Config)
	if req.Config != nil {
		over := imageConfigOf(req.Config)
		mergeConfig(&cfg, &over)
	}
	createdBy := strings.TrimSpace(c.Path + " " + strings.Join(c.Args, " "))
	if req.Pause && c.State.Running && !c.State.Paused {
		// as dockerd: frozen while its layer is read, so that the image
		// is one moment of its file system (pause and unpause events)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Containers.Pause(ctx, c.ID); err != nil {
			return nil, err
		}
		defer func() {
			if err := s.Containers.Unpause(context.WithoutCancel(ctx), c.ID); err != nil {
				s.Log.Error("unpausing after commit", "id", c.ID, "err", err)
			}
		}()
	}
	img, err := s.Images.Commit(s.Containers.UpperDir(c.ID), c.Image, image.CommitOptions{
		Repo: req.Repo, Tag: req.Tag, Comment: req.Comment, Author: req.Author,
		Changes: req.Changes, Config: cfg, CreatedBy: createdBy,
	})
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{"comment": req.Comment, "imageID": img.ID, "name": strings.TrimPrefix(c.Name, "/")}
	if len(img.RepoTags) > 0 {
		attrs["imageRef"] = img.RepoTags[0]
	}
	s.PublishEvent("container", "commit", c.ID, attrs)
	return &bus.ImageImportResponse{ID: img.ID}, nil
}

// imageConfigOf is the image side of a container's config.
func imageConfigOf(c *container.Config) ocispec.ImageConfig {
	if c == nil {
		return ocispec.ImageConfig{}
	}
	out := ocispec.ImageConfig{User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal}
	for p := range c.ExposedPorts {
		if out.ExposedPorts == nil {
			out.ExposedPorts = map[string]struct{}{}
		}
		out.ExposedPorts[string(p)] = struct{}{}
	}
	for v := range c.Volumes {
		if out.Volumes == nil {
			out.Volumes = map[string]struct{}{}
		}
		out.Volumes[v] = struct{}{}
	}
	return out
}

// mergeConfig puts over's set fields over cfg (docker commit's config body).
func mergeConfig(cfg, over *ocispec.ImageConfig) {
	if over.User != "" {
		cfg.User = over.User
	}
	if len(over.Env) > 0 {
		cfg.Env = over.Env
	}
	if len(over.Entrypoint) > 0 {
		cfg.Entrypoint = over.Entrypoint
	}
	if len(over.Cmd) > 0 {
		cfg.Cmd = over.Cmd
	}
	if over.WorkingDir != "" {
		cfg.WorkingDir = over.WorkingDir
	}
	if len(over.Labels) > 0 {
		cfg.Labels = over.Labels
	}
	if over.StopSignal != "" {
		cfg.StopSignal = over.StopSignal
	}
	if len(over.ExposedPorts) > 0 {
		cfg.ExposedPorts = over.ExposedPorts
	}
	if len(over.Volumes) > 0 {
		cfg.Volumes = over.Volumes
	}
}

func (s *Server) countTransfer(kind string, err error) {
	if s.Metrics == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = string(errdefs.KindOf(err))
		if outcome == "" {
			outcome = "error"
		}
	}
	s.Metrics.ImageTransfers.WithLabelValues(kind, outcome).Inc()
}
