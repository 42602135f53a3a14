package deploy

import (
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"berth/pkg/bus"
)

// loadConf parses deploy/nats.conf with the environment docker-compose.yml
// gives the nats service.
func loadConf(t *testing.T) (*server.Options, string) {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := kp.PublicKey()
	t.Setenv("BERTH_NATS_APIGW_PASSWORD", "a")
	t.Setenv("BERTH_NATS_SUPERVISOR_PASSWORD", "s")
	t.Setenv("BERTH_NATS_CALLOUT_ISSUER", issuer)
	o, err := server.ProcessConfigFile("../../deploy/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	return o, issuer
}

// TestNATSConfAuth checks that deploy/nats.conf parses, allows no anonymous
// access and hands every user but apigw and the supervisor to the
// supervisors' auth callout.
func TestNATSConfAuth(t *testing.T) {
	o, issuer := loadConf(t)
	if len(o.Users) != 2 || o.NoAuthUser != "" {
		t.Fatalf("users %v, no_auth_user %q", o.Users, o.NoAuthUser)
	}
	for _, u := range o.Users {
		if u.Password == "" || u.Permissions == nil || u.Permissions.Publish == nil {
			t.Errorf("user %s: no password or permissions", u.Username)
		}
	}
	ac := o.AuthCallout
	if ac == nil {
		t.Fatal("no auth_callout: shims would have no users")
	}
	if ac.Issuer != issuer || ac.XKey != "" || ac.Account != bus.AuthCalloutAccount {
		t.Errorf("auth_callout issuer %q (want %q), xkey %q, account %q", ac.Issuer, issuer, ac.XKey, ac.Account)
	}
	if users := slices.Sorted(slices.Values(ac.AuthUsers)); !slices.Equal(users, []string{bus.UserAPIGW, bus.UserSupervisor}) {
		t.Errorf("auth_callout auth_users %v", users)
	}
}

// TestNATSConfMatchesBus checks that the users of deploy/nats.conf have the
// permissions pkg/bus gives them (the supervisor's for any node, with the
// auth callout's subject).
func TestNATSConfMatchesBus(t *testing.T) {
	o, _ := loadConf(t)
	want := map[string]bus.Permissions{
		bus.UserAPIGW:      bus.APIGWPermissions(),
		bus.UserSupervisor: bus.SupervisorCalloutPermissions("*"),
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
