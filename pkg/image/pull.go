package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/registry"
)

// Media types of manifests, indexes and configs.
const (
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mediaTypeSchema1        = "application/vnd.docker.distribution.manifest.v1"
)

// Pull tuning.
const (
	// MaxConcurrentDownloads is dockerd's default.
	MaxConcurrentDownloads = 3
	maxConfigSize          = 8 << 20
	downloadAttempts       = 5
	retryBackoff           = 500 * time.Millisecond // times the attempt number
	// stallTimeout ends a blob transfer that has received nothing for so
	// long (a registry that hangs rather than dies).
	stallTimeout = 60 * time.Second
)

// PullOptions are docker pull's.
type PullOptions struct {
	Ref      string // name[:tag] or name@digest
	Auth     registry.Auth
	Platform string // os/arch[/variant]; "" is linux/<this machine's arch>
	Progress Progress
}

// PullResult says what a pull did.
type PullResult struct {
	Image   *dockermsg.Image
	Ref     string // familiar form of the reference pulled
	Digest  digest.Digest
	New     bool // the image was not there before
	Fetched int  // layer blobs downloaded
}

// ParsePlatform reads os/arch[/variant]; "" is linux and this machine's
// architecture.
func ParsePlatform(p string) (ocispec.Platform, error) {
	if p == "" {
		return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	parts := strings.Split(strings.ToLower(p), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ocispec.Platform{}, errdefs.New(errdefs.InvalidParameter, "invalid platform %q: want os/arch[/variant]", p)
	}
	pl := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		pl.Variant = parts[2]
	}
	return pl, nil
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Pull fetches an image from its registry: the manifest (picking the
// platform from an index), the config and every layer not yet in the
// store, verifying each against its digest, unpacking layers as they
// download. The image is recorded only when every layer is in: a failed
// pull leaves no image; its complete layers stay for the next attempt, and
// an interrupted blob download is resumed from where it stopped.
func (s *Store) Pull(ctx context.Context, c *registry.Client, o PullOptions) (*PullResult, error) {
	named, want, err := parsePull(o)
	if err != nil {
		return nil, err
	}
	named = reference.TagNameOnly(named)
	res, err := s.pullRef(ctx, c.Repository(named, o.Auth, false), named, want, o.Progress)
	if err != nil {
		return nil, err
	}
	s.pulled(named, res.New || res.Fetched > 0, o.Progress)
	return res, nil
}

// PullAllTags is docker pull --all-tags: every tag the registry lists for
// the repository o.Ref names (a name without tag or digest), one after the
// other as dockerd does, with one status line and one pull event for the
// repository at the end.
func (s *Store) PullAllTags(ctx context.Context, c *registry.Client, o PullOptions) ([]*PullResult, error) {
	named, want, err := parsePull(o)
	if err != nil {
		return nil, err
	}
	if !reference.IsNameOnly(named) {
		return nil, errdefs.New(errdefs.InvalidParameter, "tag can't be used with --all-tags/-a")
	}
	repo := c.Repository(named, o.Auth, false)
	tags, err := repo.Tags(ctx)
	if err != nil {
		return nil, pullError(named, err)
	}
	var out []*PullResult
	updated := false
	for _, tag := range tags {
		tagged, err := reference.WithTag(named, tag)
		if err != nil {
			return out, errdefs.New(errdefs.InvalidParameter, "invalid tag %q in the registry's tag list: %v", tag, err)
		}
		res, err := s.pullRef(ctx, repo, tagged, want, o.Progress)
		if err != nil {
			return out, err
		}
		updated = updated || res.New || res.Fetched > 0
		out = append(out, res)
	}
	s.pulled(named, updated, o.Progress)
	return out, nil
}

// parsePull reads a pull's reference and platform.
func parsePull(o PullOptions) (reference.Named, ocispec.Platform, error) {
	named, err := reference.ParseNormalizedNamed(o.Ref)
	if err != nil {
		return nil, ocispec.Platform{}, errdefs.New(errdefs.InvalidParameter, "invalid reference format: %v", err)
	}
	want, err := ParsePlatform(o.Platform)
	return named, want, err
}

// pulled ends a pull as dockerd does: the pull event (for an up-to-date
// image too; the reference as the actor, the repository as its name) and
// the status line.
func (s *Store) pulled(named reference.Named, updated bool, p Progress) {
	familiar := reference.FamiliarString(named)
	s.emit("pull", familiar, map[string]string{"name": reference.FamiliarName(named)})
	if updated {
		p.line("Status: Downloaded newer image for " + familiar)
	} else {
		p.line("Status: Image is up to date for " + familiar)
	}
}

// pullRef pulls one tagged or digested reference, up to its "Digest:" line.
func (s *Store) pullRef(ctx context.Context, repo *registry.Repo, named reference.Named, want ocispec.Platform, p Progress) (*PullResult, error) {
	ref := ""
	switch r := named.(type) {
	case reference.Canonical:
		ref = r.Digest().String()
	case reference.Tagged:
		ref = r.Tag()
	}
	familiar := reference.FamiliarString(named)
	p.status(ref, "Pulling from "+reference.Path(named))

	body, mt, topDigest, err := repo.Manifest(ctx, ref)
	if err != nil {
		return nil, pullError(named, err)
	}
	manifest, err := s.pickManifest(ctx, repo, named, body, mt, want)
	if err != nil {
		return nil, err
	}
	cfgRaw, err := s.ReadBlob(manifest.Config.Digest) // an image we have: nothing to fetch
	if err != nil || digest.FromBytes(cfgRaw) != manifest.Config.Digest {
		if cfgRaw, err = fetchSmallBlob(ctx, repo, manifest.Config); err != nil {
			return nil, pullError(named, err)
		}
	}
	img, err := parseConfig(cfgRaw)
	if err != nil {
		return nil, err
	}
	if img.OS != want.OS || img.Architecture != want.Architecture {
		return nil, errdefs.New(errdefs.NotFound, "image with reference %s was found but its platform (%s/%s) does not match the specified platform (%s)", familiar, img.OS, img.Architecture, platformString(want))
	}
	if len(img.RootFS.DiffIDs) != len(manifest.Layers) {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid image %s: the manifest has %d layers, the config %d", familiar, len(manifest.Layers), len(img.RootFS.DiffIDs))
	}
	for _, l := range manifest.Layers {
		if err := checkLayerDescriptor(l); err != nil {
			return nil, err
		}
	}
	s.pin(img.RootFS.DiffIDs)
	defer s.unpin(img.RootFS.DiffIDs)

	fetched := 0
	s.mu.RLock()
	_, have := s.images[img.ID]
	s.mu.RUnlock()
	if !have { // as dockerd: an image in the store has nothing to pull, nor a line per layer
		if fetched, err = s.fetchLayers(ctx, repo, manifest.Layers, img.RootFS.DiffIDs, p); err != nil {
			return nil, pullError(named, err)
		}
	}
	n := NewImage{Config: cfgRaw, Digests: []string{reference.FamiliarName(named) + "@" + topDigest.String()}}
	if _, ok := named.(reference.Canonical); ok {
		n.MoveDigests = true // the digest pulled names this image now
	} else {
		n.Tags = []string{familiar}
	}
	out, isNew, err := s.AddImage(n)
	if err != nil {
		return nil, err
	}
	p.line("Digest: " + topDigest.String())
	return &PullResult{Image: out, Ref: familiar, Digest: topDigest, New: isNew, Fetched: fetched}, nil
}

// pullError words a registry's refusal as dockerd does.
func pullError(named reference.Named, err error) error {
	var re *registry.Error
	if errors.As(err, &re) {
		switch {
		case re.Code == "MANIFEST_UNKNOWN" || (re.Status == 404 && re.Code == ""):
			return errdefs.New(errdefs.NotFound, "manifest for %s not found: manifest unknown: %s", reference.FamiliarString(named), orDefault(re.Message, "manifest unknown"))
		case re.Code == "NAME_UNKNOWN":
			return errdefs.New(errdefs.NotFound, "repository %s not found: name unknown: %s", reference.FamiliarName(named), orDefault(re.Message, "repository name not known to registry"))
		case registry.IsAuthError(err):
			return errdefs.New(errdefs.NotFound, "pull access denied for %s, repository does not exist or may require 'docker login': denied: %s", reference.FamiliarName(named), orDefault(re.Message, "requested access to the resource is denied"))
		}
		return errdefs.New(errdefs.Unknown, "%v", err)
	}
	if errdefs.Is(err, errdefs.Unauthorized) {
		return errdefs.New(errdefs.NotFound, "pull access denied for %s, repository does not exist or may require 'docker login': %v", reference.FamiliarName(named), err)
	}
	return err
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func manifestMediaType(body []byte, header string) string {
	var probe struct {
		MediaType     string          `json:"mediaType"`
		SchemaVersion int             `json:"schemaVersion"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
	}
	_ = json.Unmarshal(body, &probe)
	switch {
	case probe.SchemaVersion == 1:
		return mediaTypeSchema1
	case probe.MediaType != "":
		return probe.MediaType
	case header != "" && header != "application/json" && header != "text/plain":
		return header
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return header
}

// pickManifest returns the image manifest of body, following an index to
// the entry for platform want.
func (s *Store) pickManifest(ctx context.Context, repo *registry.Repo, named reference.Named, body []byte, headerType string, want ocispec.Platform) (*ocispec.Manifest, error) {
	for depth := 0; ; depth++ {
		switch mt := manifestMediaType(body, headerType); {
		case mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerList:
			if depth > 0 {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid image %s: nested image indexes", reference.FamiliarString(named))
			}
			var idx ocispec.Index
			if err := json.Unmarshal(body, &idx); err != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid image index for %s: %v", reference.FamiliarString(named), err)
			}
			d, ok := matchPlatform(idx.Manifests, want)
			if !ok {
				return nil, errdefs.New(errdefs.NotFound, "no matching manifest for %s in the manifest list entries", platformString(want))
			}
			var err error
			if body, headerType, _, err = repo.Manifest(ctx, d.Digest.String()); err != nil {
				return nil, pullError(named, err)
			}
		case mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest:
			var m ocispec.Manifest
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid manifest for %s: %v", reference.FamiliarString(named), err)
			}
			if m.Config.Digest.Validate() != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid manifest for %s: bad config digest", reference.FamiliarString(named))
			}
			if m.Config.MediaType != "" && m.Config.MediaType != ocispec.MediaTypeImageConfig && m.Config.MediaType != MediaTypeDockerConfig {
				return nil, errdefs.New(errdefs.InvalidParameter, "%s is not a container image (config media type %s)", reference.FamiliarString(named), m.Config.MediaType)
			}
			return &m, nil
		case mt == mediaTypeSchema1 || strings.HasPrefix(mt, "application/vnd.docker.distribution.manifest.v1"):
			return nil, errdefs.New(errdefs.InvalidParameter, "%s: Docker image format v1 and Docker Image manifest version 2, schema 1 are not supported", reference.FamiliarString(named))
		default:
			return nil, errdefs.New(errdefs.InvalidParameter, "unsupported manifest media type %q for %s", mt, reference.FamiliarString(named))
		}
	}
}

func matchPlatform(ds []ocispec.Descriptor, want ocispec.Platform) (ocispec.Descriptor, bool) {
	var fallback *ocispec.Descriptor
	for i, d := range ds {
		p := d.Platform
		if p == nil || p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if want.Variant == "" || p.Variant == want.Variant {
			return d, true
		}
		if fallback == nil {
			fallback = &ds[i]
		}
	}
	if fallback != nil && want.Variant == "" {
		return *fallback, true
	}
	return ocispec.Descriptor{}, false
}

func checkLayerDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return errdefs.New(errdefs.InvalidParameter, "invalid layer digest %q: %v", d.Digest, err)
	}
	switch d.MediaType {
	case ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerZstd,
		MediaTypeDockerLayer, MediaTypeDockerTar, "":
		return nil
	}
	return errdefs.New(errdefs.InvalidParameter, "unsupported layer media type %s (layer %s)", d.MediaType, d.Digest)
}

func fetchSmallBlob(ctx context.Context, repo *registry.Repo, d ocispec.Descriptor) ([]byte, error) {
	if d.Size > maxConfigSize {
		return nil, errdefs.New(errdefs.InvalidParameter, "config blob %s is too large (%d bytes)", d.Digest, d.Size)
	}
	rc, _, _, err := repo.Blob(ctx, d.Digest, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, errdefs.New(errdefs.Unavailable, "reading config %s: %v", d.Digest, err)
	}
	if got := digest.FromBytes(data); got != d.Digest {
		return nil, errdefs.New(errdefs.InvalidParameter, "config %s: digest mismatch (got %s): corrupt blob", d.Digest, got)
	}
	return data, nil
}

// fetchLayers downloads and unpacks the layers not in the store, at most
// MaxConcurrentDownloads at once, and returns how many it fetched.
func (s *Store) fetchLayers(ctx context.Context, repo *registry.Repo, descs []ocispec.Descriptor, diffIDs []digest.Digest, p Progress) (int, error) {
	type job struct {
		desc   ocispec.Descriptor
		diffID digest.Digest
	}
	var jobs []job
	seen := map[digest.Digest]bool{}
	for i, d := range descs {
		id := ShortID(d.Digest.String())
		if _, ok := s.Layer(diffIDs[i]); ok || seen[diffIDs[i]] {
			if !seen[diffIDs[i]] {
				p.status(id, "Already exists")
			}
			continue
		}
		seen[diffIDs[i]] = true
		p.status(id, "Pulling fs layer")
		jobs = append(jobs, job{d, diffIDs[i]})
	}
	for i := MaxConcurrentDownloads; i < len(jobs); i++ {
		p.status(ShortID(jobs[i].desc.Digest.String()), "Waiting")
	}
	fns := make([]func(context.Context) error, 0, len(jobs))
	for _, j := range jobs {
		fns = append(fns, func(ctx context.Context) error { return s.fetchLayer(ctx, repo, j.desc, j.diffID, p) })
	}
	return len(jobs), runLimited(ctx, MaxConcurrentDownloads, fns)
}

// runLimited runs fns, at most n at once; the first error cancels the
// others and is returned.
func runLimited(ctx context.Context, n int, fns []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// fetchLayer downloads one layer blob and unpacks it as it arrives,
// resuming a partial download left by an earlier attempt and retrying a
// transfer that breaks.
func (s *Store) fetchLayer(ctx context.Context, repo *registry.Repo, d ocispec.Descriptor, diffID digest.Digest, p Progress) error {
	unlock := s.lockLayer(diffID)
	defer unlock()
	id := ShortID(d.Digest.String())
	if _, ok := s.Layer(diffID); ok {
		p.status(id, "Already exists")
		return nil
	}
	dl := &bar{p: p, id: id, action: "Downloading", total: d.Size}
	var err error
	for attempt := 1; attempt <= downloadAttempts; attempt++ {
		err = s.tryFetchLayer(ctx, repo, d, diffID, dl, p)
		if err == nil || ctx.Err() != nil || !errdefs.Is(err, errdefs.Unavailable) {
			break
		}
		if attempt < downloadAttempts {
			wait := time.Duration(attempt) * retryBackoff
			p.status(id, fmt.Sprintf("Retrying in %s", wait))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
	}
	if err != nil {
		return err
	}
	p.status(id, "Pull complete")
	return nil
}

func (s *Store) tryFetchLayer(ctx context.Context, repo *registry.Repo, d ocispec.Descriptor, diffID digest.Digest, dl *bar, p Progress) error {
	id := ShortID(d.Digest.String())
	partial := s.partialPath(d.Digest)
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if d.Size > 0 && have > d.Size {
		if err := f.Truncate(0); err != nil {
			return err
		}
		have = 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var body io.ReadCloser
	from := int64(0)
	if d.Size <= 0 || have < d.Size {
		var err error
		body, from, _, err = repo.Blob(ctx, d.Digest, have)
		if errdefs.Is(err, errdefs.Unavailable) {
			return errdefs.New(errdefs.Unavailable, "downloading layer %s: %v", id, err)
		}
		if err != nil {
			return err
		}
		defer body.Close()
		if from == 0 && have > 0 {
			// the registry ignored the range: start over
			if err := f.Truncate(0); err != nil {
				return err
			}
			have = 0
		}
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	dl.mu.Lock()
	dl.cur = 0
	dl.mu.Unlock()
	dl.add(have)
	h := sha256.New()
	// what an earlier attempt got, then the rest from the registry, which
	// is appended to the partial file as it comes
	net := newNetReader(body, f, dl, cancel)
	defer net.f.Flush() // what came before a failure is kept for the next attempt
	src := io.MultiReader(io.NewSectionReader(f, 0, have), net)
	var blobSize countWriter
	_, err = s.ingestLayer(layerInput{
		r:         io.TeeReader(src, io.MultiWriter(h, &blobSize)),
		diffID:    diffID,
		blob:      d.Digest,
		blobSize:  d.Size,
		mediaType: d.MediaType,
		whiteouts: true,
		blobFile:  partial,
		verify: func() error {
			dl.emit(int64(blobSize))
			p.status(id, "Verifying Checksum")
			if got := digest.NewDigest(digest.SHA256, h); got != d.Digest {
				return errdefs.New(errdefs.InvalidParameter, "filesystem layer verification failed for digest %s (got %s)", d.Digest, got)
			}
			if d.Size > 0 && int64(blobSize) != d.Size {
				return errdefs.New(errdefs.InvalidParameter, "layer %s: got %d bytes, the manifest says %d", d.Digest, blobSize, d.Size)
			}
			p.status(id, "Download complete")
			p.send(Message{ID: id, Status: "Extracting", ProgressDetail: &Detail{Current: d.Size, Total: d.Size}})
			return nil
		},
	})
	switch {
	case err == nil:
		return nil
	case net.err != nil && ctx.Err() == nil:
		// the transfer broke: what arrived is kept for the next attempt
		return errdefs.New(errdefs.Unavailable, "downloading layer %s: %v", id, net.err)
	case net.err != nil && net.stalled.Load():
		return errdefs.New(errdefs.Unavailable, "downloading layer %s: nothing received for %s", id, stallTimeout)
	case errdefs.Is(err, errdefs.InvalidParameter):
		// corrupt content: the partial download is of no use
		_ = os.Remove(partial)
	}
	return err
}

// netReader reads the registry's body, appending it to the partial file and
// counting progress; it cancels the request when nothing arrives for
// stallTimeout, and remembers a failed read.
type netReader struct {
	r       io.Reader
	f       *bufio.Writer
	dl      *bar
	timer   *time.Timer
	err     error
	stalled atomic.Bool
}

func newNetReader(body io.Reader, f *os.File, dl *bar, cancel func()) *netReader {
	n := &netReader{r: body, f: bufio.NewWriterSize(f, 1<<20), dl: dl}
	if body != nil {
		n.timer = time.AfterFunc(stallTimeout, func() { n.stalled.Store(true); cancel() })
	}
	return n
}

func (s *netReader) Read(p []byte) (int, error) {
	if s.r == nil {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	s.timer.Reset(stallTimeout)
	if n > 0 {
		if _, werr := s.f.Write(p[:n]); werr != nil {
			return n, werr
		}
		s.dl.add(int64(n))
	}
	if err != nil {
		s.timer.Stop()
		if ferr := s.f.Flush(); ferr != nil {
			return n, ferr
		}
		if err != io.EOF {
			s.err = err
		}
	}
	return n, err
}
