package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/errdefs"
	"berth/pkg/registry"
)

// MaxConcurrentUploads is how many layers a push sends at once.
const MaxConcurrentUploads = 3

// PushOptions are docker push's.
type PushOptions struct {
	Name     string // repository, possibly with a tag
	Tag      string // "" with no tag in Name: every tag of the repository
	Auth     registry.Auth
	Progress Progress
}

// Push uploads a local image's layers, config and manifest to its
// registry: layers the registry has already are skipped.
func (s *Store) Push(ctx context.Context, c *registry.Client, o PushOptions) error {
	named, err := reference.ParseNormalizedNamed(o.Name)
	if err != nil {
		return errdefs.New(errdefs.InvalidParameter, "invalid reference format: %v", err)
	}
	if _, ok := named.(reference.Canonical); ok {
		return errdefs.New(errdefs.InvalidParameter, "cannot push a digest reference")
	}
	var tags []string
	switch t := named.(type) {
	case reference.Tagged:
		tags = []string{t.Tag()}
	default:
		if o.Tag != "" {
			tags = []string{o.Tag}
		} else {
			tags = s.repoTags(reference.FamiliarName(named))
		}
	}
	name := reference.TrimNamed(named)
	if len(tags) == 0 {
		return errdefs.New(errdefs.NotFound, "An image does not exist locally with the tag: %s", reference.FamiliarName(name))
	}
	o.Progress.line(fmt.Sprintf("The push refers to repository [%s]", name.Name()))
	repo := c.Repository(name, o.Auth, true)
	for _, tag := range tags {
		tagged, err := reference.WithTag(name, tag)
		if err != nil {
			return errdefs.New(errdefs.InvalidParameter, "invalid tag %q: %v", tag, err)
		}
		if err := s.pushOne(ctx, repo, tagged, o.Progress); err != nil {
			return pushError(tagged, err)
		}
	}
	return nil
}

func pushError(named reference.Named, err error) error {
	if registry.IsAuthError(err) {
		msg := "requested access to the resource is denied"
		var re *registry.Error
		if errors.As(err, &re) && re.Message != "" && re.Code == "DENIED" {
			msg = re.Message
		}
		return errdefs.New(errdefs.Forbidden, "denied: %s", msg)
	}
	return err
}

// repoTags lists the tags of repository name (familiar form).
func (s *Store) repoTags(name string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var tags []string
	for ref := range s.repos {
		if i := strings.LastIndex(ref, ":"); i > 0 && ref[:i] == name {
			tags = append(tags, ref[i+1:])
		}
	}
	slices.Sort(tags)
	return tags
}

func (s *Store) pushOne(ctx context.Context, repo *registry.Repo, tagged reference.NamedTagged, p Progress) error {
	img, err := s.Get(reference.FamiliarString(tagged))
	if err != nil {
		return errdefs.New(errdefs.NotFound, "An image does not exist locally with the tag: %s", reference.FamiliarString(tagged))
	}
	cfgRaw, err := s.ReadBlob(digest.Digest(img.ID))
	if err != nil {
		return errdefs.New(errdefs.NotImplemented, "image %s was stored without its config blob (an older berth): it cannot be pushed", ShortID(img.ID))
	}
	var layers []Layer
	for _, d := range img.RootFS.DiffIDs {
		l, ok := s.Layer(d)
		if !ok || l.Blob == "" {
			return errdefs.New(errdefs.NotImplemented, "layer %s has no stored blob (an older berth): it cannot be pushed", d)
		}
		layers = append(layers, l)
	}
	// Docker lists layers top first
	for i := len(layers) - 1; i >= 0; i-- {
		p.status(ShortID(layers[i].Blob.String()), "Preparing")
	}
	var fns []func(context.Context) error
	done := map[digest.Digest]bool{}
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		if done[l.Blob] {
			continue
		}
		done[l.Blob] = true
		fns = append(fns, func(ctx context.Context) error { return s.pushBlob(ctx, repo, l.Blob, l.BlobSize, p, true) })
	}
	if err := runLimited(ctx, MaxConcurrentUploads, fns); err != nil {
		return err
	}
	cfgDigest := digest.Digest(img.ID)
	if err := s.pushBlob(ctx, repo, cfgDigest, int64(len(cfgRaw)), nil, false); err != nil {
		return err
	}
	mt, body, err := manifestFor(cfgRaw, cfgDigest, layers)
	if err != nil {
		return err
	}
	d, err := repo.PutManifest(ctx, tagged.Tag(), mt, body)
	if err != nil {
		return err
	}
	aux, _ := json.Marshal(map[string]any{"Tag": tagged.Tag(), "Digest": d.String(), "Size": len(body)})
	p.send(Message{Status: fmt.Sprintf("%s: digest: %s size: %d", tagged.Tag(), d, len(body))})
	p.send(Message{ProgressDetail: &Detail{}, Aux: aux})
	s.addDigest(img.ID, reference.FamiliarName(tagged)+"@"+d.String())
	s.emit("push", img.ID, map[string]string{"name": reference.FamiliarString(tagged)})
	return nil
}

// manifestFor builds the manifest of an image: Docker's schema 2 when every
// layer is gzip (what Docker pushes), else OCI's.
func manifestFor(cfg []byte, cfgDigest digest.Digest, layers []Layer) (string, []byte, error) {
	docker := true
	for _, l := range layers {
		if !strings.HasSuffix(l.MediaType, "gzip") {
			docker = false
		}
	}
	m := struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Config        ocispec.Descriptor   `json:"config"`
		Layers        []ocispec.Descriptor `json:"layers"`
	}{SchemaVersion: 2, Layers: []ocispec.Descriptor{}}
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfgDigest, Size: int64(len(cfg))}
	m.MediaType = ocispec.MediaTypeImageManifest
	if docker {
		m.MediaType, m.Config.MediaType = MediaTypeDockerManifest, MediaTypeDockerConfig
	}
	for _, l := range layers {
		mt := l.MediaType
		switch {
		case docker:
			mt = MediaTypeDockerLayer
		case mt == MediaTypeDockerTar:
			mt = ocispec.MediaTypeImageLayer
		case mt == MediaTypeDockerLayer:
			mt = ocispec.MediaTypeImageLayerGzip
		}
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mt, Digest: l.Blob, Size: l.BlobSize})
	}
	body, err := json.Marshal(m)
	return m.MediaType, body, err
}

// pushBlob uploads blob d unless the repository has it.
func (s *Store) pushBlob(ctx context.Context, repo *registry.Repo, d digest.Digest, size int64, p Progress, show bool) error {
	id := ShortID(d.String())
	ok, err := repo.BlobExists(ctx, d)
	if err != nil {
		return err
	}
	if ok {
		if show {
			p.status(id, "Layer already exists")
		}
		return nil
	}
	b := &bar{p: p, id: id, action: "Pushing", total: size}
	err = repo.UploadBlob(ctx, d, size, func() (io.ReadCloser, error) {
		f, err := s.OpenBlob(d)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.cur = 0
		b.mu.Unlock()
		if !show {
			return f, nil
		}
		return readCloser{countingReader{f, b.add}, f.Close}, nil
	})
	if err != nil {
		return err
	}
	if show {
		b.emit(size)
		p.status(id, "Pushed")
	}
	return nil
}

// addDigest records a repository digest of image id (after a push).
func (s *Store) addDigest(id, d string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if img, ok := s.images[id]; ok {
		// dockerd's addDigestReference: an image holding d already keeps it
		_ = s.addDigestLocked(img, d, false)
	}
}
