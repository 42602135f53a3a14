package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestRootfsReadonlyMaskedDevices(t *testing.T) {
	e := newEnv(t)
	script := `
touch /x 2>/dev/null && echo root-writable || echo root-ro
echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-ro
[ -s /proc/kcore ] && echo kcore-visible || echo kcore-masked
ls /sys/firmware | wc -l
for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo dev-$d; done
for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done
[ -c /dev/mydev ] && ls -l /dev/mydev
echo hi > /dev/null && head -c 3 /dev/zero | wc -c
mount | grep -E ' /dev/(pts|shm) '
`
	r := e.run(e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Root.Readonly = true
		mode := os.FileMode(0o640)
		s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mydev", Type: "c", Major: 1, Minor: 3, FileMode: &mode}}
	}))
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"root-ro", "sys-ro", "kcore-masked", "\n0\n", "dev-null", "dev-zero", "dev-full", "dev-random", "dev-urandom", "dev-tty",
		"pts/ptmx\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2", "crw-r-----", "3\n", "devpts on /dev/pts", "shm on /dev/shm"} {
		contains(t, r.stdout, want)
	}
}

func TestBindAndTmpfsMounts(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	os.Chmod(host, 0o755)
	os.WriteFile(filepath.Join(host, "file"), []byte("from-host\n"), 0o644)
	r := e.run(e.bundle([]string{"sh", "-c", "cat /data/file; touch /data/x 2>/dev/null && echo data-rw || echo data-ro; touch /rw/y && echo rw-ok; mount | grep -E ' /(scratch|data|rw) '; cat /one"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/data", Type: "bind", Source: host, Options: []string{"rbind", "ro", "nosuid"}},
			specs.Mount{Destination: "/rw", Type: "bind", Source: host, Options: []string{"bind", "rprivate"}},
			specs.Mount{Destination: "/one", Source: filepath.Join(host, "file"), Options: []string{"bind", "ro"}},
			specs.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"nodev", "size=1m", "mode=700"}},
		)
	}))
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"from-host", "data-ro", "rw-ok", "tmpfs on /scratch type tmpfs (rw,nodev,relatime,size=1024k,mode=700)", "/data type", "ro,nosuid"} {
		contains(t, r.stdout, want)
	}
	if _, err := os.Stat(filepath.Join(host, "y")); err != nil {
		t.Fatal("write through rw bind mount not visible on the host")
	}
}

func TestSymlinkMountDestinationStaysInside(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sh", "-c", "mount | grep sub"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/escape/sub", Type: "tmpfs", Source: "tmpfs"})
	})
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(b, "rootfs", "escape")); err != nil {
		t.Fatal(err)
	}
	r := e.run(b)
	if r.code != 0 {
		t.Fatal(r)
	}
	if _, err := os.Stat(filepath.Join(outside, "sub")); err == nil {
		t.Fatal("mount destination followed a symlink out of the rootfs")
	}
}

func TestNoPivot(t *testing.T) {
	e := newEnv(t)
	b := e.bundle([]string{"sh", "-c", "ls /; cat /etc/hostname"}, nil)
	r := e.rt("run", "--no-pivot", "--bundle", b, "np")
	if r.code != 0 || !strings.Contains(r.stdout, "busybox") || !strings.Contains(r.stdout, "bin") {
		t.Fatal(r)
	}
}

// TestMountPropagation: a mount made in the container under an rshared bind
// of a shared host mount appears on the host; under an rslave bind it does
// not. With rootfsPropagation "rshared" the rootfs' parent is made private
// so that pivot_root still works.
func TestMountPropagation(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	if err := unix.Mount("tmpfs", host, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(host, unix.MNT_DETACH) })
	if err := unix.Mount("", host, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rootfsProp, bindProp, sub string
		propagates                bool
	}{
		{"rshared", "rshared", "from-shared", true},
		{"", "rslave", "from-slave", false},
	} {
		os.Mkdir(filepath.Join(host, tc.sub), 0o755)
		r := e.run(e.bundle([]string{"sh", "-c", "mount -t tmpfs t /shared/" + tc.sub + " && echo mounted"}, func(s *specs.Spec) {
			s.Linux.RootfsPropagation = tc.rootfsProp
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
			s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
			s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, "CAP_SYS_ADMIN")
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/shared", Type: "bind", Source: host, Options: []string{"rbind", tc.bindProp}})
		}))
		if r.code != 0 || !strings.Contains(r.stdout, "mounted") {
			t.Fatalf("rootfsPropagation %q, bind %s: %v", tc.rootfsProp, tc.bindProp, r)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		seen := strings.Contains(string(mi), " "+filepath.Join(host, tc.sub)+" ")
		if seen {
			unix.Unmount(filepath.Join(host, tc.sub), unix.MNT_DETACH)
		}
		if seen != tc.propagates {
			t.Errorf("bind %s: the container's mount seen on the host: %v, want %v", tc.bindProp, seen, tc.propagates)
		}
	}
}
