package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type certPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func makeCert(t *testing.T, cn string, ca *certPair, isCA bool, usage x509.ExtKeyUsage) *certPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:         isCA, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if !isCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certPair{cert: cert, key: key, der: der}
}

func (c *certPair) write(t *testing.T, dir, name string) (certPath, keyPath string) {
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	_ = os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600)
	kb, _ := x509.MarshalECPrivateKey(c.key)
	_ = os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := makeCert(t, "berth-ca", nil, true, 0)
	caPath, _ := ca.write(t, dir, "ca")
	srvCert, srvKey := makeCert(t, "apigw", ca, false, x509.ExtKeyUsageServerAuth).write(t, dir, "server")
	cli := makeCert(t, "client", ca, false, x509.ExtKeyUsageClientAuth)

	l, err := Listen("tcp://127.0.0.1:0", ListenOptions{TLSVerify: true, TLSCACert: caPath, TLSCert: srvCert, TLSKey: srvKey})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Node: testNode})
	hs := &http.Server{Handler: s.Handler(), ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(l)
	defer hs.Close()

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	get := func(certs []tls.Certificate) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
		resp, err := c.Get("https://" + l.Addr().String() + "/_ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get([]tls.Certificate{{Certificate: [][]byte{cli.der}, PrivateKey: cli.key}}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := get(nil); err == nil {
		t.Fatal("a client without a certificate got in")
	}
}
