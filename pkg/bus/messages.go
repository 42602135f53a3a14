package bus

import (
	"encoding/json"
	"time"

	"berth/pkg/errdefs"
)

// Messages are JSON. Those that carry Docker's own config types
// (container.Config, HostConfig, the image config) are in pkg/bus/dockermsg:
// those types travel unchanged, being the lingua franca of every client, but
// this package, linked by every shim, must not import them.

// Reply wraps every answer to a request: either Error or Data.
type Reply struct {
	Error *ReplyError     `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// ReplyError is an errdefs error on the wire.
type ReplyError struct {
	Kind    errdefs.Kind `json:"kind,omitempty"`
	Message string       `json:"message"`
}

// Meta is carried by every command that changes state. Key is the
// idempotency key: a command retried with the same key (after a timeout, or
// by a restarted apigw) is applied once and answered with the first answer.
type Meta struct {
	Key string `json:"key"`
}

// IDRequest names one container (by ID, ID prefix or name).
type IDRequest struct {
	Meta
	ID string `json:"id"`
}

// StopRequest is POST /containers/{id}/stop and /restart. Timeout nil means
// the container's StopTimeout or Docker's default of 10 seconds; -1 waits forever.
type StopRequest struct {
	Meta
	ID      string `json:"id"`
	Timeout *int   `json:"timeout,omitempty"`
	Signal  string `json:"signal,omitempty"`
}

// KillRequest is POST /containers/{id}/kill. Signal empty means SIGKILL.
type KillRequest struct {
	Meta
	ID     string `json:"id"`
	Signal string `json:"signal,omitempty"`
}

// RemoveRequest is DELETE /containers/{id}.
type RemoveRequest struct {
	Meta
	ID            string `json:"id"`
	Force         bool   `json:"force,omitempty"`
	RemoveVolumes bool   `json:"removeVolumes,omitempty"`
}

// RenameRequest is POST /containers/{id}/rename.
type RenameRequest struct {
	Meta
	ID      string `json:"id"`
	NewName string `json:"newName"`
}

// ListRequest is GET /containers/json; filtering is apigw's, on the records.
type ListRequest struct {
	All bool `json:"all,omitempty"`
}

// PruneRequest is POST /containers/prune: remove every stopped container
// matching the (already parsed) label and until filters.
type PruneRequest struct {
	Meta
	Filters map[string][]string `json:"filters,omitempty"`
}

// PruneResponse answers PruneRequest.
type PruneResponse struct {
	Deleted        []string `json:"deleted"`
	SpaceReclaimed uint64   `json:"spaceReclaimed"`
}

// LogsRequest is GET /containers/{id}/logs. The supervisor publishes
// LogChunk messages to Inbox until one has EOF set; with Follow it keeps
// going until the container stops or apigw publishes to Inbox+".cancel".
type LogsRequest struct {
	ID     string    `json:"id"`
	Inbox  string    `json:"inbox"`
	Follow bool      `json:"follow,omitempty"`
	Tail   int       `json:"tail"` // -1: all
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
	Stdout bool      `json:"stdout,omitempty"`
	Stderr bool      `json:"stderr,omitempty"`
}

// LogEntry is one record of a container's log (Docker's json-file line).
type LogEntry struct {
	Log    string            `json:"log"`
	Stream string            `json:"stream"`
	Attrs  map[string]string `json:"attrs,omitempty"`
	Time   time.Time         `json:"time"`
}

// LogChunk carries log records to a LogsRequest's inbox.
type LogChunk struct {
	Entries []LogEntry `json:"entries,omitempty"`
	EOF     bool       `json:"eof,omitempty"`
	Error   string     `json:"error,omitempty"`
}

// ImageRequest names one image (ID, ID prefix, name or name:tag).
type ImageRequest struct {
	Meta
	Name string `json:"name"`
}

// ImageTagRequest is POST /images/{name}/tag.
type ImageTagRequest struct {
	Meta
	Source string `json:"source"`
	Repo   string `json:"repo"`
	Tag    string `json:"tag"`
}

// ImageRemoveRequest is DELETE /images/{name}.
type ImageRemoveRequest struct {
	Meta
	Name    string `json:"name"`
	Force   bool   `json:"force,omitempty"`
	NoPrune bool   `json:"noPrune,omitempty"`
}

// ImageDeleted is one line of DELETE /images/{name}'s answer.
type ImageDeleted struct {
	Untagged string `json:"Untagged,omitempty"`
	Deleted  string `json:"Deleted,omitempty"`
}

// ImageImportRequest is POST /images/create?fromSrc=-: the tarball is the
// object Object in UploadsBucket, which the supervisor deletes when done.
type ImageImportRequest struct {
	Meta
	Object  string   `json:"object"`
	Repo    string   `json:"repo,omitempty"`
	Tag     string   `json:"tag,omitempty"`
	Changes []string `json:"changes,omitempty"` // Dockerfile instructions: ENV CMD ENTRYPOINT WORKDIR …
	Message string   `json:"message,omitempty"`
}

// ImageImportResponse answers ImageImportRequest.
type ImageImportResponse struct {
	ID string `json:"id"`
}

// ImagePullRequest is POST /images/create?fromImage=. The supervisor answers
// at once (or with an error) and streams ProgressChunks to Inbox; apigw
// publishes to Inbox+".cancel" when its client goes away.
type ImagePullRequest struct {
	Meta
	Ref      string `json:"ref"`                // name[:tag] or name@digest
	AllTags  bool   `json:"allTags,omitempty"`  // Ref is a name: pull every tag (docker pull -a)
	Platform string `json:"platform,omitempty"` // os/arch[/variant]
	Auth     string `json:"auth,omitempty"`     // X-Registry-Auth as the client sent it
	Inbox    string `json:"inbox"`
}

// ImagePushRequest is POST /images/{name}/push, streamed like a pull.
type ImagePushRequest struct {
	Meta
	Name  string `json:"name"`
	Tag   string `json:"tag,omitempty"`
	Auth  string `json:"auth,omitempty"`
	Inbox string `json:"inbox"`
}

// ProgressChunk carries lines of Docker's JSON progress stream (one JSON
// object each) of a pull or push; the last has Done, and Error if it failed.
type ProgressChunk struct {
	Lines []json.RawMessage `json:"lines,omitempty"`
	Done  bool              `json:"done,omitempty"`
	Error *ReplyError       `json:"error,omitempty"`
}

// ImageLoadRequest is POST /images/load: the tarball is the object Object
// in UploadsBucket, which the supervisor deletes when done.
type ImageLoadRequest struct {
	Meta
	Object string `json:"object"`
}

// ImageLoadResponse answers ImageLoadRequest: what docker load prints.
type ImageLoadResponse struct {
	Lines []string `json:"lines"` // "Loaded image: busybox:latest", "Loaded image ID: sha256:…"
}

// ImageSaveRequest is GET /images/get and /images/{name}/get.
type ImageSaveRequest struct {
	Names []string `json:"names"`
}

// ImageSaveResponse names the tarball the supervisor left in UploadsBucket;
// apigw streams it to the client and deletes it.
type ImageSaveResponse struct {
	Object string `json:"object"`
}

// ImageHistoryItem is one line of GET /images/{name}/history.
type ImageHistoryItem struct {
	ID        string   `json:"id"`
	Created   int64    `json:"created"`
	CreatedBy string   `json:"createdBy"`
	Tags      []string `json:"tags"`
	Size      int64    `json:"size"`
	Comment   string   `json:"comment"`
}

// ImagePruneRequest is POST /images/prune with its parsed filters
// (dangling, label, until).
type ImagePruneRequest struct {
	Meta
	Filters map[string][]string `json:"filters,omitempty"`
}

// ImagePruneResponse answers ImagePruneRequest.
type ImagePruneResponse struct {
	Deleted        []ImageDeleted `json:"deleted"`
	SpaceReclaimed uint64         `json:"spaceReclaimed"`
}

// ImageLoginRequest is POST /auth: the credentials to check.
type ImageLoginRequest struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// ImageUsage answers VerbImageUsage (docker system df): the unique size of
// every layer and, by image ID, the bytes it shares with other images.
type ImageUsage struct {
	LayersSize int64            `json:"layersSize"`
	Shared     map[string]int64 `json:"shared"`
}

// Info is the supervisor's part of GET /info.
type Info struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	Containers        int    `json:"containers"`
	ContainersRunning int    `json:"containersRunning"`
	ContainersPaused  int    `json:"containersPaused"`
	ContainersStopped int    `json:"containersStopped"`
	Images            int    `json:"images"`
	Driver            string `json:"driver"`
	RootDir           string `json:"rootDir"`
	CgroupVersion     string `json:"cgroupVersion"`
	KernelVersion     string `json:"kernelVersion"`
	OperatingSystem   string `json:"operatingSystem"`
	NCPU              int    `json:"ncpu"`
	MemTotal          int64  `json:"memTotal"`
	Runtime           string `json:"runtime"`
	// SecurityOptions as docker info lists them ("name=seccomp,profile=builtin", "name=userns")
	SecurityOptions []string `json:"securityOptions,omitempty"`
}

// Event is one event, the shape of Docker's events.Message so that apigw
// passes it through and a plain NATS subscriber reads the same thing.
type Event struct {
	Type     string `json:"Type"`   // container, image, network, volume
	Action   string `json:"Action"` // create, start, die, …
	Actor    Actor  `json:"Actor"`
	Scope    string `json:"scope"` // "local"
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// Actor is the object of an event.
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// ShimStartResponse answers ShimStart.
type ShimStartResponse struct {
	Pid int `json:"pid"`
}

// ShimKillRequest asks a shim to signal its container.
type ShimKillRequest struct {
	Signal int  `json:"signal"`
	All    bool `json:"all,omitempty"`
}

// ShimStateResponse answers ShimState.
type ShimStateResponse struct {
	Pid    int    `json:"pid"`
	Status string `json:"status"` // created running stopped paused
}

// ShimResizeRequest sets the container's terminal size, or that of exec
// process ExecID.
type ShimResizeRequest struct {
	Height uint16 `json:"height"`
	Width  uint16 `json:"width"`
	ExecID string `json:"execId,omitempty"`
}

// ExitReport is a shim's report that its container's process exited. The
// shim keeps it on disk until the supervisor has acknowledged it, so an exit
// seen while the supervisor or the bus is away is never lost.
type ExitReport struct {
	ID        string    `json:"id"`
	Pid       int       `json:"pid"`
	ExitCode  int       `json:"exitCode"`
	ExitedAt  time.Time `json:"exitedAt"`
	OOMKilled bool      `json:"oomKilled,omitempty"`
	Error     string    `json:"error,omitempty"` // why, when the shim itself failed
}

// TopRequest is GET /containers/{id}/top: ps run on the container's node
// with PsArgs ("" means -ef), its lines kept for the container's processes.
type TopRequest struct {
	ID     string `json:"id"`
	PsArgs string `json:"psArgs,omitempty"`
}

// TopResponse answers TopRequest (Docker's ContainerTopOKBody).
type TopResponse struct {
	Titles    []string   `json:"Titles"`
	Processes [][]string `json:"Processes"`
}

// ShimUpdateRequest carries new cgroup limits for the runtime's update
// (an OCI LinuxResources, passed through as it is).
type ShimUpdateRequest struct {
	Resources json.RawMessage `json:"resources"`
}

// ShimPidsResponse answers ShimPids: the container's processes (host pids).
type ShimPidsResponse struct {
	Pids []int `json:"pids"`
}

// ExecStartRequest is POST /exec/{id}/start.
type ExecStartRequest struct {
	Meta
	ExecID      string   `json:"execId"`
	Detach      bool     `json:"detach,omitempty"`
	ConsoleSize *[2]uint `json:"consoleSize,omitempty"` // height, width
}

// ExecStartResponse answers ExecStartRequest: what apigw needs to carry the
// process's streams.
type ExecStartResponse struct {
	ContainerID  string `json:"containerId"`
	Pid          int    `json:"pid"`
	Tty          bool   `json:"tty,omitempty"`
	AttachStdin  bool   `json:"attachStdin,omitempty"`
	AttachStdout bool   `json:"attachStdout,omitempty"`
	AttachStderr bool   `json:"attachStderr,omitempty"`
	DetachKeys   string `json:"detachKeys,omitempty"`
}

// ExecInspect is GET /exec/{id}/json, in Docker's shape.
type ExecInspect struct {
	ID            string            `json:"ID"`
	Running       bool              `json:"Running"`
	ExitCode      *int              `json:"ExitCode"`
	ProcessConfig ExecProcessConfig `json:"ProcessConfig"`
	OpenStdin     bool              `json:"OpenStdin"`
	OpenStderr    bool              `json:"OpenStderr"`
	OpenStdout    bool              `json:"OpenStdout"`
	CanRemove     bool              `json:"CanRemove"`
	ContainerID   string            `json:"ContainerID"`
	DetachKeys    []byte            `json:"DetachKeys"`
	Pid           int               `json:"Pid"`
}

// ExecProcessConfig is ExecInspect's ProcessConfig.
type ExecProcessConfig struct {
	Tty        bool     `json:"tty"`
	Entrypoint string   `json:"entrypoint"`
	Arguments  []string `json:"arguments"`
	Privileged *bool    `json:"privileged,omitempty"`
	User       string   `json:"user,omitempty"`
}

// ShimExecRequest asks a shim to run a process in its container (`runtime
// exec --detach`) and hold its stdio as it holds the container's: output
// to ExecIOOut, stdin from ExecIOIn, its exit reported (ExecExitReport).
type ShimExecRequest struct {
	ExecID  string          `json:"execId"`
	Process json.RawMessage `json:"process"` // the OCI process (specs.Process), built by the supervisor
	Tty     bool            `json:"tty,omitempty"`
	Stdin   bool            `json:"stdin,omitempty"` // a stdin pipe; /dev/null otherwise
	Stdout  bool            `json:"stdout,omitempty"`
	Stderr  bool            `json:"stderr,omitempty"`
	// Probe runs the process to its end and answers with its exit code and
	// the first OutputLimit bytes of its output: a healthcheck. Nothing goes
	// on the IO subjects and no report is sent; after TimeoutMs it is killed.
	Probe       bool  `json:"probe,omitempty"`
	TimeoutMs   int64 `json:"timeoutMs,omitempty"`
	OutputLimit int   `json:"outputLimit,omitempty"`
}

// ShimExecResponse answers ShimExecRequest.
type ShimExecResponse struct {
	Pid      int    `json:"pid"`
	ExitCode int    `json:"exitCode,omitempty"` // Probe
	Output   string `json:"output,omitempty"`   // Probe
	TimedOut bool   `json:"timedOut,omitempty"` // Probe
}

// ExecExitReport is a shim's report that an exec process ended. The shim
// sends the EOF of the process's output only once the supervisor has taken
// it, so a client that inspects the exec at EOF (docker exec) finds its
// exit code.
type ExecExitReport struct {
	ExecID   string    `json:"execId"`
	Pid      int       `json:"pid"`
	ExitCode int       `json:"exitCode"`
	ExitedAt time.Time `json:"exitedAt"`
}
