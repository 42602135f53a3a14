package topdir

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMark(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS); err != nil {
		t.Skipf("the file system of %s has no inode flags: %v", dir, err)
	}
	Mark(dir)
	Mark(dir) // twice is fine
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFl == 0 {
		t.Fatalf("flags %#x %v: FS_TOPDIR_FL not set", flags, err)
	}
	Mark("/nonexistent/dir") // no panic, no error
}
