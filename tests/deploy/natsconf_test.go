package deploy

import (
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"berth/pkg/bus"
)

// TestNATSConfAuth checks that deploy/nats.conf parses and allows no
// anonymous access.
func TestNATSConfAuth(t *testing.T) {
	t.Setenv("BERTH_NATS_APIGW_PASSWORD", "a")
	t.Setenv("BERTH_NATS_SUPERVISOR_PASSWORD", "s")
	t.Setenv("BERTH_NATS_SHIM_PASSWORD", "x")
	o, err := server.ProcessConfigFile("../../deploy/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Users) != 3 || o.NoAuthUser != "" {
		t.Fatalf("users %v, no_auth_user %q", o.Users, o.NoAuthUser)
	}
	for _, u := range o.Users {
		if u.Password == "" || u.Permissions == nil || u.Permissions.Publish == nil {
			t.Errorf("user %s: no password or permissions", u.Username)
		}
	}
}

// TestNATSConfMatchesBus checks that the users of deploy/nats.conf have the
// permissions pkg/bus gives the embedded server's users (the supervisor's
// for any node, the shims' shared).
func TestNATSConfMatchesBus(t *testing.T) {
	t.Setenv("BERTH_NATS_APIGW_PASSWORD", "a")
	t.Setenv("BERTH_NATS_SUPERVISOR_PASSWORD", "s")
	t.Setenv("BERTH_NATS_SHIM_PASSWORD", "x")
	o, err := server.ProcessConfigFile("../../deploy/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bus.Permissions{
		"apigw":      bus.APIGWPermissions(),
		"supervisor": bus.SupervisorPermissions("*"),
		"shim":       bus.SharedShimPermissions(),
	}
	same := func(a, b []string) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	for _, u := range o.Users {
		w, ok := want[u.Username]
		if !ok {
			t.Errorf("unexpected user %s", u.Username)
			continue
		}
		p := u.Permissions
		if !same(p.Publish.Allow, w.Publish) {
			t.Errorf("%s publish:\n conf %v\n bus  %v", u.Username, p.Publish.Allow, w.Publish)
		}
		if !same(p.Subscribe.Allow, w.Subscribe) {
			t.Errorf("%s subscribe:\n conf %v\n bus  %v", u.Username, p.Subscribe.Allow, w.Subscribe)
		}
		if (p.Response != nil) != w.Respond {
			t.Errorf("%s: allow_responses %v, want %v", u.Username, p.Response != nil, w.Respond)
		}
	}
}
