package volumes

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

func needsMount(opts map[string]string) bool { return opts["type"] != "" || opts["device"] != "" }

// mountFlags are the words of the "o" option that are mount flags; the
// others go to the file system as data (size=, uid=, addr=…).
var mountFlags = map[string]uintptr{
	"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME,
	"nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME, "strictatime": unix.MS_STRICTATIME,
	"bind": unix.MS_BIND, "rbind": unix.MS_BIND | unix.MS_REC,
}

var noFlags = map[string]bool{"rw": true, "defaults": true, "suid": true, "dev": true, "exec": true, "async": true}

// Mount is a container's start with a volume: a volume created with mount
// options (type, device, o) is mounted on its _data by its first user and
// stays mounted until the last one is done (Unmount). It returns the
// directory to bind into the container.
func (s *Store) Mount(name, ref string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return "", noSuchVolume(name)
	}
	path := s.dataPath(name)
	if !needsMount(v.rec.Options) {
		return path, nil
	}
	if !v.mounted {
		var flags uintptr
		var data []string
		for _, o := range strings.Split(v.rec.Options["o"], ",") {
			switch {
			case o == "":
			case mountFlags[o] != 0:
				flags |= mountFlags[o]
			case noFlags[o]:
			default:
				data = append(data, o)
			}
		}
		dev, typ := v.rec.Options["device"], v.rec.Options["type"]
		if typ == "none" {
			typ = ""
		}
		if err := unix.Mount(dev, path, typ, flags, strings.Join(data, ",")); err != nil {
			msg := fmt.Sprintf("mount %s:%s, data: %s: %v", dev, path, strings.Join(data, ","), err)
			return "", errdefs.New(errdefs.Unknown, "error while mounting volume '%s': failed to mount local volume: %s", path, hidePassword(msg))
		}
		if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
			_ = unix.Mount("", path, "", flags|unix.MS_REMOUNT, "")
		}
		v.mounted = true
	}
	v.users[ref] = true
	return path, nil
}

// Unmount ends ref's use of a volume mounted by Mount: the last user's
// unmounts it.
func (s *Store) Unmount(name, ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return
	}
	delete(v.users, ref)
	if v.mounted && len(v.users) == 0 {
		if err := unix.Unmount(s.dataPath(name), 0); err != nil && isMountPoint(s.dataPath(name)) {
			s.log.Warn("unmounting volume", "volume", name, "err", err)
			return
		}
		v.mounted = false
	}
}

func hidePassword(s string) string {
	i := strings.Index(s, "password=")
	if i < 0 {
		return s
	}
	j := strings.IndexAny(s[i:], ", ")
	if j < 0 {
		return s[:i] + "password=********"
	}
	return s[:i] + "password=********" + s[i+j:]
}
