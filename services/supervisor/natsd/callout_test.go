package natsd

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
)

// calloutServer is a NATS server configured as deploy/nats.conf does (a
// supervisor user, every other user to the auth callout), with a Callout of
// node "n1" serving it; shims maps the shim users it knows to passwords.
func calloutServer(t *testing.T, shims map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	pub, err := EnsureCalloutKey(filepath.Join(dir, "callout.nk"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadCalloutKey(filepath.Join(dir, "callout.nk"))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := EnsureCalloutKey(filepath.Join(dir, "callout.nk")); again != pub {
		t.Fatalf("the key changed: %s, then %s", pub, again)
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true,
		Users:       []*server.User{{Username: bus.UserSupervisor, Password: "sup", Permissions: ServerPermissions(bus.SupervisorCalloutPermissions("n1"))}},
		AuthCallout: &server.AuthCallout{Issuer: pub, AuthUsers: []string{bus.UserSupervisor}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(bus.UserSupervisor, "sup"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := &Callout{Issuer: key, Node: "n1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Lookup: func(user string) (User, bool) {
			_, id, _ := bus.ParseShimUser(user)
			pw, ok := shims[user]
			return User{Password: pw, Permissions: bus.ShimPermissions("n1", id)}, ok
		}}
	if err := c.Serve(nc); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return srv.ClientURL()
}

func TestCalloutAdmitsShimsToTheirOwnSubjects(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	url := calloutServer(t, map[string]string{bus.ShimUser("n1", a): "pa"})

	errs := make(chan error, 8)
	nc, err := nats.Connect(url, nats.UserInfo(bus.ShimUser("n1", a), "pa"), nats.CustomInboxPrefix(bus.ShimInboxPrefix("n1", a)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatalf("the shim's own credentials: %v", err)
	}
	defer nc.Close()
	// its own report gets through (no responders: nobody listens here)
	if _, err := nc.Request(bus.Report("n1", a, bus.ReportExit), []byte("{}"), time.Second); err != nats.ErrNoResponders {
		t.Errorf("own report: %v, want no responders", err)
	}
	nc.Publish(bus.Report("n1", b, bus.ReportExit), []byte("{}"))
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), b) {
			t.Errorf("another container's report: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("another container's report was not refused")
	}

	for name, user := range map[string][2]string{
		"wrong password":    {bus.ShimUser("n1", a), "nope"},
		"no such shim":      {bus.ShimUser("n1", b), "pa"},
		"not a shim":        {"apigw", "pa"},
		"anonymous":         {"", ""},
		"an old-style name": {bus.ShimUserPrefix + a, "pa"},
		"another node's":    {bus.ShimUser("n2", a), "pa"}, // left to n2's supervisor: refused on timeout
	} {
		opts := []nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}
		if user[0] != "" {
			opts = append(opts, nats.UserInfo(user[0], user[1]))
		}
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: admitted", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}
}
