package image

import (
	"bufio"
	"compress/bzip2"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/atomicfile"
	"berth/pkg/errdefs"
)

// Layer is the record of one unpacked layer (layers/<diffid-hex>.json
// beside its directory): the blob it came from, kept for push and save.
type Layer struct {
	DiffID    digest.Digest `json:"diffID"`
	Size      int64         `json:"size"`              // unpacked, as dockerd's overlay2 counts it (dirSize)
	TarSize   int64         `json:"tarSize,omitempty"` // bytes of the uncompressed tar (docker save)
	Blob      digest.Digest `json:"blob,omitempty"`
	BlobSize  int64         `json:"blobSize,omitempty"`
	MediaType string        `json:"mediaType,omitempty"`
}

// Media types of layer blobs.
const (
	MediaTypeDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerTar   = "application/vnd.docker.image.rootfs.diff.tar"
)

func (s *Store) layerRecordPath(diffID digest.Digest) string {
	return filepath.Join(s.dir, "layers", diffID.Encoded()+".json")
}

// loadLayers reads every layer record; a layer directory without one (an
// interrupted store of an older berth) is kept but cannot be pushed or saved.
func (s *Store) loadLayers() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "layers"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() {
			d := digest.NewDigestFromEncoded(digest.SHA256, name)
			if d.Validate() != nil {
				continue
			}
			if _, ok := s.layers[d]; !ok {
				s.layers[d] = &Layer{DiffID: d}
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.dir, "layers", name))
		if err != nil {
			return err
		}
		var l Layer
		if err := json.Unmarshal(data, &l); err != nil || l.DiffID.Validate() != nil {
			return fmt.Errorf("layer record %s: bad record", name)
		}
		if _, err := os.Stat(s.LayerDir(l.DiffID.String())); err != nil {
			_ = os.Remove(filepath.Join(s.dir, "layers", name)) // its directory never made it
			continue
		}
		s.layers[l.DiffID] = &l
	}
	return nil
}

// Layer returns the record of layer diffID.
func (s *Store) Layer(diffID digest.Digest) (Layer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.layers[diffID]
	if !ok {
		return Layer{}, false
	}
	return *l, true
}

// lockLayer serialises the unpacking of one layer, so that two pulls
// sharing it unpack it once.
func (s *Store) lockLayer(diffID digest.Digest) func() {
	s.lmu.Lock()
	m, ok := s.layerLocks[diffID]
	if !ok {
		m = &refMutex{}
		s.layerLocks[diffID] = m
	}
	m.refs++
	s.lmu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		s.lmu.Lock()
		if m.refs--; m.refs == 0 {
			delete(s.layerLocks, diffID)
		}
		s.lmu.Unlock()
	}
}

type refMutex struct {
	sync.Mutex
	refs int
}

// pin keeps layers from being deleted while an image that will use them
// is being made (a pull, a load).
func (s *Store) pin(diffIDs []digest.Digest) {
	s.mu.Lock()
	for _, d := range diffIDs {
		s.pins[d]++
	}
	s.mu.Unlock()
}

func (s *Store) unpin(diffIDs []digest.Digest) {
	s.mu.Lock()
	for _, d := range diffIDs {
		if s.pins[d]--; s.pins[d] <= 0 {
			delete(s.pins, d)
		}
	}
	s.mu.Unlock()
}

// layerInput is a layer blob to unpack.
type layerInput struct {
	r      io.Reader     // the blob's bytes
	diffID digest.Digest // expected; "" computes it
	// keepBlob: the store keeps the blob itself (gzip-compressing an
	// uncompressed input). Off, the caller stores blob (a pull writes the
	// blob as it downloads it).
	keepBlob  bool
	blob      digest.Digest
	blobSize  int64
	mediaType string
	whiteouts bool
	// blobFile is the caller's complete blob, moved into the store with
	// the layer once verify (run after the whole blob was read) passes.
	blobFile string
	verify   func() error
	// requireEntries refuses an empty archive (docker import of garbage);
	// an image's layer may well be empty.
	requireEntries bool
}

type compression int

const (
	uncompressed compression = iota
	gzipped
	zstded
	bzipped
)

func sniff(magic []byte) compression {
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return gzipped
	case len(magic) >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		return zstded
	case len(magic) >= 3 && string(magic[:3]) == "BZh":
		return bzipped
	}
	return uncompressed
}

func decompressor(r io.Reader, c compression) (io.ReadCloser, error) {
	switch c {
	case gzipped:
		return gzip.NewReader(r)
	case zstded:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case bzipped:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return io.NopCloser(r), nil
}

// ingestLayer unpacks a layer blob into a new layer directory, verifying
// its diffID, and records it. The layer appears complete or not at all; an
// existing layer with the same diffID is kept and returned.
func (s *Store) ingestLayer(in layerInput) (*Layer, error) {
	if in.diffID != "" {
		if l, ok := s.Layer(in.diffID); ok {
			return &l, nil
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "layer-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(in.r, 256<<10)
	magic, _ := br.Peek(4)
	kind := sniff(magic)

	var raw io.Reader = br
	var blobFile *os.File
	var blobHash hash.Hash
	var blobCount countWriter
	var gz *gzip.Writer
	if in.keepBlob {
		if blobFile, err = os.CreateTemp(filepath.Join(s.dir, "tmp"), "blob-"); err != nil {
			return nil, err
		}
		defer func() {
			blobFile.Close()
			os.Remove(blobFile.Name())
		}()
		blobHash = sha256.New()
		sink := io.MultiWriter(blobFile, blobHash, &blobCount)
		if kind == gzipped || kind == zstded {
			raw = io.TeeReader(br, sink)
		} else if gz, err = gzip.NewWriterLevel(sink, gzip.BestSpeed); err != nil {
			return nil, err
		}
	}
	dec, err := decompressor(raw, kind)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "layer: invalid compressed data: %v", err)
	}
	diffHash := sha256.New()
	var tarSize countWriter
	var tarStream io.Reader = io.TeeReader(dec, io.MultiWriter(diffHash, &tarSize))
	if gz != nil {
		tarStream = io.TeeReader(tarStream, gz)
	}
	// bad data: say so plainly when the blob does not match its digest
	badData := func(err error) error {
		if in.verify != nil {
			if _, derr := io.Copy(io.Discard, raw); derr == nil {
				if verr := in.verify(); verr != nil {
					return verr
				}
			}
		}
		return err
	}
	st, err := ExtractWith(tarStream, tmp, ExtractOptions{Whiteouts: in.whiteouts})
	if err != nil {
		return nil, badData(err)
	}
	// the tar's end-of-archive blocks and anything after count in the digests
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		return nil, badData(errdefs.New(errdefs.InvalidParameter, "layer: reading archive: %v", err))
	}
	if err := dec.Close(); err != nil {
		return nil, badData(errdefs.New(errdefs.InvalidParameter, "layer: %v", err))
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "layer: reading blob: %v", err)
	}
	if in.verify != nil {
		if err := in.verify(); err != nil {
			return nil, err
		}
	}
	if in.requireEntries && st.Entries == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "the archive is empty or not a tar archive")
	}
	diffID := digest.NewDigest(digest.SHA256, diffHash)
	if in.diffID != "" && diffID != in.diffID {
		return nil, errdefs.New(errdefs.InvalidParameter, "layer %s: the unpacked content has digest %s (corrupt or mismatched blob)", in.diffID, diffID)
	}
	l := &Layer{DiffID: diffID, Size: st.Size, TarSize: int64(tarSize), Blob: in.blob, BlobSize: in.blobSize, MediaType: in.mediaType}
	if in.keepBlob {
		if gz != nil {
			if err := gz.Close(); err != nil {
				return nil, err
			}
		}
		if err := blobFile.Close(); err != nil {
			return nil, err
		}
		l.Blob = digest.NewDigest(digest.SHA256, blobHash)
		l.BlobSize = int64(blobCount)
		l.MediaType = ocispec.MediaTypeImageLayerGzip
		if kind == zstded {
			l.MediaType = ocispec.MediaTypeImageLayerZstd
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.layers[diffID]; ok {
		return old, nil
	}
	if err := os.Rename(tmp, s.LayerDir(diffID.String())); err != nil {
		return nil, err
	}
	blobTmp := in.blobFile
	if in.keepBlob {
		blobTmp = blobFile.Name()
	}
	if blobTmp != "" {
		if err := s.commitBlob(blobTmp, l.Blob); err != nil {
			_ = os.RemoveAll(s.LayerDir(diffID.String()))
			return nil, err
		}
	}
	if err := s.writeLayer(l); err != nil {
		_ = os.RemoveAll(s.LayerDir(diffID.String()))
		return nil, err
	}
	s.layers[diffID] = l
	return l, nil
}

func (s *Store) writeLayer(l *Layer) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return atomicfile.Write(s.layerRecordPath(l.DiffID), data, 0o600)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// removeLayerLocked deletes a layer with its record and blob.
func (s *Store) removeLayerLocked(d digest.Digest) {
	l := s.layers[d]
	delete(s.layers, d)
	_ = os.Remove(s.layerRecordPath(d))
	_ = os.RemoveAll(s.LayerDir(d.String()))
	if l != nil && l.Blob != "" && !s.blobUsedLocked(l.Blob) {
		s.removeBlob(l.Blob)
	}
}

func (s *Store) blobUsedLocked(b digest.Digest) bool {
	for _, l := range s.layers {
		if l.Blob == b {
			return true
		}
	}
	return false
}

// LayerBlob opens the stored blob of layer diffID (for push and save).
func (s *Store) LayerBlob(diffID digest.Digest) (*os.File, Layer, error) {
	l, ok := s.Layer(diffID)
	if !ok {
		return nil, l, errdefs.New(errdefs.NotFound, "layer %s not found", diffID)
	}
	if l.Blob == "" {
		return nil, l, errdefs.New(errdefs.NotImplemented, "layer %s was stored by an older berth without its blob: it cannot be exported", diffID)
	}
	f, err := s.OpenBlob(l.Blob)
	if err != nil {
		return nil, l, err
	}
	return f, l, nil
}

// UncompressedLayer opens the tar stream of layer diffID.
func (s *Store) UncompressedLayer(diffID digest.Digest) (io.ReadCloser, Layer, error) {
	f, l, err := s.LayerBlob(diffID)
	if err != nil {
		return nil, l, err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	magic, _ := br.Peek(4)
	dec, err := decompressor(br, sniff(magic))
	if err != nil {
		f.Close()
		return nil, l, err
	}
	return readCloser{dec, func() error { dec.Close(); return f.Close() }}, l, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
