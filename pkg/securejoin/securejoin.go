package securejoin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Join resolves unsafe inside root, following symlinks as if root
// were "/", so a symlink in the image can never point a mount outside the
// container's root filesystem.
func Join(root, unsafe string) (string, error) {
	var resolved string // relative to root, always clean and inside
	rest := filepath.Clean("/" + unsafe)
	links := 0
	for rest != "" && rest != "/" {
		rest = strings.TrimPrefix(rest, "/")
		var part string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			part, rest = rest[:i], rest[i:]
		} else {
			part, rest = rest, ""
		}
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			resolved = filepath.Dir("/" + resolved)[1:]
			continue
		}
		next := filepath.Join(resolved, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				resolved = next
				continue
			}
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > 255 {
			return "", errors.New("too many symlinks in " + unsafe)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			resolved = ""
		}
		rest = "/" + target + rest
	}
	return filepath.Join(root, "/", resolved), nil
}
