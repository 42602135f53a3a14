// Package app wires the supervisor together: flags, embedded NATS,
// JetStream resources, image store, container manager, bus server, metrics.
// Tests start it in-process with temporary roots.
package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/pkg/bus/natsbus"
	"berth/pkg/idmap"
	"berth/pkg/image"
	"berth/pkg/registry"
	"berth/pkg/specconv"
	"berth/services/supervisor/containers"
	"berth/services/supervisor/metrics"
	"berth/services/supervisor/natsd"
	"berth/services/supervisor/network"
	"berth/services/supervisor/server"
	"berth/services/supervisor/volumes"
)

// Config is the supervisor's configuration (its flags).
type Config struct {
	Root         string
	ExecRoot     string
	Node         string
	NATSURL      string // empty: start the embedded server
	NATSListen   string
	NATSUser     string
	NATSPassword string
	// NATSCredentials is the supervisor's credentials file for an external
	// NATS (user and password as JSON); the embedded server generates its
	// own in <root>/auth.
	NATSCredentials string
	// NATSCalloutKey is the seed file of the account key that signs the
	// shims' users on an external NATS server configured with auth
	// callout (deploy/nats.conf): every shim gets a user of its own, as
	// with the embedded server.
	NATSCalloutKey string
	MetricsAddr    string // empty: no metrics listener
	Shim           string
	Runtime        string
	Init           string // the init of --init (berth-init)
	LogLevel       string
	Logger         *slog.Logger
	// Network is the containers' networking (--bridge, --bip, …); Bridge
	// "none" turns bridge networking off.
	Network network.Config
	// UsernsRemap (--userns-remap=USER[:GROUP], off when empty) runs the
	// containers in user namespaces mapped to USER's ranges in SubUIDFile
	// and GROUP's in SubGIDFile (package idmap).
	UsernsRemap            string
	SubUIDFile, SubGIDFile string
	// InsecureRegistries are reached over HTTP or unchecked HTTPS (host[:port]
	// or CIDR), like dockerd's --insecure-registry; loopback always is.
	InsecureRegistries []string
	// RegistryCertsDir holds <host[:port]>/*.crt, CAs trusted for that registry.
	RegistryCertsDir string
}

// listFlag is a repeatable string flag.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	*l.v = append(*l.v, s)
	return nil
}

// DefaultNode is the host name up to its first dot (a subject token).
func DefaultNode() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "local"
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// ParseFlags reads the command line.
func ParseFlags(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("berth-supervisor", flag.ContinueOnError)
	self, _ := os.Executable()
	dir := filepath.Dir(self)
	fs.StringVar(&c.Root, "root", "/var/lib/berth", "persistent state: images, container records, logs, JetStream store")
	fs.StringVar(&c.ExecRoot, "exec-root", "/run/berth", "runtime state: bundles, shim state, runtime state")
	fs.StringVar(&c.Node, "node", DefaultNode(), "node name used in bus subjects")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server URL; empty starts the embedded server")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server")
	fs.StringVar(&c.NATSUser, "nats-user", os.Getenv("BERTH_NATS_USER"), "NATS user (env BERTH_NATS_USER)")
	fs.StringVar(&c.NATSPassword, "nats-password", os.Getenv("BERTH_NATS_PASSWORD"), "NATS password (env BERTH_NATS_PASSWORD; prefer --nats-password-file)")
	pwFile := fs.String("nats-password-file", "", "file holding the NATS password")
	fs.StringVar(&c.NATSCredentials, "nats-credentials", "", "external NATS: the supervisor's credentials file ({\"user\":…,\"password\":…})")
	fs.StringVar(&c.NATSCalloutKey, "nats-callout-key", "", "external NATS: seed file of the auth callout issuer that admits each shim as a user of its own (berth-supervisor callout-key FILE makes one)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9325", "listen address of /metrics; empty disables it")
	fs.StringVar(&c.Shim, "shim", filepath.Join(dir, "berth-shim"), "path of berth-shim")
	fs.StringVar(&c.Runtime, "runtime", filepath.Join(dir, "berth-runtime"), "path of the OCI runtime (runc-compatible)")
	fs.StringVar(&c.Init, "init-path", filepath.Join(dir, "berth-init"), "path of the init that docker run --init makes PID 1 (static binary)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.Var(listFlag{&c.InsecureRegistries}, "insecure-registry", "registry (host[:port] or CIDR) reached over HTTP or HTTPS without certificate checks; repeatable (loopback always is)")
	fs.StringVar(&c.RegistryCertsDir, "registry-certs-dir", "/etc/berth/certs.d", "directory of <host[:port]>/*.crt: CA certificates trusted for that registry")
	fs.StringVar(&c.Network.Bridge, "bridge", network.DefaultBridge, "the default bridge network's interface (\"none\": no bridge networking)")
	fs.StringVar(&c.Network.BIP, "bip", network.DefaultBIP, "the default bridge's address and prefix length")
	fs.StringVar(&c.Network.FixedCIDR, "fixed-cidr", "", "the part of the default bridge's subnet its containers' addresses come from")
	pool := fs.String("default-address-pool", "base="+network.DefaultAddressPool+",size=24", "where user-defined networks' subnets come from")
	fs.StringVar(&c.Network.ChainPrefix, "iptables-chain-prefix", network.DefaultChainPrefix, "prefix of berth's own iptables chains (one per supervisor of a host)")
	fs.BoolVar(&c.Network.IPTables, "iptables", true, "manage iptables rules (published ports, masquerade, isolation)")
	fs.BoolVar(&c.Network.IPMasq, "ip-masq", true, "masquerade the default bridge's outbound traffic")
	fs.BoolVar(&c.Network.ICC, "icc", true, "let the default bridge's containers reach each other")
	fs.StringVar(&c.UsernsRemap, "userns-remap", "", "USER[:GROUP] (\"default\": dockremap): map the containers' users to USER's subordinate ids; off when empty")
	fs.StringVar(&c.SubUIDFile, "subuid-file", "/etc/subuid", "subordinate uid ranges for --userns-remap")
	fs.StringVar(&c.SubGIDFile, "subgid-file", "/etc/subgid", "subordinate gid ranges for --userns-remap")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, kv := range strings.Split(*pool, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "base":
			c.Network.AddressPool = v
		case "size":
			if _, err := fmt.Sscan(v, &c.Network.PoolSize); err != nil {
				return c, fmt.Errorf("--default-address-pool: size %q", v)
			}
		default:
			return c, fmt.Errorf("--default-address-pool %q: base=CIDR,size=N", *pool)
		}
	}
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return c, fmt.Errorf("--nats-password-file: %w", err)
		}
		c.NATSPassword = strings.TrimSpace(string(b))
	}
	return c, nil
}

// NewLogger is the JSON slog logger on stderr at level.
func NewLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// Supervisor is a running supervisor.
type Supervisor struct {
	Config     Config
	NATSURL    string // the URL clients (and shims) use
	Conn       *nats.Conn
	Containers *containers.Manager
	Images     *image.Store
	Volumes    *volumes.Store
	Server     *server.Server
	MetricsURL string

	nats        *natsd.Server
	httpSrv     *http.Server
	log         *slog.Logger
	stopMonitor context.CancelFunc
}

// Start brings the supervisor up.
func Start(c Config) (*Supervisor, error) { return StartContext(context.Background(), c) }

// StartContext brings the supervisor up; ctx ends the wait for an external
// bus that is not reachable yet.
func StartContext(ctx context.Context, c Config) (_ *Supervisor, err error) {
	log := c.Logger
	if log == nil {
		if log, err = NewLogger(c.LogLevel); err != nil {
			return nil, err
		}
	}
	if err := bus.Token(c.Node); err != nil {
		return nil, fmt.Errorf("--node: %w", err)
	}
	for _, p := range []*string{&c.Root, &c.ExecRoot, &c.Shim, &c.Runtime, &c.Init} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{c.Root, c.ExecRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	var remap *idmap.Remap
	if c.UsernsRemap != "" {
		if remap, err = idmap.Parse(c.UsernsRemap, c.SubUIDFile, c.SubGIDFile); err != nil {
			return nil, err
		}
		log.Info("user namespace remapping", "user", c.UsernsRemap, "uid", remap.RootUID, "gid", remap.RootGID)
	}
	s := &Supervisor{Config: c, log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.NATSURL = c.NATSURL
	// every shim gets a user of its own, with its password in its shim.json
	var shimCreds func(id string) (string, string)
	ownShimUser := func(id string) (string, string) { return bus.ShimUser(c.Node, id), bus.NewPassword() }
	var callout *natsd.Callout
	if s.NATSURL == "" {
		auth, own, err := embeddedAuth(c)
		if err != nil {
			return nil, err
		}
		c.NATSUser, c.NATSPassword = own.User, own.Password
		shimCreds = ownShimUser
		s.nats, err = natsd.Start(natsd.Options{Listen: c.NATSListen, StoreDir: filepath.Join(c.Root, "nats"), Name: "berth-" + c.Node, Logger: log, Auth: auth})
		if err != nil {
			return nil, err
		}
		s.NATSURL = s.nats.ClientURL()
		log.Info("embedded NATS started", "url", s.NATSURL)
	} else {
		if c.NATSCredentials != "" {
			own, err := bus.LoadCredentials(c.NATSCredentials)
			if err != nil {
				return nil, fmt.Errorf("--nats-credentials: %w", err)
			}
			c.NATSUser, c.NATSPassword = own.User, own.Password
		}
		switch {
		case c.NATSCalloutKey != "":
			key, err := natsd.LoadCalloutKey(c.NATSCalloutKey)
			if err != nil {
				return nil, fmt.Errorf("--nats-callout-key: %w", err)
			}
			callout = &natsd.Callout{Issuer: key, Node: c.Node, Lookup: shimLookup(c), Logger: log.With("component", "auth-callout")}
			shimCreds = ownShimUser
		case c.NATSUser != "":
			// shims would have to share the supervisor's own user
			return nil, errors.New("an external NATS with users needs --nats-callout-key: its auth callout admits each shim as a user of its own (see deploy/nats.conf)")
		}
	}
	s.Config = c
	copts := natsbus.Options{URL: s.NATSURL, Name: "berth-supervisor-" + c.Node, User: c.NATSUser, Password: c.NATSPassword, Logger: log}
	if s.nats != nil {
		copts.InProcess = s.nats
		s.Conn, err = natsbus.Connect(copts)
	} else {
		s.Conn, err = connectExternal(ctx, copts, log)
	}
	if err != nil {
		return nil, err
	}
	if callout != nil {
		// before any shim is spawned or restored: they connect through it
		if err := callout.Serve(s.Conn); err != nil {
			return nil, fmt.Errorf("auth callout: %w", err)
		}
	}
	js, err := setupJetStream(s.Conn, log)
	if err != nil {
		log.Error("JetStream unavailable: events are not stored and image import is off", "err", err)
		js = nil
	}
	srv := &server.Server{Node: c.Node, Conn: s.Conn, JS: js, Log: log}
	s.Server = srv
	s.Images, err = image.Open(filepath.Join(c.Root, "images"), image.Hooks{})
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	s.Volumes, err = volumes.Open(filepath.Join(c.Root, "volumes"), log, func(action, name string, attrs map[string]string) {
		srv.PublishEvent("volume", action, name, attrs)
	})
	if err != nil {
		return nil, fmt.Errorf("volume store: %w", err)
	}
	var met *metrics.Metrics
	var netw *network.Manager
	if c.Network.Bridge != "" && c.Network.Bridge != "none" { // empty: an in-process Config without networking
		nc := c.Network
		nc.Root, nc.ExecRoot, nc.Logger, nc.Event = c.Root, c.ExecRoot, log, srv.PublishEvent
		if netw, err = network.New(nc); err != nil {
			return nil, fmt.Errorf("networking: %w", err)
		}
	}
	srv.Networks = netw
	s.Containers, err = containers.New(containers.Config{
		Root: c.Root, ExecRoot: c.ExecRoot, Node: c.Node,
		ShimBin: c.Shim, RuntimeBin: c.Runtime, InitPath: c.Init,
		NATSURL: s.NATSURL, NATSUser: c.NATSUser, NATSPass: c.NATSPassword,
		ShimCredentials: shimCreds,
		Images:          s.Images, Volumes: s.Volumes, Conn: s.Conn, Logger: log,
		Event:       srv.PublishEvent,
		Network:     netw,
		UsernsRemap: remap,
		OnRunning: func(d time.Duration) {
			if met != nil {
				met.CreateToRunning.Observe(d.Seconds())
			}
		},
		OnHealthCheck: func(healthy bool) {
			if met != nil {
				result := "failure"
				if healthy {
					result = "success"
				}
				met.HealthChecks.WithLabelValues(result).Inc()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("restoring containers: %w", err)
	}
	s.Images.SetHooks(image.Hooks{
		Users:  s.Containers.Users,
		Layers: s.Containers.Layers,
		Event:  func(action, id string, attrs map[string]string) { srv.PublishEvent("image", action, id, attrs) },
	})
	met = metrics.New(s.Containers.Counts, func() int { return s.Containers.Counts()["running"] + s.Containers.Counts()["paused"] })
	met.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "berth_supervisor_volumes", Help: "Volumes (named and anonymous)."},
		func() float64 { return float64(s.Volumes.Count()) }))
	srv.Metrics = met
	srv.Containers = s.Containers
	srv.Images = s.Images
	srv.Volumes = s.Volumes
	srv.Info = s.info
	if srv.Registry, err = registry.New(registry.Config{Insecure: c.InsecureRegistries, CertsDir: c.RegistryCertsDir, UserAgent: "berth/" + runtime.Version()}); err != nil {
		return nil, fmt.Errorf("--insecure-registry: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	var monCtx context.Context
	monCtx, s.stopMonitor = context.WithCancel(context.Background())
	go s.Containers.Monitor(monCtx)
	if c.MetricsAddr != "" {
		ln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", met.Handler())
		s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.MetricsURL = "http://" + ln.Addr().String() + "/metrics"
		go func() { _ = s.httpSrv.Serve(ln) }()
	}
	log.Info("supervisor ready", "node", c.Node, "root", c.Root, "execRoot", c.ExecRoot, "nats", s.NATSURL, "metrics", s.MetricsURL)
	return s, nil
}

// embeddedAuth prepares the users of the embedded server: apigw and the
// supervisor from <root>/auth (generated on the first start, root only), and
// one user per shim, whose password is the one in its 0600 shim.json (read
// when it connects, so shims keep working across supervisor restarts).
func embeddedAuth(c Config) (*natsd.Auth, *bus.Credentials, error) {
	dir := filepath.Join(c.Root, bus.AuthDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, err
	}
	sup, err := bus.EnsureCredentials(filepath.Join(dir, bus.SupervisorCredFile), bus.UserSupervisor)
	if err != nil {
		return nil, nil, err
	}
	gw, err := bus.EnsureCredentials(filepath.Join(dir, bus.APIGWCredsFile), bus.UserAPIGW)
	if err != nil {
		return nil, nil, err
	}
	auth := &natsd.Auth{
		Static: map[string]natsd.User{
			sup.User: {Password: sup.Password, Permissions: bus.SupervisorPermissions(c.Node)},
			gw.User:  {Password: gw.Password, Permissions: bus.APIGWPermissions()},
		},
		Lookup: shimLookup(c),
	}
	return auth, sup, nil
}

// shimLookup finds the bus user of a shim of this node: its password is the
// one in its 0600 shim.json (read when it connects, so shims keep working
// across supervisor restarts), its permissions its own container's.
func shimLookup(c Config) func(user string) (natsd.User, bool) {
	node := c.Node
	shims := filepath.Join(c.ExecRoot, "shims")
	return func(user string) (natsd.User, bool) {
		unode, id, ok := bus.ParseShimUser(user)
		if !ok || (unode != "" && unode != node) {
			return natsd.User{}, false
		}
		data, err := os.ReadFile(filepath.Join(shims, id, bus.ShimConfigFile))
		if err != nil {
			return natsd.User{}, false
		}
		var sc bus.ShimConfig
		if json.Unmarshal(data, &sc) != nil || sc.ID != id || sc.Node != node || sc.NATSUser != user || sc.NATSPassword == "" {
			return natsd.User{}, false
		}
		return natsd.User{Password: sc.NATSPassword, Permissions: bus.ShimPermissions(node, id)}, true
	}
}

// connectExternal connects to an external NATS server, waiting for it while
// it is not reachable (it may start after the supervisor, or be restarting);
// refused credentials do not get better by waiting.
func connectExternal(ctx context.Context, o natsbus.Options, log *slog.Logger) (*nats.Conn, error) {
	delay := 250 * time.Millisecond
	for {
		nc, err := natsbus.Connect(o)
		if err == nil || errors.Is(err, nats.ErrAuthorization) || ctx.Err() != nil {
			return nc, err
		}
		log.Warn("the bus is not reachable yet; retrying", "url", o.URL, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func setupJetStream(nc *nats.Conn, log *slog.Logger) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Stream(ctx, bus.EventsStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        bus.EventsStream,
			Description: "berth events (docker events --since)",
			Subjects:    []string{bus.EventsAll},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      7 * 24 * time.Hour,
			MaxMsgs:     1_000_000,
			MaxBytes:    1 << 30,
		})
		if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("creating stream %s: %w", bus.EventsStream, err)
		}
		log.Info("created the events stream", "stream", bus.EventsStream)
	} else if err != nil {
		return nil, err
	}
	if _, err := js.ObjectStore(ctx, bus.UploadsBucket); errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      bus.UploadsBucket,
			Description: "request bodies (image tarballs) handed from apigw to the supervisor",
			Storage:     jetstream.FileStorage,
			TTL:         24 * time.Hour,
		})
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, fmt.Errorf("creating object store %s: %w", bus.UploadsBucket, err)
		}
	} else if err != nil {
		return nil, err
	}
	return js, nil
}

func (s *Supervisor) info() bus.Info {
	info := bus.Info{
		ID:              engineID(s.Config.Root),
		Name:            s.Config.Node,
		Images:          s.Images.Count(),
		Driver:          "overlayfs",
		RootDir:         s.Config.Root,
		CgroupVersion:   "1",
		OperatingSystem: osName(),
		NCPU:            runtime.NumCPU(),
		Runtime:         filepath.Base(s.Config.Runtime),
		SecurityOptions: []string{"name=seccomp,profile=builtin"},
	}
	if s.Config.UsernsRemap != "" {
		info.SecurityOptions = append(info.SecurityOptions, "name=userns")
	}
	if specconv.CgroupV2() {
		info.CgroupVersion = "2"
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		info.KernelVersion = unix.ByteSliceToString(u.Release[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		info.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	s.Containers.Info(&info)
	return info
}

// engineID is a stable ID of this installation, kept in <root>/engine-id.
func engineID(root string) string {
	p := filepath.Join(root, "engine-id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b))
	}
	id := containers.NewID()
	_ = containers.WriteFileAtomic(p, []byte(id+"\n"), 0o600)
	return id
}

func osName() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// Close stops the supervisor; containers and their shims keep running.
func (s *Supervisor) Close() {
	if s.stopMonitor != nil {
		s.stopMonitor()
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.httpSrv.Shutdown(ctx)
		cancel()
	}
	if s.Server != nil && s.Server.Containers != nil {
		s.Server.Stop(5 * time.Second)
	}
	if s.Conn != nil {
		_ = s.Conn.Drain()
		s.Conn.Close()
	}
	if s.nats != nil {
		s.nats.Shutdown()
	}
}

// Run starts the supervisor and runs it until ctx is done.
func Run(ctx context.Context, c Config) error {
	s, err := StartContext(ctx, c)
	if err != nil {
		return err
	}
	<-ctx.Done()
	s.log.Info("stopping; containers keep running")
	s.Close()
	return nil
}
