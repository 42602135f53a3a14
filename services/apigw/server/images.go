package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// importTimeout bounds an image import on the supervisor's side.
const importTimeout = 10 * time.Minute

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) {
	f, err := dockerapi.ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := f.Validate(map[string]bool{"reference": true, "label": true, "dangling": true, "before": true, "since": true}); err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.InvalidParameter, err))
		return
	}
	// before/since name images: their creation times bound the list
	var before, since time.Time
	for key, bound := range map[string]*time.Time{"before": &before, "since": &since} {
		for _, ref := range f.Get(key) {
			var im dockermsg.Image
			if err := s.call(r, bus.AreaImages, bus.VerbImageInspect, bus.ImageRequest{Name: ref}, &im); err != nil {
				s.fail(w, r, err)
				return
			}
			*bound = im.Created
		}
	}
	var ims []dockermsg.Image
	if err := s.call(r, bus.AreaImages, bus.VerbImageList, struct{}{}, &ims); err != nil {
		s.fail(w, r, err)
		return
	}
	sort.SliceStable(ims, func(i, j int) bool { return ims[i].Created.After(ims[j].Created) })
	out := make([]image.Summary, 0, len(ims))
	for i := range ims {
		if !before.IsZero() && !ims[i].Created.Before(before) || !since.IsZero() && !ims[i].Created.After(since) {
			continue
		}
		if matchImage(f, &ims[i]) {
			out = append(out, dockerapi.ImageSummary(&ims[i]))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// matchImage applies the reference, label and dangling filters of GET
// /images/json; a reference filter also trims im.RepoTags to the matching tags.
func matchImage(f filters.Args, im *dockermsg.Image) bool {
	if f.Contains("dangling") {
		// as dockerd: an image no tag nor digest names
		dangling := len(im.RepoTags) == 0 && len(im.RepoDigests) == 0
		if f.ExactMatch("dangling", "true") != dangling && !(f.ExactMatch("dangling", "1") && dangling) {
			return false
		}
	}
	if !f.MatchKVList("label", im.Config.Labels) {
		return false
	}
	if f.Contains("reference") {
		// Like dockerd: only the matching tags and digests are listed, and
		// an image none matches is left out.
		im.RepoTags = matchRefs(f.Get("reference"), im.RepoTags)
		im.RepoDigests = matchRefs(f.Get("reference"), im.RepoDigests)
		if len(im.RepoTags) == 0 && len(im.RepoDigests) == 0 {
			return false
		}
	}
	return true
}

// matchRefs are the references (name:tag or name@digest) that one of the
// patterns matches, as the whole reference or as its name (dockerd's
// reference.FamiliarMatch).
func matchRefs(patterns, refs []string) []string {
	var out []string
	for _, ref := range refs {
		name := dockerapi.NormalizeImageRef(ref)
		repo, _, digested := strings.Cut(name, "@")
		if !digested {
			repo = name[:strings.LastIndex(name, ":")]
		}
		for _, pat := range patterns {
			npat := strings.TrimPrefix(strings.TrimPrefix(pat, "docker.io/"), "library/")
			m1, _ := path.Match(npat, repo)
			m2, _ := path.Match(npat, name)
			if m1 || m2 {
				out = append(out, ref)
				break
			}
		}
	}
	return out
}

// imageRef extracts {name} from /images/{name}/{suffix}; names may hold slashes.
func imageRef(r *http.Request, suffix string) (string, bool) {
	rest := chi.URLParam(r, "*")
	if suffix == "" {
		return rest, rest != ""
	}
	name, ok := strings.CutSuffix(rest, "/"+suffix)
	return name, ok && name != ""
}

func (s *Server) imageGet(w http.ResponseWriter, r *http.Request) {
	if name, ok := imageRef(r, "history"); ok {
		s.imageHistory(w, r, name)
		return
	}
	if name, ok := imageRef(r, "get"); ok {
		s.imageSave(w, r, []string{name})
		return
	}
	name, ok := imageRef(r, "json")
	if !ok {
		s.fail(w, r, errdefs.New(errdefs.NotFound, "page not found"))
		return
	}
	var im dockermsg.Image
	if err := s.call(r, bus.AreaImages, bus.VerbImageInspect, bus.ImageRequest{Name: name}, &im); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, dockerapi.ImageInspect(&im))
}

func (s *Server) imagePost(w http.ResponseWriter, r *http.Request) {
	if name, ok := imageRef(r, "push"); ok {
		s.imagePush(w, r, name)
		return
	}
	name, ok := imageRef(r, "tag")
	if !ok {
		s.fail(w, r, errdefs.New(errdefs.NotFound, "page not found"))
		return
	}
	q := r.URL.Query()
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo == "" {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "repository name must have at least one component"))
		return
	}
	repo, tag, err := splitRepoTag(repo, tag)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := bus.ImageTagRequest{Meta: newKey(), Source: name, Repo: repo, Tag: tag}
	if err := s.call(r, bus.AreaImages, bus.VerbImageTag, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) imageRemove(w http.ResponseWriter, r *http.Request) {
	name, ok := imageRef(r, "")
	if !ok {
		s.fail(w, r, errdefs.New(errdefs.NotFound, "page not found"))
		return
	}
	q := r.URL.Query()
	req := bus.ImageRemoveRequest{
		Meta:    newKey(),
		Name:    name,
		Force:   dockerapi.BoolValue(q.Get("force")),
		NoPrune: dockerapi.BoolValue(q.Get("noprune")),
	}
	var resp []bus.ImageDeleted
	if err := s.call(r, bus.AreaImages, bus.VerbImageRemove, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]image.DeleteResponse, 0, len(resp))
	for _, d := range resp {
		out = append(out, image.DeleteResponse{Untagged: d.Untagged, Deleted: d.Deleted})
	}
	writeJSON(w, http.StatusOK, out)
}

// splitRepoTag splits "repo:tag" when tag is empty; the default tag is latest.
func splitRepoTag(repo, tag string) (string, string, error) {
	if strings.Contains(repo, "@") {
		return "", "", errdefs.New(errdefs.InvalidParameter, "invalid reference format: digests are not supported here: %s", repo)
	}
	slash := strings.LastIndex(repo, "/")
	if i := strings.LastIndex(repo, ":"); i > slash {
		if tag == "" {
			tag = repo[i+1:]
		}
		repo = repo[:i]
	}
	if tag == "" {
		tag = "latest"
	}
	if repo == "" || strings.ToLower(repo) != repo || strings.ContainsAny(repo, " \t\n") {
		return "", "", errdefs.New(errdefs.InvalidParameter, "invalid reference format: repository name (%s) must be lowercase", repo)
	}
	return repo, tag, nil
}

// imageCreate is POST /images/create: pull (fromImage=) or import from the
// request body (fromSrc=-).
func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("fromImage") != "" {
		s.imagePull(w, r)
		return
	}
	src := q.Get("fromSrc")
	if src == "" {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "one of fromImage or fromSrc is required"))
		return
	}
	if src != "-" {
		s.fail(w, r, errdefs.New(errdefs.NotImplemented, "berth imports images from the request body only (fromSrc=-), not from %s", src))
		return
	}
	repo, tag := q.Get("repo"), q.Get("tag")
	if repo != "" {
		var err error
		if repo, tag, err = splitRepoTag(repo, tag); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), importTimeout)
	defer cancel()
	store, object, err := s.upload(ctx, "import", "docker import "+repo, s.uploadBody(w, r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := bus.ImageImportRequest{
		Meta:    newKey(),
		Object:  object,
		Repo:    repo,
		Tag:     tag,
		Changes: q["changes"],
		Message: q.Get("message"),
	}
	var resp bus.ImageImportResponse
	if err := s.callTimeout(r, importTimeout, bus.AreaImages, bus.VerbImageImport, req, &resp); err != nil {
		if errdefs.Is(err, errdefs.Unavailable) {
			// The supervisor may never have seen it: do not leave it behind.
			_ = store.Delete(context.WithoutCancel(ctx), object)
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "{\"status\":%q}\n", resp.ID)
}

// uploadsBucket opens (creating it if missing) the object store through
// which image tarballs go between apigw and the supervisor.
func (s *Server) uploadsBucket(ctx context.Context) (jetstream.ObjectStore, error) {
	js, err := s.jetstream()
	if err != nil {
		return nil, err
	}
	store, err := js.ObjectStore(ctx, bus.UploadsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		store, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bus.UploadsBucket, Description: "berth: request bodies handed from apigw to the supervisor"})
	}
	if err != nil {
		s.metrics.busErrors.Inc()
		return nil, errdefs.New(errdefs.Unavailable, "cannot open the upload store %s: %v", bus.UploadsBucket, err)
	}
	return store, nil
}

// uploadBody is a streamed request body, cut at MaxUploadBytes.
func (s *Server) uploadBody(w http.ResponseWriter, r *http.Request) io.Reader {
	return http.MaxBytesReader(w, r.Body, s.cfg.MaxUploadBytes)
}

// upload puts body into the uploads bucket as a new object named
// <kind>-<uuid>.
func (s *Server) upload(ctx context.Context, kind, desc string, body io.Reader) (jetstream.ObjectStore, string, error) {
	store, err := s.uploadsBucket(ctx)
	if err != nil {
		return nil, "", err
	}
	object := kind + "-" + uuid.NewString()
	if _, err := store.Put(ctx, jetstream.ObjectMeta{Name: object, Description: desc}, body); err != nil {
		_ = store.Delete(context.WithoutCancel(ctx), object)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, "", tooLarge(mbe, mbe.Limit)
		}
		return nil, "", errdefs.New(errdefs.Unavailable, "uploading the image tarball to the bus failed: %v", err)
	}
	return store, object, nil
}
