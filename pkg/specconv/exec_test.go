package specconv

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExecProcess(t *testing.T) {
	root := rootfs(t)
	c := &container.Config{Hostname: "h", Env: []string{"A=ctr", "B=ctr"}, WorkingDir: "/w", User: "app"}
	base := &specs.Process{Args: []string{"sleep"}, Cwd: "/w", User: specs.User{UID: 1000, GID: 1000, Umask: ptr(uint32(0o22))},
		Capabilities: &specs.LinuxCapabilities{Bounding: DefaultCapabilities()}, NoNewPrivileges: true,
		Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 9, Soft: 9}}}
	p, err := ExecProcess(base, c, nil, &container.ExecOptions{Cmd: []string{"id"}}, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=" + DefaultPath, "HOSTNAME=h", "A=ctr", "B=ctr", "HOME=/home/app"}
	if !reflect.DeepEqual(p.Args, []string{"id"}) || !reflect.DeepEqual(p.Env, want) || p.Cwd != "/w" || p.User.UID != 1000 ||
		p.Terminal || !p.NoNewPrivileges || p.Rlimits[0].Hard != 9 || *p.User.Umask != 0o22 {
		t.Fatalf("default exec process %+v", p)
	}
	// the exec's own settings win; a tty adds TERM; the base is not touched
	p, err = ExecProcess(base, c, nil, &container.ExecOptions{Cmd: []string{"sh"}, User: "nobody", Env: []string{"B=exec", "A"},
		WorkingDir: "/tmp", Tty: true, Privileged: true}, root, &[2]uint{30, 100})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"PATH=" + DefaultPath, "HOSTNAME=h", "TERM=xterm", "B=exec", "HOME=/nonexistent"}
	if !reflect.DeepEqual(p.Env, want) || p.Cwd != "/tmp" || p.User.UID != 65534 || !p.Terminal ||
		p.ConsoleSize == nil || p.ConsoleSize.Height != 30 || p.ConsoleSize.Width != 100 {
		t.Fatalf("exec process %+v env %v", p, p.Env)
	}
	if len(p.Capabilities.Effective) <= len(DefaultCapabilities()) || !slices.Contains(p.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Fatalf("privileged exec capabilities %v", p.Capabilities)
	}
	if len(base.Capabilities.Bounding) != len(DefaultCapabilities()) || base.Args[0] != "sleep" {
		t.Fatalf("the base process changed: %+v", base)
	}
	if _, err := ExecProcess(base, c, nil, &container.ExecOptions{}, root, nil); err == nil || err.Error() != "No exec command specified" {
		t.Fatalf("no command: %v", err)
	}
	if _, err := ExecProcess(base, c, nil, &container.ExecOptions{Cmd: []string{"id"}, User: "nosuchuser"}, root, nil); err == nil {
		t.Fatal("an unknown user was accepted")
	}
}

func ptr[T any](v T) *T { return &v }

func TestHealthcheckMergeValidateProbe(t *testing.T) {
	img := &container.HealthConfig{Test: []string{"CMD", "true"}, Interval: time.Second, Retries: 2}
	c := &container.Config{}
	MergeHealthcheck(c, img)
	if !reflect.DeepEqual(c.Healthcheck, img) || c.Healthcheck == img {
		t.Fatalf("no healthcheck of its own: %+v", c.Healthcheck)
	}
	c = &container.Config{Healthcheck: &container.HealthConfig{Retries: 5, Timeout: time.Minute}}
	MergeHealthcheck(c, img)
	if h := c.Healthcheck; !reflect.DeepEqual(h.Test, img.Test) || h.Interval != time.Second || h.Retries != 5 || h.Timeout != time.Minute {
		t.Fatalf("merged %+v", h)
	}
	c = &container.Config{Healthcheck: &container.HealthConfig{Test: []string{"NONE"}}}
	MergeHealthcheck(c, img)
	if ProbeCommand(c.Healthcheck, nil) != nil {
		t.Fatal("NONE still probes")
	}
	for _, h := range []*container.HealthConfig{{Interval: time.Microsecond}, {Timeout: 10}, {StartPeriod: 5}, {StartInterval: 1}, {Retries: -1}} {
		if ValidateHealthcheck(h) == nil {
			t.Errorf("%+v accepted", h)
		}
	}
	if err := ValidateHealthcheck(&container.HealthConfig{Interval: time.Millisecond}); err != nil {
		t.Errorf("1ms refused: %v", err)
	}
	for _, c := range []struct {
		test, shell, want []string
	}{
		{[]string{"CMD", "a", "b"}, nil, []string{"a", "b"}},
		{[]string{"CMD-SHELL", "a && b"}, nil, []string{"/bin/sh", "-c", "a && b"}},
		{[]string{"CMD-SHELL", "a"}, []string{"/bin/bash", "-ec"}, []string{"/bin/bash", "-ec", "a"}},
		{[]string{"CMD"}, nil, nil},
		{[]string{"WHAT", "x"}, nil, nil},
		{nil, nil, nil},
	} {
		if got := ProbeCommand(&container.HealthConfig{Test: c.test}, c.shell); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: %v, want %v", c.test, got, c.want)
		}
	}
}
