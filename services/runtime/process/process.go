package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}

var rlimits = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

// RlimitResource is the resource number of an rlimit name.
func RlimitResource(name string) (int, bool) {
	r, ok := rlimits[name]
	return r, ok
}

// ValidateRlimits checks the names and that soft <= hard.
func ValidateRlimits(rl []specs.POSIXRlimit) error {
	seen := map[string]bool{}
	for _, r := range rl {
		if _, ok := rlimits[r.Type]; !ok {
			return fmt.Errorf("unknown rlimit %q", r.Type)
		}
		if seen[r.Type] {
			return fmt.Errorf("duplicate rlimit %q", r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("rlimit %s: soft limit %d is above the hard limit %d", r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}

// SetRlimits applies the rlimits to this process.
func SetRlimits(rl []specs.POSIXRlimit) error {
	for _, r := range rl {
		res, ok := rlimits[r.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", r.Type)
		}
		lim := unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		if err := unix.Prlimit(0, res, &lim, nil); err != nil {
			return fmt.Errorf("setrlimit %s: %w", r.Type, err)
		}
	}
	return nil
}

// SetUser switches groups, gid and uid on the calling thread, keeping the
// permitted capabilities so they can be set afterwards.
func SetUser(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	groups := make([]uint32, 0, len(u.AdditionalGids))
	groups = append(groups, u.AdditionalGids...)
	if allowSetgroups() {
		var p unsafe.Pointer
		if len(groups) > 0 {
			p = unsafe.Pointer(&groups[0])
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
			return fmt.Errorf("setgroups: %w", e)
		}
	} else if len(groups) > 0 {
		return errors.New("additionalGids given but setgroups is denied in this user namespace")
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("keepcaps: %w", err)
	}
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	}
	return nil
}

func allowSetgroups() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err != nil || strings.TrimSpace(string(b)) != "deny"
}

// SetOOMScoreAdj writes /proc/self/oom_score_adj.
func SetOOMScoreAdj(v int) error {
	return os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(v)), 0o644)
}

// CheckAppArmor fails when a profile is asked for but AppArmor is off.
func CheckAppArmor(profile string) error {
	if profile == "" {
		return nil
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	if err != nil || !strings.HasPrefix(string(b), "Y") {
		return fmt.Errorf("apparmor profile %q requested but AppArmor is not enabled on this host", profile)
	}
	return nil
}

// ApplyAppArmor switches to the profile at the next exec.
func ApplyAppArmor(profile string) error {
	if profile == "" {
		return nil
	}
	if err := CheckAppArmor(profile); err != nil {
		return err
	}
	f, err := os.OpenFile("/proc/self/attr/apparmor/exec", os.O_WRONLY, 0)
	if err != nil {
		f, err = os.OpenFile("/proc/self/attr/exec", os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("apparmor: %w", err)
		}
	}
	defer f.Close()
	_, err = f.WriteString("exec " + profile)
	return err
}

// LookPath finds the program in the PATH of the process environment (after
// the root change, so inside the container).
func LookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", fmt.Errorf("exec: %q: %w", file, err)
		}
		return file, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			path = e[5:]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", file)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return errors.New("permission denied")
	}
	return nil
}
