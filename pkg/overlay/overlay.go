// Package overlay mounts overlayfs roots for containers. The layers are
// given to the kernel one by one (fsconfig "lowerdir+", Linux 6.8+), so an
// image may have more layers than one mount option string (a page) can
// name; older kernels get the classic mount(2) option string.
package overlay

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Options describe one overlayfs mount.
type Options struct {
	Lower    []string // lowest layer first (as an image lists them)
	Upper    string
	Work     string
	Volatile bool // skip syncing the upper layer (Linux 5.10+; ignored where missing)
}

// Mount mounts an overlayfs on target.
func Mount(target string, o Options) error {
	if len(o.Lower) == 0 {
		return errors.New("overlay: no lower layer")
	}
	err := mountFD(target, o)
	if err == nil || !errors.Is(err, errNoFD) {
		return err
	}
	return mountString(target, o)
}

var errNoFD = errors.New("fsconfig lowerdir+ not supported")

// fsLog reads what the kernel said about a failed fsconfig call.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

func mountFD(target string, o Options) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return errNoFD
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		if msg := fsLog(fd); msg != "" {
			return fmt.Errorf("overlay %s: %w (%s)", what, err, msg)
		}
		return fmt.Errorf("overlay %s: %w", what, err)
	}
	for i := len(o.Lower) - 1; i >= 0; i-- { // overlayfs takes the top layer first
		if err := unix.FsconfigSetString(fd, "lowerdir+", o.Lower[i]); err != nil {
			if i == len(o.Lower)-1 && errors.Is(err, unix.EINVAL) {
				fsLog(fd)
				return errNoFD // a kernel before 6.8
			}
			return fail("lower layer "+o.Lower[i], err)
		}
	}
	if err := unix.FsconfigSetString(fd, "upperdir", o.Upper); err != nil {
		return fail("upperdir", err)
	}
	if err := unix.FsconfigSetString(fd, "workdir", o.Work); err != nil {
		return fail("workdir", err)
	}
	if o.Volatile {
		if err := unix.FsconfigSetFlag(fd, "volatile"); err != nil {
			fsLog(fd) // an old kernel: the plain mount
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fail("create", err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("overlay: attaching the mount on %s: %w", target, err)
	}
	return nil
}

func mountString(target string, o Options) error {
	lower := make([]string, 0, len(o.Lower))
	for i := len(o.Lower) - 1; i >= 0; i-- {
		lower = append(lower, o.Lower[i])
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), o.Upper, o.Work)
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay: %d layers do not fit one mount option string on this kernel (fsconfig lowerdir+ needs Linux 6.8)", len(o.Lower))
	}
	if o.Volatile {
		if err := unix.Mount("overlay", target, "overlay", 0, opts+",volatile"); err == nil {
			return nil
		}
	}
	return unix.Mount("overlay", target, "overlay", 0, opts)
}
