// Package regtest starts Debian's docker-registry on loopback for tests
// (plain HTTP, HTTPS with a self-signed certificate, htpasswd basic auth or
// bearer tokens from a token server of its own), puts images into it
// through the distribution API, and counts or breaks blob transfers
// through a proxy.
package regtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// Binary is Debian's registry (package docker-registry).
const Binary = "/usr/bin/docker-registry"

// Options choose how the registry is served.
type Options struct {
	TLS   bool              // HTTPS with a self-signed certificate for 127.0.0.1
	Users map[string]string // htpasswd basic auth with these users
	Token bool              // bearer tokens from a token server (Users are its accounts)
}

// Registry is a running docker-registry.
type Registry struct {
	Addr   string // 127.0.0.1:port
	Scheme string // http or https
	Dir    string
	// CertPEM is the certificate of a TLS registry.
	CertPEM []byte
	// Token is the token server of a Token registry.
	Token *TokenServer
	users map[string]string
	cmd   *exec.Cmd
	t     testing.TB
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start starts a registry on a free loopback port; it stops with t.
func Start(t testing.TB, o Options) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skip("needs Debian's docker-registry (scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	r := &Registry{Addr: freeAddr(t), Scheme: "http", Dir: dir, users: o.Users, t: t}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: berth-test-secret
`, filepath.Join(dir, "data"), r.Addr)
	if o.TLS {
		r.Scheme = "https"
		certPEM, keyPEM := selfSigned(t, "127.0.0.1")
		r.CertPEM = certPEM
		write(t, filepath.Join(dir, "cert.pem"), certPEM)
		write(t, filepath.Join(dir, "key.pem"), keyPEM)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	}
	switch {
	case o.Token:
		r.Token = startTokenServer(t, r.Addr, o.Users)
		write(t, filepath.Join(dir, "token.pem"), r.Token.CertPEM)
		cfg += fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			r.Token.URL, tokenService, tokenIssuer, filepath.Join(dir, "token.pem"))
	case len(o.Users) > 0:
		var b strings.Builder
		for u, p := range o.Users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s:%s\n", u, h)
		}
		write(t, filepath.Join(dir, "htpasswd"), []byte(b.String()))
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	write(t, filepath.Join(dir, "config.yml"), []byte(cfg))
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(Binary, "serve", filepath.Join(dir, "config.yml"))
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := r.Client().Get(r.URL("/v2/"))
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not come up: %v\n%s", err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// Stop kills the registry.
func (r *Registry) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

func write(t testing.TB, p string, b []byte) {
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// URL is the address of path on the registry.
func (r *Registry) URL(path string) string { return r.Scheme + "://" + r.Addr + path }

// Client is an HTTP client that trusts the registry's certificate.
func (r *Registry) Client() *http.Client {
	tr := &http.Transport{}
	if r.CertPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.CertPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func selfSigned(t testing.TB, ip string) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "berth-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if ip != "" {
		tmpl.IPAddresses = []net.IP{net.ParseIP(ip)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// Image is an image as the registry stores it.
type Image struct {
	Config       []byte
	Manifest     []byte
	MediaType    string
	Blobs        map[digest.Digest][]byte
	Layers       []digest.Digest // compressed blob digests, lowest first
	DiffIDs      []digest.Digest
	ConfigDigest digest.Digest
}

// Digest is the manifest's digest.
func (i *Image) Digest() digest.Digest { return digest.FromBytes(i.Manifest) }

// TarEntry is one entry of a layer built by Tar.
type TarEntry struct {
	Name, Body, Link string
	Type             byte // tar.TypeReg when zero
	Mode             int64
	Uid, Gid         int
	Xattrs           map[string]string
}

// Tar builds an uncompressed tar.
func Tar(t testing.TB, ents ...TarEntry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.Name, Linkname: e.Link, Typeflag: e.Type, Mode: e.Mode, Uid: e.Uid, Gid: e.Gid, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.Body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// BuildOptions tune Build.
type BuildOptions struct {
	OCI          bool   // OCI media types (else Docker schema 2)
	Uncompressed bool   // layers as plain tars
	Arch         string // config architecture ("" is amd64)
	Config       ocispec.ImageConfig
}

// Build makes an image of uncompressed layer tars.
func Build(t testing.TB, layers [][]byte, o BuildOptions) *Image {
	img := &Image{Blobs: map[digest.Digest][]byte{}}
	arch := o.Arch
	if arch == "" {
		arch = "amd64"
	}
	layerType, cfgType, manType := "application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.container.image.v1+json", "application/vnd.docker.distribution.manifest.v2+json"
	if o.OCI {
		layerType, cfgType, manType = ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	}
	if o.Uncompressed {
		layerType = ocispec.MediaTypeImageLayer
	}
	var descs []ocispec.Descriptor
	now := time.Unix(1700000000, 0).UTC()
	var hist []ocispec.History
	for i, l := range layers {
		blob := l
		if !o.Uncompressed {
			blob = Gzip(l)
		}
		d := digest.FromBytes(blob)
		img.Blobs[d] = blob
		img.Layers = append(img.Layers, d)
		img.DiffIDs = append(img.DiffIDs, digest.FromBytes(l))
		descs = append(descs, ocispec.Descriptor{MediaType: layerType, Digest: d, Size: int64(len(blob))})
		hist = append(hist, ocispec.History{Created: &now, CreatedBy: fmt.Sprintf("layer %d", i)})
	}
	cfg := ocispec.Image{Created: &now, Platform: ocispec.Platform{OS: "linux", Architecture: arch}, Config: o.Config,
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: img.DiffIDs}, History: hist}
	img.Config, _ = json.Marshal(cfg)
	img.ConfigDigest = digest.FromBytes(img.Config)
	img.Blobs[img.ConfigDigest] = img.Config
	m := struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Config        ocispec.Descriptor   `json:"config"`
		Layers        []ocispec.Descriptor `json:"layers"`
	}{2, manType, ocispec.Descriptor{MediaType: cfgType, Digest: img.ConfigDigest, Size: int64(len(img.Config))}, descs}
	img.Manifest, _ = json.Marshal(m)
	img.MediaType = manType
	return img
}

// Push uploads every blob of img and its manifest as repo:tag.
func (r *Registry) Push(t testing.TB, repo, tag string, img *Image) {
	t.Helper()
	for d, b := range img.Blobs {
		r.PutBlob(t, repo, d, b)
	}
	r.PutManifest(t, repo, tag, img.MediaType, img.Manifest)
}

// PutBlob uploads one blob (monolithic upload).
func (r *Registry) PutBlob(t testing.TB, repo string, d digest.Digest, b []byte) {
	t.Helper()
	resp := r.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if strings.HasPrefix(loc, "/") {
		loc = r.URL(loc)
	}
	r.doURL(t, http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", b, http.StatusCreated)
}

// PutManifest uploads a manifest or an index.
func (r *Registry) PutManifest(t testing.TB, repo, ref, mediaType string, body []byte) {
	t.Helper()
	r.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, mediaType, body, http.StatusCreated)
}

// Index builds an image index of manifests for platforms "os/arch".
func Index(t testing.TB, oci bool, entries map[string]*Image) (mediaType string, body []byte) {
	mt := "application/vnd.docker.distribution.manifest.list.v2+json"
	if oci {
		mt = ocispec.MediaTypeImageIndex
	}
	var ms []ocispec.Descriptor
	for p, img := range entries {
		os, arch, _ := strings.Cut(p, "/")
		ms = append(ms, ocispec.Descriptor{MediaType: img.MediaType, Digest: img.Digest(), Size: int64(len(img.Manifest)), Platform: &ocispec.Platform{OS: os, Architecture: arch}})
	}
	b, _ := json.Marshal(struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Manifests     []ocispec.Descriptor `json:"manifests"`
	}{2, mt, ms})
	return mt, b
}

func (r *Registry) do(t testing.TB, method, path, ct string, body []byte, want int) *http.Response {
	return r.doURL(t, method, r.URL(path), ct, body, want)
}

func (r *Registry) doURL(t testing.TB, method, u, ct string, body []byte, want int) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if err := r.authorize(req); err != nil {
		t.Fatal(err)
	}
	resp, err := r.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s: %s", method, u, resp.Status, data)
	}
	return resp
}

// authorize adds the first user's credentials (basic, or a token with
// every right).
func (r *Registry) authorize(req *http.Request) error {
	for u, p := range r.users {
		if r.Token != nil {
			name := strings.TrimPrefix(req.URL.Path, "/v2/")
			for _, sep := range []string{"/blobs/", "/manifests/"} {
				if i := strings.Index(name, sep); i >= 0 {
					name = name[:i]
				}
			}
			req.Header.Set("Authorization", "Bearer "+r.Token.Issue(u, name, "pull,push,delete"))
		} else {
			req.SetBasicAuth(u, p)
		}
		return nil
	}
	return nil
}
