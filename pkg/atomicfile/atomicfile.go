// Package atomicfile writes files so that a crash, a full disk or a
// read-only file system leaves either the old content or the new one, never
// a torn or empty file: write a temporary file beside the target, sync it,
// rename it over the target, sync the directory.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Write writes data to path atomically and durably (fsync of the file and of
// its directory).
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, true)
}

// WriteNoSync writes data to path atomically but without fsync: for state on
// a tmpfs (the exec root, /run), which does not outlive the machine anyway.
// A reader never sees a torn file.
func WriteNoSync(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, false)
}

func write(path string, data []byte, perm os.FileMode, durable bool) (err error) {
	defer func() {
		if err != nil {
			err = describe(path, err)
		}
	}()
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if durable {
		if d, derr := os.Open(filepath.Dir(path)); derr == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	return nil
}

// describe makes the usual storage failures read clearly.
func describe(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("cannot write %s: no space left on the device holding berth's state: %w", path, err)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("cannot write %s: disk quota exceeded: %w", path, err)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("cannot write %s: berth's state directory is on a read-only file system: %w", path, err)
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		// already names a path
		return err
	}
	return fmt.Errorf("cannot write %s: %w", path, err)
}
