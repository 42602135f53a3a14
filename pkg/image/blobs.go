package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"

	"berth/pkg/errdefs"
)

// Blobs are content-addressed files under blobs/sha256/<hex>: image
// configs, manifests and layer blobs (as the registry served them, or
// gzip-compressed for layers made here). A blob only ever appears there
// complete and verified (written to tmp/, then renamed).

// BlobPath is the path of blob d.
func (s *Store) BlobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", "sha256", d.Encoded())
}

// partialPath is where an interrupted download of blob d waits to be resumed.
func (s *Store) partialPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", "partial", d.Encoded())
}

// HasBlob reports whether blob d is stored.
func (s *Store) HasBlob(d digest.Digest) bool {
	_, err := os.Stat(s.BlobPath(d))
	return err == nil
}

// OpenBlob opens blob d.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	if d.Validate() != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid digest %q", d)
	}
	f, err := os.Open(s.BlobPath(d))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.New(errdefs.NotFound, "blob %s not found in the store", d)
	}
	return f, err
}

// ReadBlob reads a small blob (config, manifest).
func (s *Store) ReadBlob(d digest.Digest) ([]byte, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteBlob stores data (verified against d when d is set) and returns its digest.
func (s *Store) WriteBlob(data []byte, d digest.Digest) (digest.Digest, error) {
	got := digest.FromBytes(data)
	if d != "" && d != got {
		return "", errdefs.New(errdefs.InvalidParameter, "digest mismatch: want %s, got %s", d, got)
	}
	p := s.BlobPath(got)
	if _, err := os.Stat(p); err == nil {
		return got, nil
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "blob-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", err
	}
	return got, os.Rename(f.Name(), p)
}

// commitBlob moves a verified temp file into the blob store.
func (s *Store) commitBlob(tmp string, d digest.Digest) error {
	p := s.BlobPath(d)
	if _, err := os.Stat(p); err == nil {
		return os.Remove(tmp)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("storing blob %s: %w", d, err)
	}
	return nil
}

// removeBlob deletes blob d (a missing one is not an error).
func (s *Store) removeBlob(d digest.Digest) {
	if d.Validate() == nil {
		_ = os.Remove(s.BlobPath(d))
	}
}
