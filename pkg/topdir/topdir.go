// Package topdir marks the directories under which berth creates and
// removes many subtrees (layers, containers) as tops of directory
// hierarchies for ext4 (FS_TOPDIR_FL, `chattr +T`).
//
// ext4 puts a new directory in its parent's block group, and its files
// with it. There, the subtrees just removed (an image or a container gone)
// leave thousands of recently freed inodes, which the allocator scans past,
// reading their inode table blocks, before it reuses any: unpacking a layer
// or creating a container right after a removal then costs many times more
// system time. Below a top directory, the Orlov allocator spreads new
// directories over the block groups instead. On other file systems Mark
// does nothing.
package topdir

import (
	"os"

	"golang.org/x/sys/unix"
)

// fsTopdirFl is FS_TOPDIR_FL (linux/fs.h), missing from x/sys.
const fsTopdirFl = 0x00020000

// Mark sets FS_TOPDIR_FL on dir, when its file system has the flag.
func Mark(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFl != 0 {
		return
	}
	_ = unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFl))
}
