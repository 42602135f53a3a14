// Package registry is a client of the OCI distribution (Docker registry v2)
// API: manifests and blobs, pull and push, with anonymous, basic and bearer
// token authentication, over HTTPS or, for insecure registries, HTTP.
//
// It is small on purpose: berth streams blobs straight into the layer
// unpacker, resumes interrupted downloads with ranged requests and reports
// progress byte by byte, which is easier with the protocol at hand than
// through a general-purpose library.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"

	"berth/pkg/errdefs"
)

// DefaultHost is where docker.io names are pulled from.
const DefaultHost = "registry-1.docker.io"

// Config configures a Client.
type Config struct {
	// Insecure lists registries (host, host:port or a CIDR of addresses)
	// reached over HTTP or HTTPS without certificate checks, like dockerd's
	// --insecure-registry. Loopback registries are always insecure, as in
	// dockerd.
	Insecure []string
	// CertsDir holds <host[:port]>/ca.crt (and *.crt) trusted for that
	// registry, like /etc/docker/certs.d.
	CertsDir  string
	UserAgent string
	// Transport is used for every request (tests count them); nil: a
	// default transport.
	Transport http.RoundTripper
}

// Auth are the credentials of one registry (X-Registry-Auth).
type Auth struct {
	Username      string
	Password      string
	IdentityToken string // an OAuth refresh token
	RegistryToken string // a bearer token used as is
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	cfg      Config
	insecure []*net.IPNet
	hosts    map[string]bool

	mu      sync.Mutex
	schemes map[string]string // host → "https" or "http", once known
	clients map[string]*http.Client
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	c := &Client{cfg: cfg, hosts: map[string]bool{}, schemes: map[string]string{}, clients: map[string]*http.Client{}}
	for _, e := range cfg.Insecure {
		if _, n, err := net.ParseCIDR(e); err == nil {
			c.insecure = append(c.insecure, n)
			continue
		}
		if strings.ContainsAny(e, "/ ") || e == "" {
			return nil, fmt.Errorf("insecure registry %q: want host[:port] or a CIDR", e)
		}
		c.hosts[strings.ToLower(e)] = true
	}
	return c, nil
}

// IsInsecure reports whether host (host[:port]) may be reached without TLS
// checks.
func (c *Client) IsInsecure(host string) bool {
	h := strings.ToLower(host)
	if c.hosts[h] {
		return true
	}
	name := h
	if hh, _, err := net.SplitHostPort(h); err == nil {
		name = hh
		if c.hosts[hh] {
			return true
		}
	}
	if name == "localhost" {
		return true
	}
	ips := []net.IP{net.ParseIP(strings.Trim(name, "[]"))}
	if ips[0] == nil {
		// a name: what it resolves to decides, as in dockerd
		addrs, err := net.LookupIP(name)
		if err != nil {
			return false
		}
		ips = addrs
	}
	for _, ip := range ips {
		if ip.IsLoopback() {
			return true
		}
		for _, n := range c.insecure {
			if n.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// Host is the registry host of a name (docker.io is served by DefaultHost).
func Host(n reference.Named) string {
	d := reference.Domain(n)
	if d == "docker.io" {
		return DefaultHost
	}
	return d
}

func (c *Client) httpClient(host string, insecure bool) (*http.Client, error) {
	key := host
	if insecure {
		key += "#insecure"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hc, ok := c.clients[key]; ok {
		return hc, nil
	}
	rt := c.cfg.Transport
	if rt == nil {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // the operator's --insecure-registry, or loopback
		if !insecure && c.cfg.CertsDir != "" {
			pool, err := certPool(filepath.Join(c.cfg.CertsDir, host))
			if err != nil {
				return nil, err
			}
			tlsCfg.RootCAs = pool
		}
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tlsCfg,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	hc := &http.Client{Transport: rt}
	c.clients[key] = hc
	return hc, nil
}

// certPool is the system pool plus the *.crt files in dir (if it exists).
func certPool(dir string) (*x509.CertPool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".crt") {
			continue
		}
		pem, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", filepath.Join(dir, e.Name()))
		}
	}
	return pool, nil
}

// Repo is one repository of a registry, with the credentials to use.
type Repo struct {
	c       *Client
	Name    reference.Named
	Host    string
	Path    string // e.g. library/busybox
	auth    Auth
	actions string // "pull" or "pull,push"

	mu     sync.Mutex
	base   string // scheme://host
	hc     *http.Client
	bearer string
	basic  bool
}

// Repository returns a handle on the repository of name. push asks for push
// rights too.
func (c *Client) Repository(name reference.Named, auth Auth, push bool) *Repo {
	actions := "pull"
	if push {
		actions = "pull,push"
	}
	return &Repo{c: c, Name: name, Host: Host(name), Path: reference.Path(name), auth: auth, actions: actions}
}

// endpoint picks the scheme for the registry once: HTTPS always for a
// secure registry; for an insecure one HTTPS without checks when it answers
// TLS, else HTTP (dockerd's order).
func (r *Repo) endpoint(ctx context.Context) (string, *http.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base != "" {
		return r.base, r.hc, nil
	}
	insecure := r.c.IsInsecure(r.Host)
	hc, err := r.c.httpClient(r.Host, insecure)
	if err != nil {
		return "", nil, err
	}
	r.c.mu.Lock()
	scheme := r.c.schemes[r.Host]
	r.c.mu.Unlock()
	if scheme == "" {
		scheme = "https"
		if insecure {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.Host+"/v2/", nil)
			resp, err := hc.Do(req)
			if err != nil {
				scheme = "http"
			} else {
				drain(resp)
			}
		}
		r.c.mu.Lock()
		r.c.schemes[r.Host] = scheme
		r.c.mu.Unlock()
	}
	r.base, r.hc = scheme+"://"+r.Host, hc
	return r.base, r.hc, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// URL is the address of a path of the API (/v2/<name>/…).
func (r *Repo) URL(ctx context.Context, format string, args ...any) (string, error) {
	base, _, err := r.endpoint(ctx)
	if err != nil {
		return "", err
	}
	return base + fmt.Sprintf(format, args...), nil
}

// Do sends a request built by mk (called again for a retry after
// authenticating), authenticating as the registry asks.
func (r *Repo) Do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	_, hc, err := r.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, err
		}
		req = req.WithContext(ctx)
		if r.c.cfg.UserAgent != "" {
			req.Header.Set("User-Agent", r.c.cfg.UserAgent)
		}
		r.mu.Lock()
		switch {
		case r.bearer != "":
			req.Header.Set("Authorization", "Bearer "+r.bearer)
		case r.basic:
			req.SetBasicAuth(r.auth.Username, r.auth.Password)
		}
		r.mu.Unlock()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, r.netErr(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		drain(resp)
		if err := r.authenticate(ctx, hc, challenge); err != nil {
			return nil, err
		}
		if req.GetBody == nil && req.Body != nil && req.Body != http.NoBody {
			// a streamed body cannot be sent twice: the caller retries
			return nil, errRetryAuthenticated
		}
	}
}

// errRetryAuthenticated tells a caller with a one-shot body that it is now
// authenticated and should send again.
var errRetryAuthenticated = errors.New("registry: authenticated, send the request again")

func (r *Repo) netErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && errors.Is(ue.Err, context.Canceled) {
		return errdefs.Wrap(errdefs.Unavailable, context.Canceled)
	}
	return errdefs.New(errdefs.Unavailable, "%v", err)
}

// authenticate answers a WWW-Authenticate challenge: basic credentials, or
// a bearer token from the token server it names.
func (r *Repo) authenticate(ctx context.Context, hc *http.Client, challenge string) error {
	scheme, params := parseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		if r.auth.Username == "" {
			return errdefs.New(errdefs.Unauthorized, "no basic auth credentials")
		}
		r.mu.Lock()
		r.basic = true
		r.mu.Unlock()
		return nil
	case "bearer":
		if r.auth.RegistryToken != "" {
			r.mu.Lock()
			r.bearer = r.auth.RegistryToken
			r.mu.Unlock()
			return nil
		}
		tok, err := r.fetchToken(ctx, hc, params)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.bearer = tok
		r.mu.Unlock()
		return nil
	}
	return errdefs.New(errdefs.Unauthorized, "unauthorized: the registry asks for unsupported authentication %q", challenge)
}

func (r *Repo) fetchToken(ctx context.Context, hc *http.Client, params map[string]string) (string, error) {
	realm := params["realm"]
	if realm == "" {
		return "", errdefs.New(errdefs.Unauthorized, "unauthorized: bearer challenge without a realm")
	}
	u, err := url.Parse(realm)
	if err != nil {
		return "", errdefs.New(errdefs.Unauthorized, "bad token realm %q: %v", realm, err)
	}
	scope := params["scope"]
	if scope == "" && r.Path != "" {
		scope = "repository:" + r.Path + ":" + r.actions
	}
	var req *http.Request
	if r.auth.IdentityToken != "" {
		// OAuth2 refresh token grant, as the docker CLI's identity tokens need
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.auth.IdentityToken}, "service": {params["service"]}, "client_id": {"berth"}}
		if scope != "" {
			form.Set("scope", scope)
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		q := u.Query()
		if s := params["service"]; s != "" {
			q.Set("service", s)
		}
		if scope != "" {
			q.Set("scope", scope)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "", err
		}
		if r.auth.Username != "" {
			req.SetBasicAuth(r.auth.Username, r.auth.Password)
		}
	}
	if r.c.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", r.c.cfg.UserAgent)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", r.netErr(err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", errdefs.New(errdefs.Unauthorized, "unauthorized: the token server %s answered %s", u.Host, resp.Status)
	}
	var t struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		return "", errdefs.New(errdefs.Unauthorized, "unauthorized: bad answer from the token server: %v", err)
	}
	if t.Token == "" {
		t.Token = t.AccessToken
	}
	if t.Token == "" {
		return "", errdefs.New(errdefs.Unauthorized, "unauthorized: the token server gave no token")
	}
	return t.Token, nil
}

// parseChallenge splits `Bearer realm="…",service="…"`.
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k] = v[1 : end+1]
			rest = strings.TrimPrefix(strings.TrimSpace(v[end+2:]), ",")
		} else {
			val, after, _ := strings.Cut(v, ",")
			params[k] = val
			rest = after
		}
		rest = strings.TrimSpace(rest)
	}
	return scheme, params
}

// Error is an error answer of the registry.
type Error struct {
	Status  int
	Code    string // MANIFEST_UNKNOWN, NAME_UNKNOWN, UNAUTHORIZED, DENIED, BLOB_UNKNOWN, …
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("unexpected status from the registry: %d %s", e.Status, http.StatusText(e.Status))
	}
	return strings.ToLower(strings.ReplaceAll(e.Code, "_", " ")) + ": " + e.Message
}

// readError decodes the registry's error body.
func readError(resp *http.Response) *Error {
	defer drain(resp)
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body) == nil && len(body.Errors) > 0 {
		e.Code, e.Message = body.Errors[0].Code, body.Errors[0].Message
	}
	if e.Code == "" {
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			e.Code, e.Message = "UNAUTHORIZED", "authentication required"
		case http.StatusForbidden:
			e.Code, e.Message = "DENIED", "requested access to the resource is denied"
		}
	}
	return e
}

// IsAuthError reports whether err is the registry refusing the caller.
func IsAuthError(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Code == "DENIED" || e.Code == "UNAUTHORIZED"
	}
	return errdefs.Is(err, errdefs.Unauthorized)
}

// Ping checks the credentials against the registry (docker login).
func (r *Repo) Ping(ctx context.Context) error {
	u, err := r.URL(ctx, "/v2/")
	if err != nil {
		return err
	}
	resp, err := r.Do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodGet, u, nil) })
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	drain(resp)
	return nil
}

// Manifest accepts these media types, indexes included.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// MaxManifestSize bounds a manifest or an index.
const MaxManifestSize = 4 << 20

// Manifest fetches the manifest (or index) ref (a tag or a digest) and
// verifies it when ref is a digest.
func (r *Repo) Manifest(ctx context.Context, ref string) (body []byte, mediaType string, dgst digest.Digest, err error) {
	u, err := r.URL(ctx, "/v2/%s/manifests/%s", r.Path, ref)
	if err != nil {
		return nil, "", "", err
	}
	resp, err := r.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err == nil {
			req.Header.Set("Accept", manifestAccept)
		}
		return req, err
	})
	if err != nil {
		return nil, "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", readError(resp)
	}
	defer drain(resp)
	body, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, "", "", r.netErr(err)
	}
	if len(body) > MaxManifestSize {
		return nil, "", "", errdefs.New(errdefs.InvalidParameter, "manifest %s is larger than %d bytes", ref, MaxManifestSize)
	}
	dgst = digest.FromBytes(body)
	if want, err := digest.Parse(ref); err == nil && want != dgst {
		return nil, "", "", errdefs.New(errdefs.InvalidParameter, "manifest verification failed for digest %s: got %s", want, dgst)
	}
	mediaType, _, _ = strings.Cut(resp.Header.Get("Content-Type"), ";")
	return body, strings.TrimSpace(mediaType), dgst, nil
}

// maxTagPages bounds the pages of a tag list a registry may send.
const maxTagPages = 10000

// Tags lists the repository's tags (GET /v2/<name>/tags/list), following
// the registry's Link header from page to page, as dockerd's pull of every
// tag does.
func (r *Repo) Tags(ctx context.Context) ([]string, error) {
	u, err := r.URL(ctx, "/v2/%s/tags/list", r.Path)
	if err != nil {
		return nil, err
	}
	next, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	var tags []string
	for range maxTagPages {
		resp, err := r.Do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodGet, next.String(), nil) })
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, readError(resp)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, MaxManifestSize)).Decode(&page)
		link := resp.Header.Get("Link")
		drain(resp)
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid tag list from the registry: %v", err)
		}
		tags = append(tags, page.Tags...)
		if link == "" {
			return tags, nil
		}
		// <url>; rel="next", the url relative to the page's
		ref, err := url.Parse(strings.Trim(strings.TrimSpace(strings.Split(link, ";")[0]), "<>"))
		if err != nil {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid Link header from the registry: %q", link)
		}
		next = next.ResolveReference(ref)
	}
	return nil, errdefs.New(errdefs.InvalidParameter, "the registry's tag list has more than %d pages", maxTagPages)
}

// Blob opens blob d from byte offset on; size is the whole blob's size when
// the registry tells it (-1 otherwise). A registry that ignores the range
// answers from the start: offset 0 is returned then.
func (r *Repo) Blob(ctx context.Context, d digest.Digest, offset int64) (rc io.ReadCloser, from, size int64, err error) {
	u, err := r.URL(ctx, "/v2/%s/blobs/%s", r.Path, d)
	if err != nil {
		return nil, 0, 0, err
	}
	resp, err := r.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err == nil && offset > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		}
		return req, err
	})
	if err != nil {
		return nil, 0, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, 0, resp.ContentLength, nil
	case http.StatusPartialContent:
		size = -1
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			if i := strings.LastIndex(cr, "/"); i >= 0 {
				if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
					size = n
				}
			}
		}
		return resp.Body, offset, size, nil
	case http.StatusRequestedRangeNotSatisfiable:
		drain(resp)
		return r.Blob(ctx, d, 0)
	}
	return nil, 0, 0, readError(resp)
}

// BlobExists asks whether the repository has blob d.
func (r *Repo) BlobExists(ctx context.Context, d digest.Digest) (bool, error) {
	u, err := r.URL(ctx, "/v2/%s/blobs/%s", r.Path, d)
	if err != nil {
		return false, err
	}
	resp, err := r.Do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodHead, u, nil) })
	if err != nil {
		return false, err
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, &Error{Status: resp.StatusCode, Code: map[bool]string{true: "DENIED"}[resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized], Message: "requested access to the resource is denied"}
}

// UploadBlob uploads blob d of size bytes read from open (called again if
// the first attempt had to authenticate).
func (r *Repo) UploadBlob(ctx context.Context, d digest.Digest, size int64, open func() (io.ReadCloser, error)) error {
	for attempt := 0; attempt < 2; attempt++ {
		start, err := r.URL(ctx, "/v2/%s/blobs/uploads/", r.Path)
		if err != nil {
			return err
		}
		resp, err := r.Do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodPost, start, nil) })
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusAccepted {
			return readError(resp)
		}
		loc := resp.Header.Get("Location")
		drain(resp)
		lu, err := url.Parse(loc)
		if err != nil || loc == "" {
			return errdefs.New(errdefs.Unavailable, "registry gave a bad upload location %q", loc)
		}
		base, _ := url.Parse(start)
		lu = base.ResolveReference(lu)
		q := lu.Query()
		q.Set("digest", d.String())
		lu.RawQuery = q.Encode()
		body, err := open()
		if err != nil {
			return err
		}
		resp, err = r.Do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPut, lu.String(), body)
			if err == nil {
				req.ContentLength = size
				req.Header.Set("Content-Type", "application/octet-stream")
			}
			return req, err
		})
		body.Close()
		if errors.Is(err, errRetryAuthenticated) {
			continue
		}
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated {
			return readError(resp)
		}
		drain(resp)
		return nil
	}
	return errdefs.New(errdefs.Unauthorized, "unauthorized: the registry refused the upload of %s", d)
}

// MountBlob asks the registry to link blob d from repository from (same
// registry) without uploading it; false means it must be uploaded.
func (r *Repo) MountBlob(ctx context.Context, d digest.Digest, from string) (bool, error) {
	u, err := r.URL(ctx, "/v2/%s/blobs/uploads/?mount=%s&from=%s", r.Path, url.QueryEscape(d.String()), url.QueryEscape(from))
	if err != nil {
		return false, err
	}
	resp, err := r.Do(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodPost, u, nil) })
	if err != nil {
		return false, err
	}
	drain(resp)
	if resp.StatusCode == http.StatusAccepted {
		// an upload was started instead; it expires on its own
		return false, nil
	}
	return resp.StatusCode == http.StatusCreated, nil
}

// PutManifest uploads a manifest under ref (a tag) and returns its digest.
func (r *Repo) PutManifest(ctx context.Context, ref, mediaType string, body []byte) (digest.Digest, error) {
	u, err := r.URL(ctx, "/v2/%s/manifests/%s", r.Path, ref)
	if err != nil {
		return "", err
	}
	resp, err := r.Do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPut, u, strings.NewReader(string(body)))
		if err == nil {
			req.Header.Set("Content-Type", mediaType)
		}
		return req, err
	})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", readError(resp)
	}
	drain(resp)
	return digest.FromBytes(body), nil
}
