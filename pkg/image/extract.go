package image

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

// Decompress returns r uncompressed when it starts with a gzip or bzip2
// header, as `docker import` accepts both.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	magic, _ := br.Peek(3)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return gzip.NewReader(br)
	case len(magic) >= 3 && string(magic) == "BZh":
		return bzip2.NewReader(br), nil
	}
	return br, nil
}

// ExtractStats describes an extracted layer.
type ExtractStats struct {
	Size    int64 // bytes of regular files
	Entries int
}

func hostile(format string, args ...any) error {
	return errdefs.New(errdefs.InvalidParameter, "refusing hostile archive entry: "+format, args...)
}

// cleanEntry validates a tar entry name and returns it relative to the root.
// Absolute names and names with ".." components are refused.
func cleanEntry(name string) (string, error) {
	if name == "" {
		return "", hostile("empty name")
	}
	if strings.HasPrefix(name, "/") {
		return "", hostile("%q: absolute path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", hostile("%q: path contains ..", name)
		}
	}
	rel := filepath.Clean(name)
	if rel == "." {
		return "", nil
	}
	return rel, nil
}

// checkParents makes sure no existing component of rel's parent inside root
// is a symlink (writing through one could escape root) and creates missing
// parent directories.
func checkParents(root, rel string) error {
	dir := filepath.Dir(rel)
	if dir == "." {
		return nil
	}
	cur := root
	for _, part := range strings.Split(dir, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return hostile("%q: parent %q is a symbolic link", rel, strings.TrimPrefix(cur, root+"/"))
		case !fi.IsDir():
			return hostile("%q: parent is not a directory", rel)
		}
	}
	return nil
}

// Extract unpacks the tar stream r into dir, which must exist. Nothing is
// ever written outside dir: entries with absolute names or "..", hard links
// pointing outside, and entries under a symbolic link are refused.
func Extract(r io.Reader, dir string) (ExtractStats, error) {
	var st ExtractStats
	root, err := filepath.Abs(dir)
	if err != nil {
		return st, err
	}
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirTimes []dirTime
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, errdefs.New(errdefs.InvalidParameter, "invalid tar archive: %v", err)
		}
		st.Entries++
		rel, err := cleanEntry(hdr.Name)
		if err != nil {
			return st, err
		}
		base := filepath.Base(rel)
		if strings.HasPrefix(base, ".wh.") {
			continue // whiteouts mean nothing in a single imported layer
		}
		if rel == "" {
			if hdr.Typeflag == tar.TypeDir {
				_ = os.Chmod(root, fileMode(hdr))
			}
			continue
		}
		if err := checkParents(root, rel); err != nil {
			return st, err
		}
		target := filepath.Join(root, rel)
		fi, lerr := os.Lstat(target)
		exists := lerr == nil
		if exists && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return st, err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if !exists || !fi.IsDir() {
				if err := os.Mkdir(target, 0o755); err != nil {
					return st, err
				}
			}
		case tar.TypeReg, tar.TypeGNUSparse: // the reader turns the old TypeRegA into TypeReg
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return st, err
			}
			n, err := io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return st, err
			}
			st.Size += n
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return st, err
			}
		case tar.TypeLink:
			lrel, err := cleanEntry(hdr.Linkname)
			if err != nil || lrel == "" {
				return st, hostile("hard link %q -> %q escapes the layer", hdr.Name, hdr.Linkname)
			}
			if err := checkParents(root, lrel); err != nil {
				return st, err
			}
			src := filepath.Join(root, lrel)
			sfi, err := os.Lstat(src)
			if err != nil {
				return st, hostile("hard link %q -> %q: target missing", hdr.Name, hdr.Linkname)
			}
			if sfi.IsDir() {
				return st, hostile("hard link %q -> %q: target is a directory", hdr.Name, hdr.Linkname)
			}
			if err := os.Link(src, target); err != nil {
				return st, err
			}
			continue // the link shares the target's metadata
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := uint32(hdr.Mode & 0o7777)
			switch hdr.Typeflag {
			case tar.TypeChar:
				mode |= unix.S_IFCHR
			case tar.TypeBlock:
				mode |= unix.S_IFBLK
			default:
				mode |= unix.S_IFIFO
			}
			if err := unix.Mknod(target, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				return st, fmt.Errorf("mknod %s: %w", rel, err)
			}
		case tar.TypeXGlobalHeader:
			continue
		default:
			continue // unsupported entry kinds are skipped, like Docker does
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
				return st, err
			}
		}
		for k, v := range hdr.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				_ = unix.Lsetxattr(target, name, []byte(v), 0)
			}
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(target, fileMode(hdr)); err != nil {
				return st, err
			}
		}
		if hdr.Typeflag == tar.TypeDir {
			dirTimes = append(dirTimes, dirTime{target, hdr.ModTime})
		} else {
			setTimes(target, hdr.ModTime)
		}
	}
	for i := len(dirTimes) - 1; i >= 0; i-- {
		setTimes(dirTimes[i].path, dirTimes[i].t)
	}
	return st, nil
}

func fileMode(hdr *tar.Header) os.FileMode {
	m := os.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func setTimes(p string, t time.Time) {
	if t.IsZero() {
		return
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
