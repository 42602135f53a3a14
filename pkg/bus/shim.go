package bus

// ShimConfig is what the supervisor writes to <exec-root>/shims/<id>/shim.json
// before it runs `berth-shim start --config <that file>`.
type ShimConfig struct {
	ID          string `json:"id"`          // container ID (a subject token)
	Node        string `json:"node"`        // node name (a subject token)
	Bundle      string `json:"bundle"`      // OCI bundle: config.json and rootfs
	Runtime     string `json:"runtime"`     // path of the runc-compatible runtime binary
	RuntimeRoot string `json:"runtimeRoot"` // the runtime's --root (its state directory)

	NATSURL      string `json:"natsURL"`
	NATSUser     string `json:"natsUser,omitempty"`
	NATSPassword string `json:"natsPassword,omitempty"`

	LogPath     string `json:"logPath"`               // json-file log, e.g. <root>/containers/<id>/<id>-json.log
	LogMaxSize  int64  `json:"logMaxSize,omitempty"`  // bytes; 0: no rotation
	LogMaxFiles int    `json:"logMaxFiles,omitempty"` // files kept, current included; 0 means 1
	// LogAttrs go in every record's "attrs" (the labels, env and tag log
	// options), which `docker logs --details` shows.
	LogAttrs map[string]string `json:"logAttrs,omitempty"`

	Tty       bool `json:"tty,omitempty"`
	OpenStdin bool `json:"openStdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"` // close the container's stdin on the first stdin EOF

	// StateDir is the shim's own directory (<exec-root>/shims/<id>):
	// shim.pid, shim.log, exit.json, init.pid, runtime.log, metrics.addr.
	StateDir string `json:"stateDir"`

	// StartOnCreate makes the shim start the container right after creating
	// it (runtime create, then runtime start) before it reports ready, so
	// that the supervisor needs no ShimStart round trip. ShimStarted.Started
	// tells the caller that it happened.
	StartOnCreate bool `json:"startOnCreate,omitempty"`
	// LoopbackUp makes the shim bring up "lo" in the container's network
	// namespace between create and start (a container with a network
	// namespace of its own, e.g. --network none).
	LoopbackUp bool `json:"loopbackUp,omitempty"`
}

// Files a shim keeps in its StateDir.
const (
	ShimConfigFile  = "shim.json"    // ShimConfig, written by the supervisor
	ShimPidFile     = "shim.pid"     // the shim daemon's pid
	ShimExitFile    = "exit.json"    // ExitReport not yet acknowledged
	ShimLogFile     = "shim.log"     // the shim's own slog output
	ShimInitPidFile = "init.pid"     // the container's init pid (runtime --pid-file)
	ShimMetricsFile = "metrics.addr" // host:port of the shim's /metrics
)

// ShimStarted is the one JSON line `berth-shim start` prints on success.
type ShimStarted struct {
	Pid     int  `json:"pid"`               // the shim daemon
	InitPid int  `json:"initPid"`           // the container's init process (created, not started)
	Started bool `json:"started,omitempty"` // StartOnCreate: the container was started too
}

// ShimReady is the one JSON line `berth-shim daemon` writes on its ready
// pipe (fd 3) once the container is created (and, with StartOnCreate,
// started), or once it has failed and cleaned up after itself.
type ShimReady struct {
	ShimStarted
	Error string `json:"error,omitempty"`
	// Stage is where it failed: ShimStageCreate or ShimStageStart.
	Stage string `json:"stage,omitempty"`
}

// Stages of ShimReady.Stage.
const (
	ShimStageCreate = "create"
	ShimStageStart  = "start"
)
