package specconv

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

// openInRoot opens name (e.g. "etc/passwd") inside rootfs, resolving every
// symlink as if rootfs were "/" so that a hostile image cannot make us read
// a host file.
func openInRoot(rootfs, name string) (*os.File, error) {
	dirfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

func readColon(rootfs, name string, fields int, fn func([]string)) error {
	if rootfs == "" {
		return nil
	}
	f, err := openInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) < fields {
			continue
		}
		fn(parts)
	}
	return sc.Err()
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColon(rootfs, "etc/passwd", 7, func(p []string) {
		uid, err1 := strconv.ParseUint(p[2], 10, 32)
		gid, err2 := strconv.ParseUint(p[3], 10, 32)
		if err1 == nil && err2 == nil {
			out = append(out, passwdEntry{name: p[0], uid: uint32(uid), gid: uint32(gid), home: p[5]})
		}
	})
	return out, err
}

func readGroup(rootfs string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColon(rootfs, "etc/group", 4, func(p []string) {
		gid, err := strconv.ParseUint(p[2], 10, 32)
		if err == nil {
			var members []string
			if p[3] != "" {
				members = strings.Split(p[3], ",")
			}
			out = append(out, groupEntry{name: p[0], gid: uint32(gid), members: members})
		}
	})
	return out, err
}

// ResolveUser maps Docker's --user ("", "uid", "name", "uid:gid",
// "name:group") to an OCI user, reading /etc/passwd and /etc/group inside
// rootfs. extraGroups are HostConfig.GroupAdd entries (names or numbers).
// It also returns the user's home directory (for HOME), "/" when unknown.
func ResolveUser(rootfs, user string, extraGroups []string) (specs.User, string, error) {
	var u specs.User
	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	if userPart == "" {
		userPart = "0"
	}
	passwd, err := readPasswd(rootfs)
	if err != nil {
		return u, "", err
	}
	groups, err := readGroup(rootfs)
	if err != nil {
		return u, "", err
	}
	home := "/"
	userName := ""
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u.UID = uint32(n)
		for _, p := range passwd {
			if p.uid == u.UID {
				u.GID, home, userName = p.gid, p.home, p.name
				break
			}
		}
	} else {
		found := false
		for _, p := range passwd {
			if p.name == userPart {
				u.UID, u.GID, home, userName = p.uid, p.gid, p.home, p.name
				found = true
				break
			}
		}
		if !found {
			return u, "", errdefs.New(errdefs.InvalidParameter, "unable to find user %s: no matching entries in passwd file", userPart)
		}
	}
	if hasGroup {
		gid, err := resolveGroup(groups, groupPart)
		if err != nil {
			return u, "", err
		}
		u.GID = gid
	}
	// the primary group is a supplementary one too (Docker's containers
	// show it in their group list, as after a login)
	seen := map[uint32]bool{u.GID: true}
	u.AdditionalGids = []uint32{u.GID}
	if userName != "" && !hasGroup {
		for _, g := range groups {
			for _, m := range g.members {
				if m == userName && !seen[g.gid] {
					seen[g.gid] = true
					u.AdditionalGids = append(u.AdditionalGids, g.gid)
				}
			}
		}
	}
	for _, eg := range extraGroups {
		gid, err := resolveGroup(groups, eg)
		if err != nil {
			return u, "", err
		}
		if !seen[gid] {
			seen[gid] = true
			u.AdditionalGids = append(u.AdditionalGids, gid)
		}
	}
	if home == "" {
		home = "/"
	}
	return u, home, nil
}

func resolveGroup(groups []groupEntry, g string) (uint32, error) {
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(n), nil
	}
	for _, e := range groups {
		if e.name == g {
			return e.gid, nil
		}
	}
	return 0, errdefs.New(errdefs.InvalidParameter, "Unable to find group %s: no matching entries in group file", g)
}
