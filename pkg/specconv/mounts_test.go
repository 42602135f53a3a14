package specconv

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

func TestParseMounts(t *testing.T) {
	exists := func(p string) bool { return p == "/src" }
	cases := []struct {
		name string
		cfg  *container.Config
		hc   container.HostConfig
		want []dockermsg.MountPoint
	}{
		{"bind", nil, container.HostConfig{Binds: []string{"/src:/dst"}},
			[]dockermsg.MountPoint{{Type: "bind", Source: "/src", Destination: "/dst", RW: true, Propagation: "rprivate", CreateSource: true}}},
		{"bind-ro-propagation", nil, container.HostConfig{Binds: []string{"/src:/dst:ro,rslave"}},
			[]dockermsg.MountPoint{{Type: "bind", Source: "/src", Destination: "/dst", Mode: "ro,rslave", Propagation: "rslave", CreateSource: true}}},
		{"named-volume", nil, container.HostConfig{Binds: []string{"data:/data"}},
			[]dockermsg.MountPoint{{Type: "volume", Name: "data", Destination: "/data", Mode: "z", RW: true, CopyData: true}}},
		{"named-volume-nocopy-ro", nil, container.HostConfig{Binds: []string{"data:/data:ro,nocopy"}},
			[]dockermsg.MountPoint{{Type: "volume", Name: "data", Destination: "/data", Mode: "ro,nocopy"}}},
		{"anonymous-bind-form", nil, container.HostConfig{Binds: []string{"/data"}},
			[]dockermsg.MountPoint{{Type: "volume", Destination: "/data", Mode: "z", RW: true, Anonymous: true, CopyData: true}}},
		{"mount-bind", nil, container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Source: "/src", Target: "/dst", ReadOnly: true, BindOptions: &mount.BindOptions{Propagation: "rshared", NonRecursive: true}}}},
			[]dockermsg.MountPoint{{Type: "bind", Source: "/src", Destination: "/dst", Propagation: "rshared", NonRecursive: true}}},
		{"mount-bind-create-src", nil, container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Source: "/nope", Target: "/dst", BindOptions: &mount.BindOptions{CreateMountpoint: true}}}},
			[]dockermsg.MountPoint{{Type: "bind", Source: "/nope", Destination: "/dst", RW: true, Propagation: "rprivate", CreateSource: true}}},
		{"mount-volume", nil, container.HostConfig{Mounts: []mount.Mount{{Type: "volume", Source: "v", Target: "/v/", VolumeOptions: &mount.VolumeOptions{NoCopy: true, Subpath: "a/b"}}}},
			[]dockermsg.MountPoint{{Type: "volume", Name: "v", Destination: "/v", RW: true, Subpath: "a/b"}}},
		{"mount-tmpfs", nil, container.HostConfig{Mounts: []mount.Mount{{Type: "tmpfs", Target: "/t", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: 01770, Options: [][]string{{"exec"}}}}}},
			[]dockermsg.MountPoint{{Type: "tmpfs", Destination: "/t", RW: true, TmpfsOptions: []string{"mode=1770", "size=64m", "exec"}}}},
		{"config-volumes-not-covered", &container.Config{Volumes: map[string]struct{}{"/data": {}, "/img/": {}}}, container.HostConfig{Binds: []string{"v:/data"}},
			[]dockermsg.MountPoint{
				{Type: "volume", Name: "v", Destination: "/data", Mode: "z", RW: true, CopyData: true},
				{Type: "volume", Destination: "/img", RW: true, Anonymous: true, CopyData: true},
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseMounts(c.cfg, &c.hc, exists)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %+v want %+v", got, c.want)
			}
			for i := range got {
				if gs, ws := jsonOf(got[i]), jsonOf(c.want[i]); gs != ws {
					t.Errorf("mount %d:\n got %s\nwant %s", i, gs, ws)
				}
			}
		})
	}
}

func TestParseMountsErrors(t *testing.T) {
	exists := func(p string) bool { return p == "/src" }
	cases := []struct {
		hc  container.HostConfig
		msg string
	}{
		{container.HostConfig{Binds: []string{"/src:rw"}}, "invalid volume specification: '/src:rw'"},
		{container.HostConfig{Binds: []string{":/x"}}, "invalid volume specification: ':/x'"},
		{container.HostConfig{Binds: []string{"a:b:c:d"}}, "invalid volume specification: 'a:b:c:d'"},
		{container.HostConfig{Binds: []string{"/src:/x:bogus"}}, "invalid mode: bogus"},
		{container.HostConfig{Binds: []string{"/src:/x:ro,rw"}}, "invalid mode: ro,rw"},
		{container.HostConfig{Binds: []string{"/src:relative"}}, "invalid volume specification: '/src:relative': invalid mount config for type \"bind\": invalid mount path: 'relative' mount path must be absolute"},
		{container.HostConfig{Binds: []string{"/src:/"}}, "invalid volume specification: '/src:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"},
		{container.HostConfig{Binds: []string{"v:/x:rshared"}}, "invalid mount config for type \"volume\": field BindOptions must not be specified"},
		{container.HostConfig{Binds: []string{"/src:/x", "v:/x"}}, "Duplicate mount point: /x"},
		{container.HostConfig{Binds: []string{"/src:/x"}, Tmpfs: map[string]string{"/x": ""}}, "Duplicate mount point: /x"},
		{container.HostConfig{Binds: []string{"/src:/x"}, Mounts: []mount.Mount{{Type: "tmpfs", Target: "/x/"}}}, "Duplicate mount point: /x"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Source: "/x", Target: "/x"}}}, "invalid mount config for type \"bind\": bind source path does not exist: /x"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Source: "rel", Target: "/x"}}}, "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Target: "/x"}}}, "invalid mount config for type \"bind\": field Source must not be empty"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "bind", Source: "/src", Target: "/x", BindOptions: &mount.BindOptions{Propagation: "weird"}}}}, "invalid mount config for type \"bind\": invalid propagation mode: weird"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "volume", Target: "/x", ReadOnly: true}}}, "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "volume", Source: "v", Target: "/x", VolumeOptions: &mount.VolumeOptions{Subpath: "../out"}}}}, "subpath must be a relative path within the volume"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "tmpfs", Source: "x", Target: "/x"}}}, "invalid mount config for type \"tmpfs\": field Source must not be specified"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "tmpfs", Target: "/x", TmpfsOptions: &mount.TmpfsOptions{Options: [][]string{{"suid"}}}}}}, "invalid mount config for type \"tmpfs\": invalid option: suid"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "npipe", Target: "/x"}}}, "invalid mount config for type \"npipe\": mount type unknown"},
		{container.HostConfig{Mounts: []mount.Mount{{Type: "volume", Target: "rel"}}}, "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"},
	}
	for _, c := range cases {
		_, err := ParseMounts(nil, &c.hc, exists)
		if err == nil || !errdefs.Is(err, errdefs.InvalidParameter) {
			t.Errorf("%+v: err %v, want an invalid parameter", c.hc, err)
			continue
		}
		if !contains(err.Error(), c.msg) {
			t.Errorf("%+v:\n got %q\nwant %q", c.hc, err, c.msg)
		}
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
