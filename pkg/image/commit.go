package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// CommitOptions are docker commit's.
type CommitOptions struct {
	Repo, Tag string
	Comment   string
	Author    string
	Changes   []string
	Config    ocispec.ImageConfig // the container's config, with the request's over it
	CreatedBy string
}

// Commit makes a new image of parent plus one layer: the container's
// overlayfs upper directory, its whiteouts and opaque directories turned
// back into OCI ones.
func (s *Store) Commit(upper string, parent string, o CommitOptions) (*dockermsg.Image, error) {
	if err := ApplyChanges(&o.Config, o.Changes); err != nil {
		return nil, err
	}
	tags, err := repoTag(o.Repo, o.Tag)
	if err != nil {
		return nil, err
	}
	base, err := s.Get(parent)
	if err != nil {
		return nil, err
	}
	var cfg imageConfig
	if raw, err := s.ReadBlob(digest.Digest(base.ID)); err == nil {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, errdefs.New(errdefs.Unknown, "image %s: bad config: %v", ShortID(base.ID), err)
		}
	} else {
		cfg.Image = ocispec.Image{Platform: ocispec.Platform{OS: base.OS, Architecture: base.Architecture}, RootFS: base.RootFS, History: base.History}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteUpperTar(upper, pw)) }()
	s.pin(base.RootFS.DiffIDs)
	defer s.unpin(base.RootFS.DiffIDs)
	l, err := s.ingestLayer(layerInput{r: pr, keepBlob: true, whiteouts: true})
	pr.CloseWithError(err)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	cfg.Created = &now
	cfg.Author = o.Author
	cfg.Comment = o.Comment
	cfg.Config.ImageConfig = o.Config
	cfg.Parent = base.ID
	cfg.DockerVersion = ""
	cfg.RootFS.DiffIDs = append(append([]digest.Digest{}, cfg.RootFS.DiffIDs...), l.DiffID)
	cfg.History = append(append([]ocispec.History{}, cfg.History...), ocispec.History{Created: &now, CreatedBy: o.CreatedBy, Author: o.Author, Comment: o.Comment})
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	img, _, err := s.AddImage(NewImage{Config: raw, Tags: tags, Event: "commit"})
	return img, err
}

// WriteUpperTar writes an overlayfs upper directory as an OCI layer tar:
// a 0/0 character device is a whiteout (.wh.NAME), a directory with
// trusted.overlay.opaque=y is opaque (.wh..wh..opq); overlayfs' own xattrs
// are left out; hard links are kept.
func WriteUpperTar(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return tw.Close() // never started: no changes
	}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone while the container runs
			}
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
			return tw.WriteHeader(&tar.Header{Name: filepath.Join(filepath.Dir(rel), ".wh."+filepath.Base(rel)), Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime(), Format: tar.FormatPAX})
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = rel
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.Format = tar.FormatPAX
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		opaque := false
		for k, v := range xattrs(p) {
			if k == "trusted.overlay.opaque" || k == "user.overlay.opaque" {
				opaque = opaque || v == "y"
				continue
			}
			if strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.") {
				continue
			}
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				inodes[st.Ino] = rel
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, io.LimitReader(f, h.Size))
			f.Close()
			if err != nil {
				return err
			}
		}
		if opaque {
			return tw.WriteHeader(&tar.Header{Name: filepath.Join(rel, ".wh..wh..opq"), Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime(), Format: tar.FormatPAX})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// xattrs lists the extended attributes of p (not following a symlink).
func xattrs(p string) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n <= 0 {
		return nil
	}
	out := map[string]string{}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, k, v)
		if err == nil {
			out[k] = string(v[:m])
		}
	}
	return out
}
