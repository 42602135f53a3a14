package natsd

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"berth/pkg/atomicfile"
	"berth/pkg/bus"
)

// Callout is the auth service of an external NATS server configured with
// auth_callout (deploy/nats.conf). The server knows only apigw and the
// supervisors; it hands every other connection to the supervisors, and the
// one whose node holds the shim admits it when its password is the one
// written into the shim's 0600 shim.json, as a user limited to
// bus.ShimPermissions of its container: the same confinement the embedded
// server gives, while the shim keeps connecting with user and password.
type Callout struct {
	// Issuer signs the answers and the users: an account key whose public
	// half is the server's auth_callout issuer.
	Issuer nkeys.KeyPair
	// Node is this supervisor's: it answers for the shim users of its node
	// only, and leaves the others to theirs.
	Node string
	// Lookup finds a shim user of this node; false: no such user.
	Lookup func(user string) (User, bool)
	Logger *slog.Logger
}

// Serve answers the server's authorization requests on nc until nc closes
// (the subscription survives reconnections).
func (a *Callout) Serve(nc *nats.Conn) error {
	pub, err := a.Issuer.PublicKey()
	if err != nil {
		return err
	}
	_, err = nc.Subscribe(bus.AuthCalloutSubject, func(m *nats.Msg) { a.handle(m, pub) })
	return err
}

func (a *Callout) handle(m *nats.Msg, issuer string) {
	log := a.Logger
	if m.Header.Get("Nats-Server-Xkey") != "" {
		log.Error("auth callout: the NATS server encrypts its requests (auth_callout xkey), which berth does not support: remove xkey from its configuration")
		return
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(m.Data))
	if err != nil {
		log.Warn("auth callout: undecodable request", "err", err)
		return
	}
	if req.Subject != issuer {
		// another auth service's key, or a stale configuration
		log.Error("auth callout: the NATS server's auth_callout issuer is not this supervisor's key (--nats-callout-key)", "server", req.Subject, "ours", issuer)
		return
	}
	user, host := req.ConnectOptions.Username, req.ClientInformation.Host
	if node, _, shim := bus.ParseShimUser(user); shim && node != "" && node != a.Node {
		return // another node's shim: its supervisor answers
	}
	u, ok := a.Lookup(user)
	if !ok {
		log.Warn("bus connection refused: unknown user", "user", user, "host", host)
		a.answer(m, req, "", "unknown user or bad password")
		return
	}
	if u.Password == "" || subtle.ConstantTimeCompare([]byte(u.Password), []byte(req.ConnectOptions.Password)) != 1 {
		log.Warn("bus connection refused: bad password", "user", user, "host", host)
		a.answer(m, req, "", "unknown user or bad password")
		return
	}
	uc := jwt.NewUserClaims(req.UserNkey)
	uc.Name = user
	uc.Audience = bus.AuthCalloutAccount
	uc.Pub.Allow.Add(u.Permissions.Publish...)
	uc.Sub.Allow.Add(u.Permissions.Subscribe...)
	if u.Permissions.Respond {
		uc.Resp = &jwt.ResponsePermission{MaxMsgs: respondMax, Expires: respondTTL}
	}
	ujwt, err := uc.Encode(a.Issuer)
	if err != nil {
		log.Error("auth callout: signing a user", "user", user, "err", err)
		a.answer(m, req, "", "internal error")
		return
	}
	log.Debug("bus connection admitted", "user", user, "host", host)
	a.answer(m, req, ujwt, "")
}

// answer admits (ujwt) or refuses (reason) the connection of req.
func (a *Callout) answer(m *nats.Msg, req *jwt.AuthorizationRequestClaims, ujwt, reason string) {
	rc := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	rc.Audience = req.Server.ID
	rc.Jwt, rc.Error = ujwt, reason
	tok, err := rc.Encode(a.Issuer)
	if err == nil {
		err = m.Respond([]byte(tok))
	}
	if err != nil {
		a.Logger.Error("auth callout: answering", "user", req.ConnectOptions.Username, "err", err)
	}
}

// LoadCalloutKey reads the seed of an auth callout issuer (an account key).
func LoadCalloutKey(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if pub, _ := kp.PublicKey(); !nkeys.IsValidPublicAccountKey(pub) {
		return nil, fmt.Errorf("%s: not an account key (its public key starts with A)", path)
	}
	return kp, nil
}

// EnsureCalloutKey returns the public key of the issuer seed in path,
// creating the seed (mode 0600) if the file does not exist.
func EnsureCalloutKey(path string) (string, error) {
	kp, err := LoadCalloutKey(path)
	if errors.Is(err, os.ErrNotExist) {
		if kp, err = nkeys.CreateAccount(); err != nil {
			return "", err
		}
		seed, _ := kp.Seed()
		if err := atomicfile.Write(path, append(seed, '\n'), 0o600); err != nil {
			return "", err
		}
	}
	if err != nil {
		return "", err
	}
	return kp.PublicKey()
}
