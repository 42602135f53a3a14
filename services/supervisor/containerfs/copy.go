package containerfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/securejoin"
)

// CopyUp copies the content of dest in the root file system root (a
// stopped container's, mounted on the host) into the empty directory vol,
// with owners, modes, times and links, and gives vol the owner and mode of
// dest: Docker's copy of an image's content into a new volume. Nothing
// happens when dest is missing or not a directory.
func CopyUp(root, dest, vol string) error {
	src, err := securejoin.Join(root, dest)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	c := copier{links: map[[2]uint64]string{}}
	names, err := readDirNames(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := c.copy(filepath.Join(src, n), filepath.Join(vol, n)); err != nil {
			return err
		}
	}
	if err := os.Lchown(vol, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(vol, st.Mode&0o7777)
}

type copier struct {
	links map[[2]uint64]string // (dev, inode) → first copy, for hard links
}

// copy copies one entry (a directory with its content), never following
// a symlink.
func (c *copier) copy(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		names, err := readDirNames(src)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := c.copy(filepath.Join(src, n), filepath.Join(dst, n)); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := c.links[key]; ok && st.Nlink > 1 {
			return os.Link(first, dst)
		}
		c.links[key] = dst
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return nil // sockets
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if caps, err := getxattr(src, "security.capability"); err == nil && len(caps) > 0 {
			_ = unix.Lsetxattr(dst, "security.capability", caps, 0)
		}
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return &os.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	at, mt := time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix())
	return unix.Lutimes(dst, []unix.Timeval{unix.NsecToTimeval(at.UnixNano()), unix.NsecToTimeval(mt.UnixNano())})
}

func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
