package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	dockerregistry "github.com/docker/docker/api/types/registry"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
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
		res, err := s.Images.Pull(ctx, s.Registry, image.PullOptions{Ref: req.Ref, Auth: auth, Platform: req.Platform, Progress: p})
		if err != nil {
			s.Log.Info("pull failed", "ref", req.Ref, "err", err)
			return err
		}
		s.Log.Info("pulled", "ref", res.Ref, "id", res.Image.ID, "layers fetched", res.Fetched)
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
