package dockerapi

import (
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"

	"berth/pkg/bus/dockermsg"
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
		cs := []dockermsg.Container{rec("abc", "web", "running", time.Now(), map[string]string{"a": "b"}, "busybox")}
		FilterContainers(cs, o)
	})
}

// FuzzQueryParams: the decoders of query parameters and paths never panic,
// and what they accept is well-formed.
func FuzzQueryParams(f *testing.F) {
	for _, s := range []string{"SIGTERM", "9", "kill", "-1", "all", "10", "/v1.43/containers/json", "1.51", "web-1", "/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, _ = ParseSignal(v)
		_ = BoolValue(v)
		_, _ = IntValue("t", v)
		if n, err := ParseTail(v); err == nil && n < -1 {
			t.Fatalf("tail %d accepted from %q", n, v)
		}
		// a name cannot reach outside berth's directories or the subject space
		if v != "" && ValidateContainerName(v) == nil && (strings.ContainsAny(v, "*> \x00") || strings.Contains(v, "..") && strings.HasPrefix(strings.TrimPrefix(v, "/"), ".") || strings.Count(v, "/") > 1) {
			t.Fatalf("name %q accepted", v)
		}
		_, _ = NegotiateVersion(v)
		if ver, rest := SplitVersionPrefix(v); ver != "" && len(rest) > len(v) {
			t.Fatalf("split %q into %q %q", v, ver, rest)
		}
		_ = NormalizeImageRef(v)
	})
}

// FuzzEventFilters: event filter parsing and matching never panic.
func FuzzEventFilters(f *testing.F) {
	f.Add(`{"type":["container"],"event":["die"],"container":["web"]}`, "die", "web")
	f.Add(`{"image":["busybox:latest"],"label":["a=b"]}`, "start", "x")
	f.Fuzz(func(t *testing.T, raw, action, name string) {
		args, err := ParseFilters(raw)
		if err != nil || ValidateEventFilters(args) != nil {
			return
		}
		m := &events.Message{Type: events.ContainerEventType, Action: events.Action(action),
			Actor: events.Actor{ID: "abc", Attributes: map[string]string{"name": name, "image": name, "a": "b"}}}
		MatchEvent(args, m)
	})
}
