// Package image is berth's image store, owned by the supervisor. An image is
// a config (dockermsg.Image, identified by the sha256 of its config blob) plus
// an ordered list of layers; a layer is a plain directory named by the digest
// of its uncompressed tar (its diffID), unpacked once and shared by every
// image and container using it: a container's root filesystem is an
// overlayfs with the image's layer directories as lowerdirs.
//
// Layout under <root>/images:
//
//	blobs/sha256/<hex>        content: configs, manifests, layer blobs
//	blobs/partial/<hex>       interrupted downloads, resumed by the next pull
//	layers/<diffid-hex>/      unpacked layer (OCI whiteouts as overlayfs ones)
//	layers/<diffid-hex>.json  its record: blob digest, media type, size
//	configs/<id-hex>.json     the image record (dockermsg.Image without tags)
//	repositories.json         familiar "name:tag" → image ID
//	tmp/                      work in progress, emptied at start
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/atomicfile"
	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/pkg/topdir"
)

// User is a container that uses an image.
type User struct {
	ID      string
	Running bool
}

// Hooks connect the store to its owner.
type Hooks struct {
	// Users lists the containers using image id (for delete conflicts and
	// the Containers count).
	Users func(id string) []User
	// Layers lists the layers containers hold (kept when their image goes).
	Layers func() map[digest.Digest]bool
	// Event is called for import, tag, untag and delete.
	Event func(action, id string, attrs map[string]string)
}

// Store is the image store. It is safe for concurrent use.
type Store struct {
	dir   string
	hooks Hooks

	mu     sync.RWMutex
	images map[string]*dockermsg.Image // by ID
	repos  map[string]string           // familiar name:tag → ID
	layers map[digest.Digest]*Layer
	pins   map[digest.Digest]int // layers an image being made will use

	lmu        sync.Mutex
	layerLocks map[digest.Digest]*refMutex
}

// Open loads (or creates) the store under dir (<root>/images).
func Open(dir string, hooks Hooks) (*Store, error) {
	s := &Store{dir: dir, hooks: hooks, images: map[string]*dockermsg.Image{}, repos: map[string]string{},
		layers: map[digest.Digest]*Layer{}, pins: map[digest.Digest]int{}, layerLocks: map[digest.Digest]*refMutex{}}
	for _, d := range []string{"layers", "configs", "tmp", "blobs/sha256", "blobs/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	topdir.Mark(filepath.Join(dir, "tmp")) // where layers are unpacked
	// leftovers of interrupted imports and pulls
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err == nil {
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(dir, "tmp", e.Name()))
		}
	}
	if err := s.loadLayers(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(dir, "configs"))
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "configs", e.Name()))
		if err != nil {
			return nil, err
		}
		var img dockermsg.Image
		if err := json.Unmarshal(data, &img); err != nil {
			return nil, fmt.Errorf("image record %s: %w", e.Name(), err)
		}
		img.RepoTags = nil
		s.images[img.ID] = &img
	}
	data, err := os.ReadFile(filepath.Join(dir, "repositories.json"))
	if err == nil {
		if err := json.Unmarshal(data, &s.repos); err != nil {
			return nil, fmt.Errorf("repositories.json: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for ref, id := range s.repos {
		if _, ok := s.images[id]; !ok {
			delete(s.repos, ref)
		}
	}
	// a store written before digest references were kept to one image
	// each: the lowest ID keeps a shared one, so that it resolves the same
	// every time
	ids := slices.Sorted(maps.Keys(s.images))
	owner := map[string]string{}
	for _, id := range ids {
		img := s.images[id]
		for _, d := range img.RepoDigests {
			if o, ok := owner[d]; ok && o != id {
				if err := s.dropDigestLocked(img, d); err != nil {
					return nil, err
				}
				continue
			}
			owner[d] = id
		}
	}
	return s, nil
}

// SetHooks replaces the hooks (the supervisor sets them once its container
// store exists).
func (s *Store) SetHooks(h Hooks) {
	s.mu.Lock()
	s.hooks = h
	s.mu.Unlock()
}

// LayerDir is the directory of a layer (its diffID, "sha256:…").
func (s *Store) LayerDir(diffID string) string {
	return filepath.Join(s.dir, "layers", strings.TrimPrefix(diffID, "sha256:"))
}

// LayerDirs are the layer directories of image id, lowest first.
func (s *Store) LayerDirs(img *dockermsg.Image) []string {
	var out []string
	for _, d := range img.RootFS.DiffIDs {
		out = append(out, s.LayerDir(d.String()))
	}
	return out
}

// ImportOptions are docker import's options.
type ImportOptions struct {
	Repo    string
	Tag     string
	Changes []string
	Message string
}

// Import reads a root filesystem tarball (plain, gzip or bzip2) into a new
// single-layer image, applies the changes and tags it repo:tag when a repo is
// given. A failed import leaves nothing behind.
func (s *Store) Import(r io.Reader, o ImportOptions) (*dockermsg.Image, error) {
	var cfg ocispec.ImageConfig
	changes, health, err := takeHealthcheck(o.Changes)
	if err != nil {
		return nil, err
	}
	if err := ApplyChanges(&cfg, changes); err != nil {
		return nil, err
	}
	tags, err := repoTag(o.Repo, o.Tag)
	if err != nil {
		return nil, err
	}
	l, err := s.ingestLayer(layerInput{r: r, keepBlob: true, requireEntries: true})
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	comment := o.Message
	if comment == "" {
		comment = "Imported from -"
	}
	ic := imageConfig{
		Image: ocispec.Image{
			Created:  &now,
			Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.DiffID}},
			History:  []ocispec.History{{Created: &now, Comment: comment}},
		},
		Config:  dockerImageConfig{ImageConfig: cfg, Healthcheck: health},
		Comment: o.Message,
	}
	raw, err := json.Marshal(ic)
	if err != nil {
		return nil, err
	}
	img, _, err := s.AddImage(NewImage{Config: raw, Tags: tags, Event: "import"})
	return img, err
}

// imageConfig is an image config as Docker writes it: the OCI fields plus
// Docker's own.
type imageConfig struct {
	ocispec.Image
	Config        dockerImageConfig `json:"config,omitempty"` // in place of Image.Config
	Comment       string            `json:"comment,omitempty"`
	DockerVersion string            `json:"docker_version,omitempty"`
	Parent        string            `json:"parent,omitempty"`
}

// dockerImageConfig is the OCI config with Docker's HEALTHCHECK (which
// Docker's image config carries and OCI's does not).
type dockerImageConfig struct {
	ocispec.ImageConfig
	Healthcheck *container.HealthConfig `json:"Healthcheck,omitempty"`
}

// NewImage is an image to add once its layers are in the store.
type NewImage struct {
	Config  []byte   // the config blob; the image ID is its digest
	Tags    []string // familiar name:tag references to point at it
	Digests []string // familiar name@sha256:… references (RepoDigests)
	// MoveDigests takes Digests off another image that holds them (a pull
	// by digest); else that image keeps them (dockerd's pull by tag).
	MoveDigests bool
	Event       string // the event to emit for a new image (import, load, commit); "": none
}

// parseConfig reads an image config into a record (without sizes).
func parseConfig(raw []byte) (*dockermsg.Image, error) {
	var c imageConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid image config: %v", err)
	}
	if c.RootFS.Type != "layers" {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid image config: rootfs type %q is not \"layers\"", c.RootFS.Type)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid image config: layer %q: %v", d, err)
		}
	}
	img := &dockermsg.Image{
		ID:           digest.FromBytes(raw).String(),
		Architecture: c.Architecture,
		OS:           c.OS,
		Author:       c.Author,
		Comment:      c.Comment,
		Config:       c.Config.ImageConfig,
		Healthcheck:  c.Config.Healthcheck,
		RootFS:       c.RootFS,
		History:      c.History,
	}
	if c.Created != nil {
		img.Created = *c.Created
	}
	if img.OS == "" {
		img.OS = "linux"
	}
	return img, nil
}

// AddImage records an image whose layers are all in the store, stores its
// config blob and points its tags and digests at it. It returns the image
// and whether it is new.
func (s *Store) AddImage(n NewImage) (*dockermsg.Image, bool, error) {
	img, err := parseConfig(n.Config)
	if err != nil {
		return nil, false, err
	}
	if _, err := s.WriteBlob(n.Config, ""); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range img.RootFS.DiffIDs {
		l, ok := s.layers[d]
		if !ok {
			return nil, false, errdefs.New(errdefs.InvalidParameter, "image %s: layer %s is not in the store", ShortID(img.ID), d)
		}
		img.Size += l.Size
	}
	old, exists := s.images[img.ID]
	if exists {
		img.RepoDigests = old.RepoDigests
	} else {
		if err := s.writeImage(img); err != nil {
			return nil, false, err
		}
		s.images[img.ID] = img
	}
	for _, d := range n.Digests {
		if err := s.addDigestLocked(s.images[img.ID], d, n.MoveDigests); err != nil {
			return nil, false, err
		}
	}
	img = s.images[img.ID]
	if !exists && n.Event != "" {
		s.emit(n.Event, img.ID, nil)
	}
	for _, t := range n.Tags {
		if s.repos[t] == img.ID {
			continue
		}
		old := s.repos[t]
		s.repos[t] = img.ID
		if err := s.saveRepos(); err != nil {
			if old == "" {
				delete(s.repos, t)
			} else {
				s.repos[t] = old
			}
			return nil, false, err
		}
		s.emit("tag", img.ID, map[string]string{"name": t})
	}
	return s.view(img), !exists, nil
}

// digestOwnerLocked is the image the digest reference d names: one at
// most, as in dockerd's reference store.
func (s *Store) digestOwnerLocked(d string) *dockermsg.Image {
	for _, img := range s.images {
		if slices.Contains(img.RepoDigests, d) {
			return img
		}
	}
	return nil
}

// addDigestLocked points the digest reference d at img. When another image
// holds d, move takes it off that image (dockerd's AddDigest with force);
// else that image keeps it and img does not get it (dockerd's
// addDigestReference: "Image ID for digest … changed …, cannot update").
// An image may hold several digests of one repository, as in dockerd.
func (s *Store) addDigestLocked(img *dockermsg.Image, d string, move bool) error {
	owner := s.digestOwnerLocked(d)
	switch {
	case owner == img:
		return nil
	case owner != nil && !move:
		return nil
	case owner != nil:
		// dockerd's reference store moves it quietly: no untag event
		if err := s.dropDigestLocked(owner, d); err != nil {
			return err
		}
	}
	cp := *img
	cp.RepoDigests = append(slices.Clone(img.RepoDigests), d)
	if err := s.writeImage(&cp); err != nil {
		return err
	}
	s.images[img.ID] = &cp
	return nil
}

func (s *Store) writeImage(img *dockermsg.Image) error {
	data, err := json.MarshalIndent(img, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, "configs", strings.TrimPrefix(img.ID, "sha256:")+".json"), data, 0o600)
}

func (s *Store) saveRepos() error {
	data, err := json.MarshalIndent(s.repos, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, "repositories.json"), data, 0o600)
}

func (s *Store) emit(action, id string, attrs map[string]string) {
	if s.hooks.Event == nil {
		return
	}
	a := map[string]string{}
	for k, v := range attrs {
		a[k] = v
	}
	if _, ok := a["name"]; !ok {
		a["name"] = id
	}
	s.hooks.Event(action, id, a)
}

// view is a copy of img with its tags and container count filled in.
func (s *Store) view(img *dockermsg.Image) *dockermsg.Image {
	c := *img
	c.RepoTags = s.tagsOf(img.ID)
	c.RepoDigests = append([]string{}, img.RepoDigests...)
	if s.hooks.Users != nil {
		c.Containers = len(s.hooks.Users(img.ID))
	}
	return &c
}

func (s *Store) tagsOf(id string) []string {
	tags := []string{}
	for ref, rid := range s.repos {
		if rid == id {
			tags = append(tags, ref)
		}
	}
	sort.Strings(tags)
	return tags
}

// resolveLocked finds the image ref names: a name[:tag], a full ID or a
// unique ID prefix.
func (s *Store) resolveLocked(ref string) (*dockermsg.Image, error) {
	if ref == "" {
		return nil, errdefs.NoSuchImage(ref)
	}
	if n, err := NormalizeRef(ref); err == nil {
		if id, ok := s.repos[n]; ok {
			return s.images[id], nil
		}
	} else if d, err := NormalizeDigestRef(ref); err == nil {
		if img := s.digestOwnerLocked(d); img != nil {
			return img, nil
		}
		return nil, errdefs.NoSuchImage(d)
	}
	if hexRef.MatchString(ref) {
		var found *dockermsg.Image
		for id, img := range s.images {
			if isIDPrefix(id, ref) {
				if found != nil {
					return nil, errdefs.New(errdefs.NotFound, "No such image: %s (ambiguous image ID prefix)", ref)
				}
				found = img
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, errdefs.NoSuchImage(RefForError(ref))
}

// Get resolves ref (name[:tag], ID or ID prefix) to an image.
func (s *Store) Get(ref string) (*dockermsg.Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	return s.view(img), nil
}

// List returns every image, newest first.
func (s *Store) List() []*dockermsg.Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*dockermsg.Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, s.view(img))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out
}

// Count is the number of images.
func (s *Store) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.images)
}

// Tag gives image source the name repo:tag (tag defaults to latest).
func (s *Store) Tag(source, repo, tag string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.resolveLocked(source)
	if err != nil {
		return "", err
	}
	ref := repo
	if tag != "" {
		ref += ":" + tag
	}
	if repo == "" {
		return "", errdefs.New(errdefs.InvalidParameter, "repository name must have at least one component")
	}
	n, err := NormalizeRef(ref)
	if err != nil {
		return "", err
	}
	old, had := s.repos[n]
	s.repos[n] = img.ID
	if err := s.saveRepos(); err != nil {
		if had {
			s.repos[n] = old
		} else {
			delete(s.repos, n)
		}
		return "", err
	}
	s.emit("tag", img.ID, map[string]string{"name": n})
	return n, nil
}

func (s *Store) users(id string) []User {
	if s.hooks.Users == nil {
		return nil
	}
	return s.hooks.Users(id)
}

type conflictErr struct {
	id, msg string
	hard    bool
}

func (c conflictErr) error() error {
	force := "must be forced"
	if c.hard {
		force = "cannot be forced"
	}
	return errdefs.New(errdefs.Conflict, "conflict: unable to delete %s (%s) - %s", ShortID(c.id), force, c.msg)
}

// Remove is `docker rmi`: untag a reference, and delete the image when no
// reference is left and no container uses it (unless forced; a running
// container's image can never be deleted).
func (s *Store) Remove(ref string, force bool) ([]bus.ImageDeleted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	id := img.ID
	tags := s.tagsOf(id)
	users := s.users(id)
	var out []bus.ImageDeleted
	if !isIDPrefix(id, ref) {
		if !force && singleReference(tags, img.RepoDigests) && len(users) > 0 {
			return nil, errdefs.New(errdefs.Conflict, "conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, ShortID(users[0].ID), ShortID(id))
		}
		if d, err := NormalizeDigestRef(ref); err == nil {
			if err := s.removeDigestLocked(img, d); err != nil {
				return nil, err
			}
			out = append(out, bus.ImageDeleted{Untagged: d})
		} else {
			n, err := NormalizeRef(ref)
			if err != nil {
				return nil, err
			}
			if err := s.untagLocked(n); err != nil {
				return nil, err
			}
			out = append(out, bus.ImageDeleted{Untagged: n})
			if len(s.tagsOf(id)) == 0 {
				// Docker drops the repository's digest with its last tag
				repo := n[:strings.LastIndex(n, ":")]
				for _, d := range img.RepoDigests {
					if strings.HasPrefix(d, repo+"@") {
						if err := s.removeDigestLocked(img, d); err != nil {
							return out, err
						}
						out = append(out, bus.ImageDeleted{Untagged: d})
					}
				}
			}
		}
		if len(s.tagsOf(id)) > 0 || len(img.RepoDigests) > 0 {
			return out, nil
		}
		// the last tag is gone: delete the image, quietly keeping it when in use
		if c := checkConflict(id, users, force, false); c != nil {
			return out, nil
		}
	} else {
		if c := checkConflict(id, users, force, len(tags) > 1); c != nil {
			return nil, c.error()
		}
		var err error
		if out, err = s.untagAllLocked(img, tags); err != nil {
			return out, err
		}
	}
	return s.deleteLocked(img, out)
}

// singleReference tells whether the references are one name, as Docker's
// isSingleReference: one reference, or one tag and digests of its
// repository only (a pulled image's name:tag and name@sha256:…), which go
// together.
func singleReference(tags, digests []string) bool {
	switch {
	case len(tags)+len(digests) <= 1:
		return len(tags)+len(digests) == 1
	case len(tags) > 1:
		return false
	}
	repo := func(ref string) string {
		if i := strings.Index(ref, "@"); i >= 0 {
			return ref[:i]
		}
		return ref[:strings.LastIndex(ref, ":")]
	}
	name := repo(digests[0])
	if len(tags) == 1 {
		name = repo(tags[0])
	}
	for _, d := range digests {
		if repo(d) != name {
			return false
		}
	}
	return true
}

// untagAllLocked drops every tag of img (and lists its digests, which go
// with the image).
func (s *Store) untagAllLocked(img *dockermsg.Image, tags []string) ([]bus.ImageDeleted, error) {
	var out []bus.ImageDeleted
	for _, t := range tags {
		if err := s.untagLocked(t); err != nil {
			return out, err
		}
		out = append(out, bus.ImageDeleted{Untagged: t})
	}
	for _, d := range img.RepoDigests {
		out = append(out, bus.ImageDeleted{Untagged: d})
	}
	return out, nil
}

// deleteLocked deletes image img (untagged already) and the layers and
// blobs no other image uses, appending to out what went.
func (s *Store) deleteLocked(img *dockermsg.Image, out []bus.ImageDeleted) ([]bus.ImageDeleted, error) {
	id := img.ID
	if err := os.Remove(filepath.Join(s.dir, "configs", strings.TrimPrefix(id, "sha256:")+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return out, err
	}
	delete(s.images, id)
	s.removeBlob(digest.Digest(id))
	gone := s.removeUnusedLayersLocked(img.RootFS.DiffIDs)
	s.emit("delete", id, nil)
	out = append(out, bus.ImageDeleted{Deleted: id})
	for _, d := range gone {
		out = append(out, bus.ImageDeleted{Deleted: d.String()})
	}
	return out, nil
}

func (s *Store) removeDigestLocked(img *dockermsg.Image, d string) error {
	if err := s.dropDigestLocked(img, d); err != nil {
		return err
	}
	s.emit("untag", img.ID, map[string]string{"name": d})
	return nil
}

// dropDigestLocked takes the digest reference d off img.
func (s *Store) dropDigestLocked(img *dockermsg.Image, d string) error {
	prev := img.RepoDigests
	img.RepoDigests = slices.DeleteFunc(slices.Clone(prev), func(x string) bool { return x == d })
	if err := s.writeImage(img); err != nil {
		img.RepoDigests = prev
		return err
	}
	return nil
}

func checkConflict(id string, users []User, force, multiTags bool) *conflictErr {
	for _, u := range users {
		if u.Running {
			return &conflictErr{id: id, hard: true, msg: "image is being used by running container " + ShortID(u.ID)}
		}
	}
	if force {
		return nil
	}
	if multiTags {
		return &conflictErr{id: id, msg: "image is referenced in multiple repositories"}
	}
	if len(users) > 0 {
		return &conflictErr{id: id, msg: "image is being used by stopped container " + ShortID(users[0].ID)}
	}
	return nil
}

func (s *Store) untagLocked(ref string) error {
	id, ok := s.repos[ref]
	if !ok {
		return nil
	}
	delete(s.repos, ref)
	if err := s.saveRepos(); err != nil {
		s.repos[ref] = id
		return err
	}
	s.emit("untag", id, map[string]string{"name": ref})
	return nil
}

// removeUnusedLayersLocked deletes the layers of diffIDs that no image,
// container or image being made uses, and returns them.
func (s *Store) removeUnusedLayersLocked(diffIDs []digest.Digest) []digest.Digest {
	held := s.heldLayers()
	var gone []digest.Digest
	for _, d := range diffIDs {
		if held[d] || s.pins[d] > 0 || slices.Contains(gone, d) || s.layerUsedLocked(d) {
			continue
		}
		s.removeLayerLocked(d)
		gone = append(gone, d)
	}
	return gone
}

func (s *Store) heldLayers() map[digest.Digest]bool {
	if s.hooks.Layers == nil {
		return nil
	}
	return s.hooks.Layers()
}

// ReleaseLayers deletes the layers of diffIDs that nothing uses any more:
// those a removed container held after its image was deleted.
func (s *Store) ReleaseLayers(diffIDs []digest.Digest) {
	if len(diffIDs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeUnusedLayersLocked(diffIDs)
}
