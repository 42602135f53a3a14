package containerfs

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
	"berth/pkg/securejoin"
)

// These functions run inside a View (Do), where "/" is the container's root.

// AbsPath is p as an absolute path in the container, keeping a trailing
// "/" or "/." (they ask for a directory's content), like Docker's.
func AbsPath(p string) string {
	abs := filepath.Join("/", p)
	switch {
	case strings.HasSuffix(p, "/."):
		if abs != "/" {
			abs += "/."
		} else {
			abs = "/."
		}
	case strings.HasSuffix(p, "/") && abs != "/":
		abs += "/"
	}
	return abs
}

// resolveParent resolves every component of abs but the last (symlinks
// followed inside the root); the last is kept as it is, so a symlink named
// there is the symlink itself.
func resolveParent(abs string) (string, error) {
	dir, base := filepath.Split(abs)
	rdir, err := securejoin.Join("/", dir)
	if err != nil {
		return "", err
	}
	if rdir == "/" {
		return "/" + base, nil
	}
	return rdir + "/" + base, nil
}

// Stat is HEAD /containers/{id}/archive: the entry at path, not followed
// if it is a symlink (LinkTarget says where it leads).
func Stat(path string) (*container.PathStat, string, error) {
	abs := AbsPath(path)
	resolved, err := resolveParent(abs)
	if err != nil {
		return nil, "", err
	}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return nil, "", err
	}
	st := &container.PathStat{Name: filepath.Base(abs), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
	if fi.Mode()&os.ModeSymlink != 0 {
		if st.LinkTarget, err = securejoin.Join("/", abs); err != nil {
			return nil, "", err
		}
	}
	return st, resolved, nil
}

// Archive writes the tar of path to w, as GET /containers/{id}/archive:
// a directory with its content under the directory's name, a file (or a
// symlink, not followed) alone under its name.
func Archive(w io.Writer, path string) error {
	st, resolved, err := Stat(path)
	if err != nil {
		return err
	}
	abs := AbsPath(path)
	rebase := filepath.Base(abs)
	tw := tar.NewWriter(w)
	a := &archiver{tw: tw, links: map[[2]uint64]string{}}
	if st.Mode.IsDir() {
		// a directory named through a symlink ("link/"): its content
		var dir string
		if dir, err = securejoin.Join("/", abs); err == nil {
			err = a.tree(dir, rebase)
		}
	} else {
		err = a.add(filepath.Clean(resolved), rebase)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

// Export writes the tar of the whole root, as GET /containers/{id}/export.
func Export(w io.Writer) error {
	tw := tar.NewWriter(w)
	a := &archiver{tw: tw, links: map[[2]uint64]string{}}
	ents, err := readDirNames("/")
	if err != nil {
		return err
	}
	for _, n := range ents {
		if err := a.tree("/"+n, n); err != nil {
			return err
		}
	}
	return tw.Close()
}

type archiver struct {
	tw    *tar.Writer
	links map[[2]uint64]string // (dev, inode) → first name, for hard links
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// tree adds dir (under name) and everything below it, never following a
// symlink.
func (a *archiver) tree(dir, name string) error {
	if err := a.add(dir, name); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	names, err := readDirNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := dir + "/" + n
		if dir == "/" {
			p = "/" + n
		}
		if err := a.tree(p, name+"/"+n); err != nil {
			return err
		}
	}
	return nil
}

// header builds a tar header from lstat, without looking user or group
// names up (in a container's root, that would read — or with cgo load —
// the container's own name service files).
func header(p, name string, st *unix.Stat_t) (*tar.Header, error) {
	h := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag = tar.TypeDir
		if !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
	case unix.S_IFREG:
		h.Typeflag = tar.TypeReg
		h.Size = st.Size
	case unix.S_IFLNK:
		h.Typeflag = tar.TypeSymlink
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		h.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil, nil // sockets are not archived
	}
	if h.Typeflag != tar.TypeSymlink {
		if caps, err := getxattr(p, "security.capability"); err == nil && len(caps) > 0 {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(caps)}
		}
	}
	return h, nil
}

func getxattr(p, attr string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, attr, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (a *archiver) add(p, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone meanwhile (a running container)
		}
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	h, err := header(p, name, &st)
	if err != nil || h == nil {
		return err
	}
	if h.Typeflag == tar.TypeReg && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := a.links[key]; ok {
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
		} else {
			a.links[key] = name
		}
	}
	if h.Typeflag != tar.TypeReg {
		return a.tw.WriteHeader(h)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := a.tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.Copy(a.tw, io.LimitReader(f, h.Size))
	if err != nil {
		return err
	}
	if n < h.Size { // the file shrank meanwhile: keep the archive well formed
		_, err = io.CopyN(a.tw, zeros{}, h.Size-n)
	}
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// ExtractOptions are PUT /containers/{id}/archive's.
type ExtractOptions struct {
	// NoOverwriteDirNonDir refuses to replace a directory with a
	// non-directory or the reverse (the docker CLI always asks for it).
	NoOverwriteDirNonDir bool
	// Chown, when set, owns every entry to this uid and gid (cp -a)
	// instead of the archive's.
	Chown *[2]int
}

// ExtractDir resolves path (symlinks followed, the last one too) to the
// directory a PUT extracts into.
func ExtractDir(path string) (string, error) {
	resolved, err := securejoin.Join("/", AbsPath(path))
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", errdefs.New(errdefs.InvalidParameter, "extraction point is not a directory")
	}
	return resolved, nil
}

// Extract unpacks the tar r into dir (from ExtractDir).
func Extract(r io.Reader, dir string, o ExtractOptions) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return errdefs.New(errdefs.InvalidParameter, "reading the archive: %v", err)
		}
		name := filepath.Clean("/" + h.Name)[1:]
		if name == "" {
			continue // the destination itself
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if fi, err := os.Lstat(p); err == nil {
			isDir := h.Typeflag == tar.TypeDir
			if o.NoOverwriteDirNonDir && fi.IsDir() && !isDir {
				return errdefs.New(errdefs.InvalidParameter, "cannot overwrite directory %q with non-directory %q", p, dir)
			}
			if o.NoOverwriteDirNonDir && !fi.IsDir() && isDir {
				return errdefs.New(errdefs.InvalidParameter, "cannot overwrite non-directory %q with directory %q", p, dir)
			}
			if !(fi.IsDir() && isDir) {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
			}
		}
		if err := createEntry(tr, h, p, dir); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeLink {
			continue // the file it links to has its owner, mode and times
		}
		uid, gid := h.Uid, h.Gid
		if o.Chown != nil {
			uid, gid = o.Chown[0], o.Chown[1]
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		for k, v := range h.PAXRecords {
			if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				_ = unix.Lsetxattr(p, attr, []byte(v), 0)
			}
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := unix.Chmod(p, uint32(h.Mode&0o7777)); err != nil {
				return &os.PathError{Op: "chmod", Path: p, Err: err}
			}
		}
		if h.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{p, h.ModTime})
		} else {
			ts := []unix.Timeval{unix.NsecToTimeval(h.ModTime.UnixNano()), unix.NsecToTimeval(h.ModTime.UnixNano())}
			_ = unix.Lutimes(p, ts)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t)
	}
	return nil
}

func createEntry(tr *tar.Reader, h *tar.Header, p, dir string) error {
	switch h.Typeflag {
	case tar.TypeDir:
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return nil
		}
		return os.Mkdir(p, 0o755)
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		// Docker refuses a relative link that climbs out of the destination
		if target := filepath.Join(filepath.Dir(p), h.Linkname); !filepath.IsAbs(h.Linkname) && !within(target, dir) {
			return errdefs.New(errdefs.InvalidParameter, "invalid symlink %q -> %q", p, h.Linkname)
		}
		return os.Symlink(h.Linkname, p)
	case tar.TypeLink:
		target := filepath.Join(dir, filepath.Clean("/"+h.Linkname))
		if !within(target, dir) {
			return errdefs.New(errdefs.InvalidParameter, "invalid hardlink %q -> %q", p, h.Linkname)
		}
		return os.Link(target, p)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(h.Mode & 0o7777)
		switch h.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		return unix.Mknod(p, mode, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))))
	case tar.TypeXGlobalHeader:
		return nil
	}
	return errdefs.New(errdefs.InvalidParameter, "unhandled tar header type %d for %s", h.Typeflag, h.Name)
}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
