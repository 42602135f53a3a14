package image

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	timetypes "github.com/docker/docker/api/types/time"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// History is `docker history`: the config's history, newest first, with
// the size of the layer each step made.
func (s *Store) History(ref string) ([]bus.ImageHistoryItem, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	img, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	hist := img.History
	if len(hist) == 0 {
		// no history: one step per layer
		for range img.RootFS.DiffIDs {
			hist = append(hist, ocispec.History{})
		}
	}
	out := make([]bus.ImageHistoryItem, 0, len(hist))
	layer := 0
	for _, h := range hist {
		item := bus.ImageHistoryItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: []string{}}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		if !h.EmptyLayer && layer < len(img.RootFS.DiffIDs) {
			if l, ok := s.layers[img.RootFS.DiffIDs[layer]]; ok {
				item.Size = l.Size
			}
			layer++
		}
		out = append(out, item)
	}
	slices.Reverse(out)
	if len(out) > 0 {
		out[0].ID = img.ID
		out[0].Tags = s.tagsOf(img.ID)
	}
	return out, nil
}

// Prune is `docker image prune`: dangling images (or, with
// dangling=false, every image no container uses) matching the label and
// until filters; then layers and blobs no image uses.
func (s *Store) Prune(filters map[string][]string) (*bus.ImagePruneResponse, error) {
	danglingOnly := true
	for _, v := range filters["dangling"] {
		switch strings.ToLower(v) {
		case "false", "0":
			danglingOnly = false
		case "true", "1":
		default:
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid filter 'dangling=%s'", v)
		}
	}
	var until time.Time
	for _, v := range filters["until"] {
		ts, err := timetypes.GetTimestamp(v, time.Now())
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid filter 'until=%s': %v", v, err)
		}
		sec, nsec, err := timetypes.ParseTimestamps(ts, 0)
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid filter 'until=%s': %v", v, err)
		}
		until = time.Unix(sec, nsec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &bus.ImagePruneResponse{Deleted: []bus.ImageDeleted{}}
	before := s.diskUsedLocked()
	for _, img := range s.sortedLocked() {
		tags := s.tagsOf(img.ID)
		dangling := len(tags) == 0 && len(img.RepoDigests) == 0
		if danglingOnly && !dangling {
			continue
		}
		if !until.IsZero() && !img.Created.Before(until) {
			continue
		}
		if !matchLabels(filters["label"], img.Config.Labels, true) || !matchLabels(filters["label!"], img.Config.Labels, false) {
			continue
		}
		if len(s.users(img.ID)) > 0 {
			continue
		}
		out, err := s.untagAllLocked(img, tags)
		if err == nil {
			out, err = s.deleteLocked(img, out)
		}
		resp.Deleted = append(resp.Deleted, out...)
		if err != nil {
			return resp, err
		}
	}
	// layers left by failed pulls, and their partial downloads
	s.removeUnusedLayersLocked(slices.Collect(maps.Keys(s.layers)))
	if len(s.pins) == 0 {
		partial := filepath.Join(s.dir, "blobs", "partial")
		ents, _ := os.ReadDir(partial)
		for _, e := range ents {
			_ = os.Remove(filepath.Join(partial, e.Name()))
		}
	}
	if after := s.diskUsedLocked(); after < before {
		resp.SpaceReclaimed = uint64(before - after)
	}
	return resp, nil
}

// matchLabels applies label filters (key or key=value): all must match
// (want) or none may (!want).
func matchLabels(filters []string, labels map[string]string, want bool) bool {
	for _, f := range filters {
		k, v, hasV := strings.Cut(f, "=")
		lv, ok := labels[k]
		m := ok && (!hasV || lv == v)
		if m != want {
			return false
		}
	}
	return true
}

func (s *Store) layerUsedLocked(d digest.Digest) bool {
	for _, img := range s.images {
		if slices.Contains(img.RootFS.DiffIDs, d) {
			return true
		}
	}
	return false
}

func (s *Store) diskUsedLocked() int64 {
	var n int64
	for _, l := range s.layers {
		n += l.Size
	}
	return n
}

func (s *Store) sortedLocked() []*dockermsg.Image {
	out := make([]*dockermsg.Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b *dockermsg.Image) int { return b.Created.Compare(a.Created) })
	return out
}

// Usage is what `docker system df` needs: the size of all layers counted
// once, and per image the bytes of its layers other images use too.
func (s *Store) Usage() bus.ImageUsage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := bus.ImageUsage{LayersSize: s.diskUsedLocked(), Shared: map[string]int64{}}
	users := map[digest.Digest]int{}
	for _, img := range s.images {
		for _, d := range uniq(img.RootFS.DiffIDs) {
			users[d]++
		}
	}
	for _, img := range s.images {
		var shared int64
		for _, d := range uniq(img.RootFS.DiffIDs) {
			if users[d] > 1 {
				if l, ok := s.layers[d]; ok {
					shared += l.Size
				}
			}
		}
		u.Shared[img.ID] = shared
	}
	return u
}

func uniq(ds []digest.Digest) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
