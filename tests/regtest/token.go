package regtest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	tokenService = "berth-test-registry"
	tokenIssuer  = "berth-test-issuer"
)

// TokenServer issues the registry's bearer tokens (JWTs signed with a key
// whose self-signed certificate is the registry's rootcertbundle), as
// Docker Hub's auth service does: accounts from Users, anonymous callers
// get no rights.
type TokenServer struct {
	URL     string
	CertPEM []byte
	Issued  atomic.Int64 // tokens handed out
	key     *ecdsa.PrivateKey
	der     []byte
	users   map[string]string
}

func startTokenServer(t testing.TB, _ string, users map[string]string) *TokenServer {
	certPEM, keyPEM := selfSigned(t, "")
	kb, _ := pem.Decode(keyPEM)
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(certPEM)
	ts := &TokenServer{CertPEM: certPEM, key: key, der: cb.Bytes, users: users}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.URL = "http://" + l.Addr().String() + "/token"
	srv := &http.Server{Handler: http.HandlerFunc(ts.serve), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ts
}

func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if ok && ts.users[user] != pass {
		http.Error(w, `{"details":"incorrect username or password"}`, http.StatusUnauthorized)
		return
	}
	var actions []string
	name := ""
	for _, sc := range r.URL.Query()["scope"] {
		// repository:NAME:ACTIONS
		parts := strings.Split(sc, ":")
		if len(parts) >= 3 && parts[0] == "repository" {
			name = strings.Join(parts[1:len(parts)-1], ":")
			actions = strings.Split(parts[len(parts)-1], ",")
		}
	}
	tok := ""
	if ok && name != "" {
		tok = ts.Issue(user, name, strings.Join(actions, ","))
	} else {
		tok = ts.Issue("", "", "") // anonymous, or a login check: no rights
	}
	ts.Issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
}

// Issue signs a token granting actions ("pull,push") on repository name
// ("*" for any).
func (ts *TokenServer) Issue(sub, name, actions string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.der)}})
	now := time.Now()
	access := []map[string]any{}
	if name != "" {
		access = append(access, map[string]any{"type": "repository", "name": name, "actions": strings.Split(actions, ",")})
	}
	claims, _ := json.Marshal(map[string]any{
		"iss": tokenIssuer, "sub": sub, "aud": tokenService,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": b64([]byte(now.String())), "access": access,
	})
	signing := b64(hdr) + "." + b64(claims)
	h := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, h[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + b64(sig)
}
