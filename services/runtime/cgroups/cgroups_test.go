package cgroups

import "testing"

func TestResolve(t *testing.T) {
	for _, c := range []struct{ path, id, own, want string }{
		{"", "c1", "/", "/berth/c1"},
		{"", "c1", "/x/y", "/x/y/berth/c1"},
		{"/abs/p", "c1", "/x", "/abs/p"},
		{"rel/p", "c1", "/x", "/x/rel/p"},
		{"system.slice:docker:abc", "c1", "/", "/system.slice/docker-abc.scope"},
	} {
		if got := Resolve(c.path, c.id, c.own); got != c.want {
			t.Errorf("Resolve(%q, %q, %q) = %q, want %q", c.path, c.id, c.own, got, c.want)
		}
	}
}
