package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

// ExtractStats describes an extracted layer.
type ExtractStats struct {
	Size    int64 // the layer's size as dockerd's overlay2 counts it (see dirSize)
	Entries int
}

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// Whiteouts turns OCI whiteouts (.wh.NAME, .wh..wh..opq) into overlayfs
	// ones (a 0/0 character device, the trusted.overlay.opaque xattr); off,
	// they are dropped (a single imported layer has nothing below it).
	Whiteouts bool
}

func hostile(format string, args ...any) error {
	return errdefs.New(errdefs.InvalidParameter, "refusing hostile archive entry: "+format, args...)
}

// cleanEntry validates a tar entry name and returns it relative to the root
// ("" for the root itself). Absolute names and ".." components are refused.
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
	rel := path.Clean(name)
	if rel == "." {
		return "", nil
	}
	return rel, nil
}

// Extract unpacks the tar stream r into dir, which must exist.
func Extract(r io.Reader, dir string) (ExtractStats, error) {
	return ExtractWith(r, dir, ExtractOptions{})
}

// beneath resolves a path strictly inside the root: no symbolic link (not
// even one pointing inside), no "..", no other mount. The kernel enforces it
// (openat2), so nothing an entry does can make a later one land outside.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// extractor unpacks one layer. Every file operation is relative to a
// directory descriptor resolved with openat2 under the layer's root, and
// never follows a symbolic link, so a hostile archive (entries under a
// symlinked directory, links pointing outside, names with "..") cannot write
// a byte outside the layer.
type extractor struct {
	root    int
	opts    ExtractOptions
	isRoot  bool
	st      ExtractStats
	buf     []byte
	dirRel  string // the cached parent directory
	dirFd   int
	dirTime []dirTime
}

type dirTime struct {
	rel string
	t   time.Time
}

// ExtractWith unpacks the tar stream r into dir (which must exist) with opts.
func ExtractWith(r io.Reader, dir string, opts ExtractOptions) (ExtractStats, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("opening layer directory: %w", err)
	}
	x := &extractor{root: root, opts: opts, isRoot: os.Geteuid() == 0, buf: make([]byte, 1<<20), dirFd: -1}
	defer x.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.st, errdefs.New(errdefs.InvalidParameter, "invalid tar archive: %v", err)
		}
		x.st.Entries++
		if err := x.entry(hdr, tr); err != nil {
			return x.st, err
		}
	}
	for i := len(x.dirTime) - 1; i >= 0; i-- {
		d := x.dirTime[i]
		dirRel, base := path.Split(d.rel)
		if fd, err := x.open(strings.TrimSuffix(dirRel, "/")); err == nil {
			setTimes(fd, base, d.t)
			if fd != x.root {
				unix.Close(fd)
			}
		}
	}
	x.st.Size, err = dirSize(dir)
	return x.st, err
}

// dirSize is the size of an unpacked layer as dockerd's overlay2 driver
// reports it (pkg/directory.Size of the diff directory): the lstat size of
// everything but directories, so a symlink counts its target's length, a
// hard-linked inode once, a file written twice in the layer at its final
// size, a whiteout nothing.
func dirSize(dir string) (int64, error) {
	var size int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if fi.Size() == 0 || !ok || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		size += fi.Size()
		return nil
	})
	return size, err
}

func (x *extractor) close() {
	x.forget()
	unix.Close(x.root)
}

// forget drops the cached parent descriptor (after a removal it may name a
// deleted directory).
func (x *extractor) forget() {
	if x.dirFd >= 0 {
		unix.Close(x.dirFd)
	}
	x.dirFd, x.dirRel = -1, ""
}

// open resolves directory rel ("" is the root) beneath the root.
func (x *extractor) open(rel string) (int, error) {
	if rel == "" || rel == "." {
		return x.root, nil
	}
	return unix.Openat2(x.root, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
}

// parent returns a descriptor of directory rel, creating missing
// components; the caller must not close it.
func (x *extractor) parent(rel string) (int, error) {
	if rel == "" || rel == "." {
		return x.root, nil
	}
	if x.dirFd >= 0 && x.dirRel == rel {
		return x.dirFd, nil
	}
	x.forget()
	fd, err := x.open(rel)
	if errors.Is(err, unix.ENOENT) {
		fd, err = x.mkdirAll(rel)
	}
	if err != nil {
		return -1, x.resolveErr(rel, err)
	}
	x.dirFd, x.dirRel = fd, rel
	return fd, nil
}

func (x *extractor) resolveErr(rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		return hostile("%q: a parent directory is a symbolic link", rel)
	case errors.Is(err, unix.ENOTDIR):
		return hostile("%q: a parent is not a directory", rel)
	}
	return fmt.Errorf("resolving %s in the layer: %w", rel, err)
}

func (x *extractor) mkdirAll(rel string) (int, error) {
	parts := strings.Split(rel, "/")
	cur := x.root
	for i, p := range parts {
		next, err := unix.Openat2(x.root, strings.Join(parts[:i+1], "/"), &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(cur, p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				return -1, err
			}
			next, err = unix.Openat2(cur, p, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
		}
		if cur != x.root {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// replace removes what holds name in dir so that an entry can take it,
// and returns dir (resolved again when a directory tree went).
func (x *extractor) replace(dirRel, name string) (int, error) {
	x.forget()
	dir, err := x.parent(dirRel)
	if err != nil {
		return -1, err
	}
	return dir, x.remove(dir, name)
}

// remove deletes name in dir (a whole tree if a directory) without following links.
func (x *extractor) remove(dir int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dir, name, 0)
	}
	// os.RemoveAll works with *at calls and O_NOFOLLOW below the start;
	// the /proc/self/fd link pins the already resolved parent.
	err := os.RemoveAll(fmt.Sprintf("/proc/self/fd/%d/%s", dir, name))
	return err
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanEntry(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag == tar.TypeDir {
			x.meta(x.root, ".", hdr, true, false)
		}
		return nil
	}
	dirRel, base := path.Split(rel)
	dirRel = strings.TrimSuffix(dirRel, "/")
	if strings.HasPrefix(base, ".wh.") {
		if !x.opts.Whiteouts {
			return nil
		}
		dir, err := x.parent(dirRel)
		if err != nil {
			return err
		}
		return x.whiteout(dir, dirRel, strings.TrimPrefix(base, ".wh."))
	}
	dir, err := x.parent(dirRel)
	if err != nil {
		return err
	}
	mode := uint32(hdr.Mode & 0o7777)
	// Create first; only when the name is taken (rare: a layer normally
	// names each path once) look at what is there and replace it.
	create := func() error {
		switch hdr.Typeflag {
		case tar.TypeDir:
			return unix.Mkdirat(dir, base, mode&0o777)
		case tar.TypeReg, tar.TypeGNUSparse: // the reader turns the old TypeRegA into TypeReg
			fd, err := unix.Openat(dir, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode&0o777)
			if err != nil {
				return err
			}
			f := os.NewFile(uintptr(fd), rel)
			_, err = io.CopyBuffer(onlyWriter{f}, r, x.buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("writing %s: %w", rel, err)
			}
			return nil
		}
		return nil
	}
	var err2 error
	existed := false
	if hdr.Typeflag == tar.TypeDir || hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
		err2 = create()
	}
	if errors.Is(err2, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("replacing %s: %w", rel, err)
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case isDir && hdr.Typeflag == tar.TypeDir:
			err2, existed = nil, true // a directory named twice: its metadata is updated
		default:
			if isDir {
				// the cached descriptor may be inside the tree going away
				x.forget()
				if dir, err = x.parent(dirRel); err != nil {
					return err
				}
			}
			if err := x.remove(dir, base); err != nil {
				return fmt.Errorf("replacing %s: %w", rel, err)
			}
			err2 = create()
		}
	}
	if err2 != nil {
		return fmt.Errorf("creating %s: %w", rel, err2)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		x.meta(dir, base, hdr, false, !existed)
		x.dirTime = append(x.dirTime, dirTime{rel, hdr.ModTime})
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
	case tar.TypeSymlink:
		err := unix.Symlinkat(hdr.Linkname, dir, base)
		if errors.Is(err, unix.EEXIST) {
			if dir, err = x.replace(dirRel, base); err == nil {
				err = unix.Symlinkat(hdr.Linkname, dir, base)
			}
		}
		if err != nil {
			return fmt.Errorf("symlink %s: %w", rel, err)
		}
	case tar.TypeLink:
		lrel, err := cleanEntry(hdr.Linkname)
		if err != nil || lrel == "" {
			return hostile("hard link %q -> %q escapes the layer", hdr.Name, hdr.Linkname)
		}
		ldir, lbase := path.Split(lrel)
		src, err := x.open(strings.TrimSuffix(ldir, "/"))
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return hostile("hard link %q -> %q: target missing", hdr.Name, hdr.Linkname)
			}
			return x.resolveErr(lrel, err)
		}
		err = unix.Linkat(src, lbase, dir, base, 0) // never follows a symlink
		if errors.Is(err, unix.EEXIST) {
			if dir, err = x.replace(dirRel, base); err == nil {
				err = unix.Linkat(src, lbase, dir, base, 0)
			}
		}
		if src != x.root {
			unix.Close(src)
		}
		switch {
		case errors.Is(err, unix.ENOENT):
			return hostile("hard link %q -> %q: target missing", hdr.Name, hdr.Linkname)
		case errors.Is(err, unix.EPERM):
			return hostile("hard link %q -> %q: target is a directory", hdr.Name, hdr.Linkname)
		case err != nil:
			return fmt.Errorf("hard link %s: %w", rel, err)
		}
		return nil // a hard link shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		if !x.isRoot && hdr.Typeflag != tar.TypeFifo {
			return nil // like Docker without privileges: device nodes are skipped
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		err := unix.Mknodat(dir, base, mode, dev)
		if errors.Is(err, unix.EEXIST) {
			if dir, err = x.replace(dirRel, base); err == nil {
				err = unix.Mknodat(dir, base, mode, dev)
			}
		}
		if err != nil {
			return fmt.Errorf("mknod %s: %w", rel, err)
		}
	default:
		return nil // pax global headers and unsupported kinds are skipped, as Docker does
	}
	x.meta(dir, base, hdr, false, true)
	if hdr.Typeflag != tar.TypeDir {
		setTimes(dir, base, hdr.ModTime)
	}
	return nil
}

// whiteout records in the layer that name, in the layers below, is gone
// (an overlayfs whiteout), or that directory dirRel hides everything below
// it (opaque).
func (x *extractor) whiteout(dir int, dirRel, name string) error {
	if name == ".wh..opq" {
		fd, err := x.dirForWrite(dirRel)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("marking %s opaque: %w", dirRel, err)
		}
		return nil
	}
	if strings.HasPrefix(name, ".wh.") {
		return nil // aufs metadata (.wh..wh.plnk, …)
	}
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return hostile("whiteout %q in %q", name, dirRel)
	}
	if err := x.remove(dir, name); err != nil {
		return err
	}
	if err := unix.Mknodat(dir, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %s/%s: %w", dirRel, name, err)
	}
	return nil
}

// dirForWrite opens directory rel for reading (fchown, fchmod, xattrs).
func (x *extractor) dirForWrite(rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(x.root, rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		return -1, x.resolveErr(rel, err)
	}
	return fd, nil
}

// meta sets owner, mode and xattrs of dir/base (never through a symlink).
func (x *extractor) meta(dir int, base string, hdr *tar.Header, isRootDir, fresh bool) {
	mode := uint32(hdr.Mode & 0o7777)
	if isRootDir {
		fd, err := x.dirForWrite(".")
		if err != nil {
			return
		}
		defer unix.Close(fd)
		if x.isRoot {
			_ = unix.Fchown(fd, hdr.Uid, hdr.Gid)
		}
		_ = unix.Fchmod(fd, mode)
		return
	}
	// what was just created belongs to root with mode&^umask: most entries
	// need no chown nor chmod (a pull makes thousands of files)
	chowned := false
	if x.isRoot && (!fresh || hdr.Uid != 0 || hdr.Gid != 0) {
		_ = unix.Fchownat(dir, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
		chowned = true
	}
	if hdr.Typeflag != tar.TypeSymlink && (!fresh || chowned || mode&0o7000 != 0 || mode&^umask != mode) {
		// after chown, which clears the set-id bits
		_ = unix.Fchmodat(dir, base, mode, 0)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, "trusted.overlay.") {
			// overlayfs' own metadata (redirects, origins) is never taken from an archive
			continue
		}
		_ = unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", dir, base), name, []byte(v), 0)
	}
}

// umask is the process's file mode creation mask (read once: umask(2)
// can only be read by setting it).
var umask = func() uint32 {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				var m uint32
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%o", &m); err == nil {
					return m
				}
			}
		}
	}
	return 0o777 // unknown: always chmod
}()

// onlyWriter hides *os.File's ReadFrom, so io.CopyBuffer uses its buffer
// (copy_file_range cannot apply to a tar stream anyway).
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

func setTimes(dir int, base string, t time.Time) {
	if t.IsZero() {
		return
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	_ = unix.UtimesNanoAt(dir, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
