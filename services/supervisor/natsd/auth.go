package natsd

import (
	"crypto/subtle"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"berth/pkg/bus"
)

// Auth authenticates every client of the embedded server: no anonymous
// access. Static users (apigw, supervisor) are fixed at start; other users
// (one per shim) are looked up when they connect, so that adding a
// container needs no reload of the server.
type Auth struct {
	Static map[string]User
	// Lookup finds a user that is not static (nil: none).
	Lookup func(user string) (User, bool)
}

// User is one bus user: its password and what it may do.
type User struct {
	Password    string
	Permissions bus.Permissions
}

var _ server.Authentication = (*Auth)(nil)

// Check implements server.Authentication.
func (a *Auth) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false
	}
	o := c.GetOpts()
	if o == nil || o.Username == "" || o.Password == "" {
		return false
	}
	u, ok := a.Static[o.Username]
	if !ok && a.Lookup != nil {
		u, ok = a.Lookup(o.Username)
	}
	if !ok || u.Password == "" || subtle.ConstantTimeCompare([]byte(u.Password), []byte(o.Password)) != 1 {
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username, Permissions: ServerPermissions(u.Permissions)})
	return true
}

// A user that may respond answers each request it receives once, within
// two minutes.
const (
	respondMax = 1
	respondTTL = 2 * time.Minute
)

// ServerPermissions converts bus permissions into the server's.
func ServerPermissions(p bus.Permissions) *server.Permissions {
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: append([]string{}, p.Publish...)},
		Subscribe: &server.SubjectPermission{Allow: append([]string{}, p.Subscribe...)},
	}
	if p.Respond {
		sp.Response = &server.ResponsePermission{MaxMsgs: respondMax, Expires: respondTTL}
	}
	return sp
}
