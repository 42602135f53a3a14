package containerfs

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"
)

// initPaths are what Docker keeps in a container's init layer, out of its
// diff: here they are mount points the runtime made in the upper layer.
var initPaths = map[string]bool{
	"/dev": true, "/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true, "/dev/console": true,
	"/proc": true, "/sys": true, "/.dockerenv": true, "/etc/mtab": true,
	"/etc/hosts": true, "/etc/hostname": true, "/etc/resolv.conf": true,
}

// Changes is `docker diff`: the entries of the overlay's upper layer upper
// against the image's layers (lowest first). A whiteout is a deletion, an
// opaque directory that hid one below a deletion too (as Docker reports
// them); a directory whose only change is what happened inside it is
// reported changed before its content.
func Changes(upper string, layers []string) ([]container.FilesystemChange, error) {
	top := make([]string, len(layers))
	for i, l := range layers {
		top[len(layers)-1-i] = l
	}
	out, _, err := changesIn(upper, "/", top)
	if errors.Is(err, os.ErrNotExist) {
		return []container.FilesystemChange{}, nil
	}
	if out == nil {
		out = []container.FilesystemChange{}
	}
	return out, err
}

// changesIn lists the changes below dir (a path in the container); the
// bool says whether dir itself holds any.
func changesIn(upper, dir string, layers []string) ([]container.FilesystemChange, bool, error) {
	names, err := readDirNames(filepath.Join(upper, dir))
	if err != nil {
		return nil, false, err
	}
	var out []container.FilesystemChange
	for _, n := range names {
		p := filepath.Join(dir, n)
		if initPaths[p] {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(upper, p), &st); err != nil {
			continue
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			out = append(out, container.FilesystemChange{Path: p, Kind: container.ChangeDelete})
			continue
		}
		lower, inLower := lookupLower(layers, p)
		kind := container.ChangeAdd
		switch {
		case inLower && isDir && isOpaque(filepath.Join(upper, p)):
			kind = container.ChangeDelete // Docker's reading of an opaque directory
		case inLower:
			kind = container.ChangeModify
		}
		var sub []container.FilesystemChange
		if isDir {
			if sub, _, err = changesIn(upper, p, layers); err != nil {
				return nil, false, err
			}
		}
		unchangedDir := kind == container.ChangeModify && isDir && lower.Mode&unix.S_IFMT == unix.S_IFDIR &&
			lower.Mode == st.Mode && lower.Uid == st.Uid && lower.Gid == st.Gid
		if !unchangedDir || len(sub) > 0 {
			out = append(out, container.FilesystemChange{Path: p, Kind: kind})
		}
		out = append(out, sub...)
	}
	return out, len(out) > 0, nil
}

func isOpaque(p string) bool {
	v, err := getxattr(p, "trusted.overlay.opaque")
	return err == nil && string(v) == "y"
}

// lookupLower finds p in the merged view of layers (top first), as
// overlayfs would: a whiteout or a non-directory on the way hides what is
// below, and so does an opaque directory.
func lookupLower(layers []string, p string) (unix.Stat_t, bool) {
	var st unix.Stat_t
	parts := splitPath(p)
	for _, l := range layers {
		cur, opaque := l, false
		for i, part := range parts {
			cur = filepath.Join(cur, part)
			if err := unix.Lstat(cur, &st); err != nil {
				if opaque {
					return st, false // an opaque directory above hides the layers below
				}
				break // not in this layer: try the one below
			}
			if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				return st, false // a whiteout
			}
			if i == len(parts)-1 {
				return st, true
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return st, false
			}
			opaque = opaque || isOpaque(cur)
		}
	}
	return st, false
}

func splitPath(p string) []string {
	var parts []string
	for p != "/" && p != "." && p != "" {
		parts = append([]string{filepath.Base(p)}, parts...)
		p = filepath.Dir(p)
	}
	return parts
}
