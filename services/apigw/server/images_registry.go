package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// progressIdle ends a pull or push whose supervisor went silent (it sends a
// heartbeat every few seconds).
const progressIdle = 60 * time.Second

// imagePull is POST /images/create?fromImage=: the supervisor pulls and
// streams Docker's JSON progress lines, which go to the client as they come.
func (s *Server) imagePull(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("fromImage")
	all := false
	if tag := q.Get("tag"); tag != "" {
		if strings.Contains(tag, ":") {
			ref += "@" + tag // a digest
		} else {
			ref += ":" + tag
		}
	} else if named, err := reference.ParseNormalizedNamed(ref); err == nil && reference.IsNameOnly(named) {
		// as dockerd: a name without tag (the CLI's pull -a) is every tag
		all = true
	}
	req := &bus.ImagePullRequest{Meta: newKey(), Ref: ref, AllTags: all, Platform: q.Get("platform"), Auth: r.Header.Get("X-Registry-Auth")}
	s.progressStream(w, r, bus.VerbImagePull, req, &req.Inbox)
}

// imagePush is POST /images/{name}/push.
func (s *Server) imagePush(w http.ResponseWriter, r *http.Request, name string) {
	auth := r.Header.Get("X-Registry-Auth")
	if auth == "" {
		// dockerd insists on the header (the CLI always sends one)
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "missing X-Registry-Auth header"))
		return
	}
	req := &bus.ImagePushRequest{Meta: newKey(), Name: name, Tag: r.URL.Query().Get("tag"), Auth: auth}
	s.progressStream(w, r, bus.VerbImagePush, req, &req.Inbox)
}

// progressStream sends a streamed command and relays its ProgressChunks.
// An error before any progress line is an ordinary error answer (with its
// HTTP status); after, it is the stream's last line, as dockerd does.
func (s *Server) progressStream(w http.ResponseWriter, r *http.Request, verb string, req any, inbox *string) {
	nc, err := s.conn()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	*inbox = nc.NewInbox()
	ch := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(*inbox, ch)
	if err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.Unavailable, err))
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, 64<<20)
	if err := s.call(r, bus.AreaImages, verb, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.doneCtx(r)
	defer cancel()
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
		}
	}
	idle := time.NewTimer(progressIdle)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = nc.Publish(*inbox+".cancel", nil)
			return
		case <-idle.C:
			_ = nc.Publish(*inbox+".cancel", nil)
			err := errdefs.New(errdefs.Unavailable, "berth-supervisor stopped reporting progress for %s", progressIdle)
			if !started {
				s.fail(w, r, err)
				return
			}
			writeErrorLine(w, err.Error())
			return
		case msg := <-ch:
			idle.Reset(progressIdle)
			var chunk bus.ProgressChunk
			if err := json.Unmarshal(msg.Data, &chunk); err != nil {
				s.log.Warn("progress: bad chunk on the bus", "err", err)
				continue
			}
			if len(chunk.Lines) > 0 {
				start()
				for _, l := range chunk.Lines {
					_, _ = w.Write(append(l, '\n'))
				}
				flush(w)
			}
			if !chunk.Done {
				continue
			}
			if chunk.Error != nil {
				err := errdefs.New(chunk.Error.Kind, "%s", chunk.Error.Message)
				if !started {
					s.fail(w, r, err)
					return
				}
				writeErrorLine(w, chunk.Error.Message)
			}
			start()
			return
		}
	}
}

func writeErrorLine(w http.ResponseWriter, msg string) {
	data, _ := json.Marshal(map[string]any{"errorDetail": map[string]string{"message": msg}, "error": msg})
	_, _ = w.Write(append(data, '\n'))
	flush(w)
}

// auth is POST /auth (docker login): the supervisor checks the credentials
// with the registry.
func (s *Server) auth(w http.ResponseWriter, r *http.Request) {
	var ac registry.AuthConfig
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&ac); err != nil {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "invalid credentials: %v", err))
		return
	}
	req := bus.ImageLoginRequest{Username: ac.Username, Password: ac.Password, ServerAddress: ac.ServerAddress,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
	var resp map[string]string
	if err := s.call(r, bus.AreaImages, bus.VerbImageLogin, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, registry.AuthenticateOKBody{Status: resp["Status"], IdentityToken: resp["IdentityToken"]})
}
