package rootfs

import "berth/pkg/securejoin"

// SecureJoin resolves unsafe inside root, following symlinks as if root
// were "/", so a symlink in the image can never point a mount outside the
// container's root filesystem.
func SecureJoin(root, unsafe string) (string, error) { return securejoin.Join(root, unsafe) }
