package deploy

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
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
