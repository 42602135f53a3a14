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

	Tty       bool `json:"tty,omitempty"`
	OpenStdin bool `json:"openStdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"` // close the container's stdin on the first stdin EOF

	// StateDir is the shim's own directory (<exec-root>/shims/<id>):
	// shim.pid, shim.log, exit.json, init.pid, runtime.log, metrics.addr.
	StateDir string `json:"stateDir"`
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
	Pid     int `json:"pid"`     // the shim daemon
	InitPid int `json:"initPid"` // the container's init process (created, not started)
}
