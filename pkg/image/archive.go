package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// manifestItem is one entry of a docker save tarball's manifest.json.
type manifestItem struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Save writes images (names, IDs) as one tarball in the format of docker
// save since Docker 25: an OCI image layout (index.json, oci-layout,
// blobs/sha256/…) with Docker's manifest.json beside it, layers as
// uncompressed tars, so both docker load and OCI tools read it.
func (s *Store) Save(names []string, w io.Writer) error {
	type entry struct {
		img  *dockermsg.Image
		cfg  []byte
		tags []string
	}
	var ents []*entry
	byID := map[string]*entry{}
	for _, n := range names {
		img, err := s.Get(n)
		if err != nil {
			return err
		}
		e := byID[img.ID]
		if e == nil {
			cfg, err := s.ReadBlob(digest.Digest(img.ID))
			if err != nil {
				return errdefs.New(errdefs.NotImplemented, "image %s was stored without its config blob (an older berth): it cannot be saved", ShortID(img.ID))
			}
			e = &entry{img: img, cfg: cfg}
			byID[img.ID] = e
			ents = append(ents, e)
		}
		if isIDPrefix(img.ID, n) {
			continue
		}
		if t, err := NormalizeRef(n); err == nil && !slices.Contains(e.tags, t) {
			e.tags = append(e.tags, t)
		}
	}
	tw := tar.NewWriter(w)
	now := time.Now()
	written := map[digest.Digest]bool{}
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	putBlob := func(data []byte) (digest.Digest, error) {
		d := digest.FromBytes(data)
		if written[d] {
			return d, nil
		}
		written[d] = true
		return d, put("blobs/sha256/"+d.Encoded(), data)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: now}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: now}); err != nil {
		return err
	}
	var items []manifestItem
	var index ocispec.Index
	index.SchemaVersion = 2
	index.MediaType = ocispec.MediaTypeImageIndex
	for _, e := range ents {
		item := manifestItem{Config: "blobs/sha256/" + digest.Digest(e.img.ID).Encoded(), RepoTags: e.tags}
		if _, err := putBlob(e.cfg); err != nil {
			return err
		}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.Digest(e.img.ID), Size: int64(len(e.cfg))}}
		m.SchemaVersion = 2
		for _, d := range e.img.RootFS.DiffIDs {
			size, err := s.saveLayer(tw, d, written, now)
			if err != nil {
				return err
			}
			item.Layers = append(item.Layers, "blobs/sha256/"+d.Encoded())
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: size})
		}
		mb, _ := json.Marshal(m)
		md, err := putBlob(mb)
		if err != nil {
			return err
		}
		items = append(items, item)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(mb))}
		if len(e.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range e.tags {
			named, _ := reference.ParseNormalizedNamed(t)
			d := desc
			d.Annotations = map[string]string{"io.containerd.image.name": named.String()}
			if tagged, ok := named.(reference.Tagged); ok {
				d.Annotations[ocispec.AnnotationRefName] = tagged.Tag()
			}
			index.Manifests = append(index.Manifests, d)
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"index.json", index}, {"manifest.json", items}, {"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}}} {
		data, _ := json.Marshal(f.v)
		if err := put(f.name, data); err != nil {
			return err
		}
	}
	for _, e := range ents {
		s.emit("save", e.img.ID, nil)
	}
	return tw.Close()
}

// saveLayer writes layer d's tar as blobs/sha256/<diffid> and returns its size.
func (s *Store) saveLayer(tw *tar.Writer, d digest.Digest, written map[digest.Digest]bool, now time.Time) (int64, error) {
	rc, l, err := s.UncompressedLayer(d)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	size := l.TarSize
	if size == 0 {
		// an older record: measure it first
		if size, err = io.Copy(io.Discard, rc); err != nil {
			return 0, err
		}
		rc.Close()
		if rc, _, err = s.UncompressedLayer(d); err != nil {
			return 0, err
		}
	}
	if written[d] {
		return size, nil
	}
	written[d] = true
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Encoded(), Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return 0, err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(rc, size)); err != nil {
		return 0, err
	}
	if got := digest.NewDigest(digest.SHA256, h); got != d {
		return 0, errdefs.New(errdefs.Unknown, "layer %s is corrupt in the store (its blob gives %s)", d, got)
	}
	return size, nil
}

// Load reads a docker save tarball (manifest.json, any Docker version) or
// an OCI image layout tarball (index.json), verifies every layer against
// its config and records the images. It returns what docker load prints.
func (s *Store) Load(r io.Reader) ([]string, error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// the archive is hostile input too: unpacked like a layer, then read
	// without ever leaving the directory
	if _, err := ExtractWith(r, tmp, ExtractOptions{}); err != nil {
		return nil, err
	}
	root, err := unix.Open(tmp, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	l := &loader{s: s, root: root}
	if f, err := l.open("manifest.json"); err == nil {
		defer f.Close()
		var items []manifestItem
		if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&items); err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid manifest.json in the archive: %v", err)
		}
		for _, it := range items {
			if err := l.loadDocker(it); err != nil {
				return nil, err
			}
		}
		return l.lines, nil
	}
	if f, err := l.open("index.json"); err == nil {
		defer f.Close()
		var idx ocispec.Index
		if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&idx); err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid index.json in the archive: %v", err)
		}
		for _, d := range idx.Manifests {
			if err := l.loadOCI(d, 0); err != nil {
				return nil, err
			}
		}
		if len(l.lines) == 0 {
			return nil, errdefs.New(errdefs.InvalidParameter, "the archive's index.json lists no image")
		}
		return l.lines, nil
	}
	return nil, errdefs.New(errdefs.InvalidParameter, "invalid archive: neither manifest.json (docker save) nor index.json (OCI layout) found")
}

type loader struct {
	s     *Store
	root  int
	lines []string
}

// open opens rel inside the unpacked archive; symbolic links (older docker
// save tarballs link shared layers) resolve inside it, never outside.
func (l *loader) open(rel string) (*os.File, error) {
	rel = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	fd, err := unix.Openat2(l.root, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV})
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid archive: %s: %v", rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid archive: %s is not a file", rel)
	}
	return f, nil
}

func (l *loader) read(rel string, max int64) ([]byte, error) {
	f, err := l.open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

func (l *loader) loadDocker(it manifestItem) error {
	cfg, err := l.read(it.Config, maxConfigSize)
	if err != nil {
		return err
	}
	img, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	if len(img.RootFS.DiffIDs) != len(it.Layers) {
		return errdefs.New(errdefs.InvalidParameter, "invalid archive: %s has %d layers, its config %d", it.Config, len(it.Layers), len(img.RootFS.DiffIDs))
	}
	var descs []ocispec.Descriptor
	for _, p := range it.Layers {
		descs = append(descs, ocispec.Descriptor{URLs: []string{p}})
	}
	var tags []string
	for _, t := range it.RepoTags {
		n, err := NormalizeRef(t)
		if err != nil {
			return err
		}
		tags = append(tags, n)
	}
	return l.add(cfg, img, descs, tags)
}

func (l *loader) loadOCI(d ocispec.Descriptor, depth int) error {
	data, err := l.blob(d, maxConfigSize)
	if err != nil {
		return err
	}
	switch manifestMediaType(data, d.MediaType) {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerList:
		if depth > 1 {
			return errdefs.New(errdefs.InvalidParameter, "invalid archive: image indexes nested too deep")
		}
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return errdefs.New(errdefs.InvalidParameter, "invalid archive: index %s: %v", d.Digest, err)
		}
		want, _ := ParsePlatform("")
		m, ok := matchPlatform(idx.Manifests, want)
		if !ok {
			return errdefs.New(errdefs.NotFound, "no matching manifest for %s in the archive's index", platformString(want))
		}
		if m.Annotations == nil {
			m.Annotations = d.Annotations
		}
		return l.loadOCI(m, depth+1)
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
	default:
		return errdefs.New(errdefs.InvalidParameter, "invalid archive: unsupported manifest type %q", d.MediaType)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return errdefs.New(errdefs.InvalidParameter, "invalid archive: manifest %s: %v", d.Digest, err)
	}
	cfg, err := l.blob(m.Config, maxConfigSize)
	if err != nil {
		return err
	}
	img, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	if len(img.RootFS.DiffIDs) != len(m.Layers) {
		return errdefs.New(errdefs.InvalidParameter, "invalid archive: manifest %s has %d layers, its config %d", d.Digest, len(m.Layers), len(img.RootFS.DiffIDs))
	}
	for _, ld := range m.Layers {
		if err := checkLayerDescriptor(ld); err != nil {
			return err
		}
	}
	var tags []string
	if name := d.Annotations["io.containerd.image.name"]; name != "" {
		if n, err := NormalizeRef(name); err == nil {
			tags = append(tags, n)
		}
	} else if name := d.Annotations[ocispec.AnnotationRefName]; strings.ContainsAny(name, "/:") {
		if n, err := NormalizeRef(name); err == nil {
			tags = append(tags, n)
		}
	}
	return l.add(cfg, img, m.Layers, tags)
}

func blobPath(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

// blob reads a small blob of the OCI layout and verifies it.
func (l *loader) blob(d ocispec.Descriptor, max int64) ([]byte, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid archive: digest %q: %v", d.Digest, err)
	}
	data, err := l.read(blobPath(d.Digest), max)
	if err != nil {
		return nil, err
	}
	if digest.FromBytes(data) != d.Digest {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid archive: blob %s does not match its digest", d.Digest)
	}
	return data, nil
}

// add unpacks the layers (a descriptor's URLs[0] is a docker save path,
// else the blob is found by digest) and records the image.
func (l *loader) add(cfg []byte, img *dockermsg.Image, layers []ocispec.Descriptor, tags []string) error {
	l.s.pin(img.RootFS.DiffIDs)
	defer l.s.unpin(img.RootFS.DiffIDs)
	for i, d := range layers {
		diffID := img.RootFS.DiffIDs[i]
		if _, ok := l.s.Layer(diffID); ok {
			continue
		}
		var rel string
		if len(d.URLs) > 0 {
			rel = d.URLs[0]
		} else {
			rel = blobPath(d.Digest) // validated by checkLayerDescriptor
		}
		f, err := l.open(rel)
		if err != nil {
			return err
		}
		in := layerInput{r: f, diffID: diffID, keepBlob: true, whiteouts: true}
		if len(d.URLs) == 0 {
			h := sha256.New()
			in.r = io.TeeReader(f, h)
			in.verify = func() error {
				if got := digest.NewDigest(digest.SHA256, h); got != d.Digest {
					return errdefs.New(errdefs.InvalidParameter, "invalid archive: layer %s does not match its digest (got %s)", d.Digest, got)
				}
				return nil
			}
		}
		unlock := l.s.lockLayer(diffID)
		_, err = l.s.ingestLayer(in)
		unlock()
		f.Close()
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errdefs.New(errdefs.InvalidParameter, "invalid archive: layer %s missing", rel)
			}
			return err
		}
	}
	out, _, err := l.s.AddImage(NewImage{Config: cfg, Tags: tags, Event: "load"})
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		l.lines = append(l.lines, "Loaded image ID: "+out.ID)
	}
	for _, t := range tags {
		l.lines = append(l.lines, "Loaded image: "+t)
	}
	return nil
}
