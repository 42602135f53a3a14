package specconv

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/bus/dockermsg"
)

const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func rootfs(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app\n"), 0o644)
	return dir
}

func TestMergeAndArgs(t *testing.T) {
	img := ocispec.ImageConfig{
		Env:        []string{"PATH=/img", "A=img"},
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"default"},
		WorkingDir: "/w",
		User:       "app",
		Labels:     map[string]string{"l": "img", "m": "img"},
		StopSignal: "SIGINT",
	}
	c := &container.Config{Env: []string{"A=ctr"}, Labels: map[string]string{"l": "ctr"}}
	Merge(c, img)
	if got := Args(c); !reflect.DeepEqual(got, []string{"/entry", "default"}) {
		t.Errorf("args %v", got)
	}
	if !reflect.DeepEqual(c.Env, []string{"A=ctr", "PATH=/img"}) || c.Labels["l"] != "ctr" || c.Labels["m"] != "img" || c.WorkingDir != "/w" || c.User != "app" || c.StopSignal != "SIGINT" {
		t.Errorf("merged %+v", c)
	}
	// container cmd replaces image cmd, keeps image entrypoint
	c = &container.Config{Cmd: []string{"x"}}
	Merge(c, img)
	if got := Args(c); !reflect.DeepEqual(got, []string{"/entry", "x"}) {
		t.Errorf("args %v", got)
	}
	// container entrypoint drops image cmd
	c = &container.Config{Entrypoint: []string{"echo"}}
	Merge(c, img)
	if got := Args(c); !reflect.DeepEqual(got, []string{"echo"}) {
		t.Errorf("args %v", got)
	}
}

func TestSpecDefaults(t *testing.T) {
	c := &container.Config{Cmd: []string{"sh"}, Env: []string{"FOO=bar"}, Labels: map[string]string{"a": "b"}}
	s, err := Spec(Options{ID: id, Config: c, Rootfs: rootfs(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != id[:12] || s.Process.Cwd != "/" || s.Linux.CgroupsPath != "/berth/"+id || s.Root.Path != "rootfs" {
		t.Errorf("spec %+v", s)
	}
	wantEnv := []string{"PATH=" + DefaultPath, "HOSTNAME=" + id[:12], "FOO=bar", "HOME=/root"}
	if !reflect.DeepEqual(s.Process.Env, wantEnv) {
		t.Errorf("env %v", s.Process.Env)
	}
	if s.Annotations["a"] != "b" {
		t.Error("labels not in annotations")
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	for _, d := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} {
		if !slices.Contains(dests, d) {
			t.Errorf("mount %s missing", d)
		}
	}
	if !reflect.DeepEqual(s.Process.Capabilities.Bounding, func() []string {
		var out []string
		def := DefaultCapabilities()
		for _, c := range AllCapabilities() {
			if slices.Contains(def, c) {
				out = append(out, c)
			}
		}
		return out
	}()) {
		t.Errorf("caps %v", s.Process.Capabilities.Bounding)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, n.Type)
	}
	for _, n := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if !slices.Contains(ns, n) {
			t.Errorf("namespace %s missing", n)
		}
	}
	if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
		t.Error("masked/readonly paths missing")
	}
	if s.Process.Rlimits[0].Type != "RLIMIT_NOFILE" || s.Process.Rlimits[0].Hard != NoFileLimit() {
		t.Errorf("rlimits %v", s.Process.Rlimits)
	}
	if s.Process.Terminal {
		t.Error("terminal")
	}
}

func TestSpecOptions(t *testing.T) {
	pids := int64(50)
	c := &container.Config{Cmd: []string{"sh"}, Tty: true, Hostname: "h", WorkingDir: "/tmp", User: "nobody"}
	hc := &container.HostConfig{NetworkMode: "host", ReadonlyRootfs: true, CapDrop: []string{"chown"}, CapAdd: []string{"SYS_ADMIN"},
		Resources: container.Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: &pids}}
	s, err := Spec(Options{ID: id, Config: c, HostConfig: hc, Rootfs: rootfs(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Process.Terminal || s.Hostname != "h" || s.Process.Cwd != "/tmp" || !s.Root.Readonly {
		t.Errorf("spec %+v", s.Process)
	}
	if !slices.Contains(s.Process.Env, "TERM=xterm") {
		t.Error("TERM missing")
	}
	if s.Process.User.UID != 65534 || s.Process.User.GID != 65534 {
		t.Errorf("user %+v", s.Process.User)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			t.Error("host network has a netns")
		}
	}
	caps := s.Process.Capabilities.Bounding
	if slices.Contains(caps, "CAP_CHOWN") || !slices.Contains(caps, "CAP_SYS_ADMIN") {
		t.Errorf("caps %v", caps)
	}
	if *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.CPU.Quota != 50000 || *s.Linux.Resources.Pids.Limit != 50 {
		t.Error("resources")
	}
}

func TestResolveUser(t *testing.T) {
	root := rootfs(t)
	for in, want := range map[string]specs.User{
		"":          {UID: 0, GID: 0, AdditionalGids: []uint32{0}},
		"1234":      {UID: 1234, GID: 0, AdditionalGids: []uint32{0}},
		"1234:5":    {UID: 1234, GID: 5, AdditionalGids: []uint32{5}},
		"nobody":    {UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}},
		"app":       {UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10}},
		"app:wheel": {UID: 1000, GID: 10, AdditionalGids: []uint32{10}},
		"1000":      {UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 10}},
	} {
		got, _, err := ResolveUser(root, in, nil)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	if _, _, err := ResolveUser(root, "nosuch", nil); err == nil || !strings.Contains(err.Error(), "unable to find user nosuch") {
		t.Errorf("nosuch: %v", err)
	}
	// a hostile /etc/passwd symlink to the host's file resolves inside the rootfs
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	os.Symlink("/../../../../"+root+"/etc/passwd", filepath.Join(evil, "etc/passwd"))
	if _, _, err := ResolveUser(evil, "app", nil); err == nil {
		t.Error("followed a symlink out of the rootfs")
	}
}

func TestEtcFiles(t *testing.T) {
	c := &container.Config{Cmd: []string{"sh"}}
	s, err := Spec(Options{ID: id, Config: c, EtcFiles: map[string]string{"/etc/hosts": "/x/hosts", "/etc/hostname": "/x/hostname"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range s.Mounts {
		if m.Type == "bind" && strings.HasPrefix(m.Destination, "/etc/") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("etc mounts %d", n)
	}
	got := ResolvConf([]byte("search lan\nnameserver 127.0.0.53\n"), false, DNS{})
	if got != "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n" {
		t.Errorf("resolv.conf %q", got)
	}
	if got := ResolvConf([]byte("nameserver 10.0.0.1\n"), false, DNS{}); got != "nameserver 10.0.0.1\n" {
		t.Errorf("resolv.conf %q", got)
	}
	// --dns, --dns-search, --dns-option: each replaces the host's own
	host := []byte("# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch lan corp\noptions edns0\n")
	for _, c := range []struct {
		dns  DNS
		want string
	}{
		{DNS{Servers: []string{"1.1.1.1"}}, "search lan corp\nnameserver 1.1.1.1\noptions edns0\n"},
		{DNS{Search: []string{"example.com"}}, "search example.com\nnameserver 10.0.0.1\noptions edns0\n"},
		{DNS{Search: []string{"."}, Options: []string{"ndots:2", "timeout:1"}}, "nameserver 10.0.0.1\noptions ndots:2 timeout:1\n"},
	} {
		if got := ResolvConf(host, false, c.dns); got != c.want {
			t.Errorf("resolv.conf with %+v: %q, want %q", c.dns, got, c.want)
		}
	}
	if got := ResolvConf([]byte("nameserver 127.0.0.53\n"), false, DNS{Options: []string{"ndots:1"}}); got != "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions ndots:1\n" {
		t.Errorf("resolv.conf with options only: %q", got)
	}
}

func TestUserMounts(t *testing.T) {
	src := t.TempDir()
	hc := &container.HostConfig{
		Binds: []string{src + ":/data:ro", src + ":/rw"},
		Tmpfs: map[string]string{"/scratch": "size=1m"},
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: src, Target: "/m", ReadOnly: true},
			{Type: mount.TypeTmpfs, Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 1 << 20}},
		},
	}
	cfg := &container.Config{Cmd: []string{"sh"}}
	mps, err := ParseMounts(cfg, hc, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	s, err := Spec(Options{ID: id, Config: cfg, HostConfig: hc, Mounts: mps})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		got[m.Destination] = m
	}
	if m := got["/data"]; m.Source != src || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rro") || !slices.Contains(m.Options, "rbind") {
		t.Errorf("/data %+v", m)
	}
	if m := got["/rw"]; slices.Contains(m.Options, "ro") {
		t.Errorf("/rw %+v", m)
	}
	if got["/scratch"].Type != "tmpfs" || !slices.Contains(got["/scratch"].Options, "size=1m") || got["/t"].Type != "tmpfs" || !slices.Contains(got["/t"].Options, "size=1m") || !slices.Contains(got["/m"].Options, "ro") {
		t.Errorf("mounts %+v", got)
	}
	if _, err := Spec(Options{ID: id, Config: cfg, Mounts: []dockermsg.MountPoint{{Type: mount.TypeVolume, Destination: "/v", RW: true}}}); err == nil {
		t.Error("a volume without its directory was mapped")
	}
	if _, err := Spec(Options{ID: id, Config: cfg, HostConfig: &container.HostConfig{CapAdd: []string{"CAP_NOPE"}}}); err == nil {
		t.Error("accepted CAP_NOPE")
	}
}
