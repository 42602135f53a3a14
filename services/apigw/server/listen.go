package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ListenOptions say how to open the API's listeners.
type ListenOptions struct {
	Group       string // unix sockets: group owner (name or gid)
	TLSVerify   bool   // tcp: mutual TLS
	TLSCACert   string
	TLSCert     string
	TLSKey      string
	InsecureTCP bool // tcp without TLS, like dockerd's --tls=false with a warning
	Logger      *slog.Logger
}

// Listen opens one listener for a --host value: unix:///path or tcp://host:port.
func Listen(host string, o ListenOptions) (net.Listener, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("invalid --host %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		return listenUnix(p, o.Group)
	case "tcp":
		if u.Host == "" {
			return nil, fmt.Errorf("invalid --host %q: tcp needs host:port", host)
		}
		switch {
		case o.TLSVerify:
			cfg, err := serverTLS(o)
			if err != nil {
				return nil, err
			}
			l, err := net.Listen("tcp", u.Host)
			if err != nil {
				return nil, err
			}
			return tls.NewListener(l, cfg), nil
		case o.InsecureTCP:
			log.Warn("!!! BINDING THE API TO " + u.Host + " WITHOUT TLS: anyone who can reach it has root on this host. " +
				"Use --tls-verify --tlscacert --tlscert --tlskey instead of --insecure-tcp.")
			return net.Listen("tcp", u.Host)
		}
		return nil, fmt.Errorf("refusing to listen on %s without mutual TLS: give --tls-verify --tlscacert --tlscert --tlskey (or --insecure-tcp, which is unsafe)", host)
	}
	return nil, fmt.Errorf("invalid --host %q: only unix:// and tcp:// are supported", host)
}

func serverTLS(o ListenOptions) (*tls.Config, error) {
	if o.TLSCACert == "" || o.TLSCert == "" || o.TLSKey == "" {
		return nil, errors.New("--tls-verify needs --tlscacert, --tlscert and --tlskey")
	}
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	ca, err := os.ReadFile(o.TLSCACert)
	if err != nil {
		return nil, fmt.Errorf("read TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificates in %s", o.TLSCACert)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

func listenUnix(p, group string) (net.Listener, error) {
	if p == "" {
		return nil, errors.New("unix socket path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", p)
		}
		if c, err := net.Dial("unix", p); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", p)
		}
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	// Created without any access for group and others, then opened to 0660:
	// no window in which anyone else could connect.
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", p)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	gid := -1
	if group != "" {
		gid, err = lookupGroup(group)
		if err != nil {
			l.Close()
			return nil, err
		}
	}
	if err := os.Chown(p, -1, gid); err != nil && gid != -1 {
		l.Close()
		return nil, fmt.Errorf("chown %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		return n, nil
	}
	grp, err := user.LookupGroup(strings.TrimSpace(g))
	if err != nil {
		return -1, fmt.Errorf("group %q: %w", g, err)
	}
	return strconv.Atoi(grp.Gid)
}
