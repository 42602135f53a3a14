package containers

import (
	"fmt"
	"os"

	"berth/pkg/securejoin"
)

// makeWorkdir creates the container's working directory (and its parents)
// in its root filesystem when the image lacks it, as dockerd does before a
// start: owned by root, mode 0755. Symlinks in the image are resolved as if
// the root were "/", so they cannot lead the creation outside it (nothing
// runs in the root yet to change them meanwhile).
func makeWorkdir(root, dir string) error {
	p, err := securejoin.Join(root, dir)
	if err != nil {
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		if st, serr := os.Stat(p); serr == nil && !st.IsDir() {
			return fmt.Errorf("Cannot mkdir: %s is not a directory", dir)
		}
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	return nil
}
