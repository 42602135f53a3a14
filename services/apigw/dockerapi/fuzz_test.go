package dockerapi

import (
	"testing"
	"time"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// FuzzCreateBody: any body either decodes into a config with an image or
// fails with an InvalidParameter error — never a panic, never another kind.
func FuzzCreateBody(f *testing.F) {
	for _, s := range []string{
		`{"Image":"busybox","Cmd":["echo","hi"]}`,
		`{"Image":"busybox","Cmd":"echo hi","Entrypoint":"sh","HostConfig":{"AutoRemove":true,"Memory":1,"Binds":["/a:/b"]}}`,
		`{"Image":"a","Env":"x"}`, `{`, ``, `null`, `[]`, `{"Image":1}`,
		`{"Image":"a","Healthcheck":{"Test":["CMD"]},"ExposedPorts":{"80/tcp":{}},"StopTimeout":3}`,
		`{"Image":"a","NetworkingConfig":{"EndpointsConfig":{"none":{}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeCreateBody(data)
		if err != nil {
			if errdefs.KindOf(err) != errdefs.InvalidParameter {
				t.Fatalf("error of kind %q: %v", errdefs.KindOf(err), err)
			}
			return
		}
		if b.Config == nil || b.Image == "" || b.HostConfig == nil {
			t.Fatalf("accepted without config/image: %q", data)
		}
	})
}

// FuzzFilters: filter parsing and matching never panic.
func FuzzFilters(f *testing.F) {
	f.Add(`{"name":["web"],"status":["running"]}`)
	f.Add(`{"label":{"a=b":true}}`)
	f.Add(`{"name":["(["]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		args, err := ParseFilters(raw)
		if err != nil {
			return
		}
		o := ListOptions{Filters: args}
		if ValidateListFilters(&o) != nil {
			return
		}
		cs := []bus.Container{rec("abc", "web", "running", time.Now(), map[string]string{"a": "b"}, "busybox")}
		FilterContainers(cs, o)
	})
}
