// Package dockermsg holds the bus messages that carry Docker's own API types
// (container.Config, HostConfig, the image config): the create command and
// the supervisor's container and image records, as apigw reads them. They
// live apart from package bus so that bus, which every shim links, pulls in
// none of Docker's packages (megabytes of resident memory per container).
package dockermsg

import (
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/bus"
)

// CreateRequest is POST /containers/create.
type CreateRequest struct {
	bus.Meta
	Name             string                    `json:"name,omitempty"`
	Config           *container.Config         `json:"config"`
	HostConfig       *container.HostConfig     `json:"hostConfig,omitempty"`
	NetworkingConfig *network.NetworkingConfig `json:"networkingConfig,omitempty"`
}

// CreateResponse answers CreateRequest.
type CreateResponse struct {
	ID       string   `json:"id"`
	Warnings []string `json:"warnings"`
}

// ExecCreateRequest is POST /containers/{id}/exec.
type ExecCreateRequest struct {
	bus.Meta
	ID     string                 `json:"id"`
	Config *container.ExecOptions `json:"config"`
}

// ExecCreateResponse answers ExecCreateRequest.
type ExecCreateResponse struct {
	ID string `json:"id"`
}

// State is a container's state as Docker's inspect shows it.
type State struct {
	Status     string    `json:"status"` // created running paused restarting removing exited dead
	Running    bool      `json:"running"`
	Paused     bool      `json:"paused"`
	Restarting bool      `json:"restarting"`
	OOMKilled  bool      `json:"oomKilled"`
	Dead       bool      `json:"dead"`
	Pid        int       `json:"pid"`
	ExitCode   int       `json:"exitCode"`
	Error      string    `json:"error"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Health is the healthcheck's state, for a container that has one.
	Health *container.Health `json:"health,omitempty"`
}

// Container is the supervisor's record of a container, as apigw reads it to
// answer inspect and list.
type Container struct {
	ID         string                `json:"id"`
	Name       string                `json:"name"` // with Docker's leading "/"
	Created    time.Time             `json:"created"`
	Path       string                `json:"path"`
	Args       []string              `json:"args"`
	Config     *container.Config     `json:"config"`
	HostConfig *container.HostConfig `json:"hostConfig"`
	Image      string                `json:"image"` // image ID, sha256:…
	// Layers are the image's layers (diffIDs, lowest first), held by the
	// container: `docker rmi -f` of its image keeps them, as Docker's
	// layer store does, until the container is removed.
	Layers       []digest.Digest `json:"layers,omitempty"`
	State        State           `json:"state"`
	RestartCount int             `json:"restartCount"`
	LogPath      string          `json:"logPath"`
	Driver       string          `json:"driver"`
	BundlePath   string          `json:"bundlePath"`
	RootfsPath   string          `json:"rootfsPath"`
	SizeRw       int64           `json:"sizeRw,omitempty"`
	// Files bind-mounted over the container's /etc/hostname, /etc/hosts and
	// /etc/resolv.conf (written at start, under the container's directory).
	HostnamePath   string `json:"hostnamePath,omitempty"`
	HostsPath      string `json:"hostsPath,omitempty"`
	ResolvConfPath string `json:"resolvConfPath,omitempty"`
	// Mounts are the container's binds, volumes and tmpfs mounts, resolved
	// at create (volume names to their directories).
	Mounts []MountPoint `json:"mounts,omitempty"`
	// HasBeenManuallyStopped: stopped or killed by a user, so the restart
	// policy does not bring it back (kept across supervisor restarts, which
	// matters for unless-stopped).
	HasBeenManuallyStopped bool `json:"hasBeenManuallyStopped,omitempty"`
	// NetworkSettings: the networks the container is configured on (kept
	// while stopped) and, while it runs, its addresses and published ports.
	NetworkSettings *container.NetworkSettings `json:"networkSettings,omitempty"`
}

// Image is the supervisor's record of an image.
type Image struct {
	ID           string              `json:"id"` // sha256:… of the config
	RepoTags     []string            `json:"repoTags"`
	RepoDigests  []string            `json:"repoDigests"`
	Created      time.Time           `json:"created"`
	Size         int64               `json:"size"`
	Architecture string              `json:"architecture"`
	OS           string              `json:"os"`
	Author       string              `json:"author,omitempty"`
	Comment      string              `json:"comment,omitempty"`
	Config       ocispec.ImageConfig `json:"config"`
	RootFS       ocispec.RootFS      `json:"rootfs"`
	History      []ocispec.History   `json:"history,omitempty"`
	Containers   int                 `json:"containers"` // containers using it
	// Healthcheck is the image's HEALTHCHECK (Docker's extension of the
	// OCI image config).
	Healthcheck *container.HealthConfig `json:"healthcheck,omitempty"`
}

// UpdateRequest is POST /containers/{id}/update.
type UpdateRequest struct {
	bus.Meta
	ID     string                  `json:"id"`
	Update *container.UpdateConfig `json:"update"`
}

// UpdateResponse answers UpdateRequest.
type UpdateResponse struct {
	Warnings []string `json:"warnings"`
}

// CommitRequest is POST /commit: a new image from a container's writable
// layer, with the container's config (Config overrides it, Changes apply
// on top).
type CommitRequest struct {
	bus.Meta
	Container string            `json:"container"`
	Repo      string            `json:"repo,omitempty"`
	Tag       string            `json:"tag,omitempty"`
	Comment   string            `json:"comment,omitempty"`
	Author    string            `json:"author,omitempty"`
	Changes   []string          `json:"changes,omitempty"`
	Config    *container.Config `json:"config,omitempty"`
	Pause     bool              `json:"pause,omitempty"`
}

// NetworkCreateRequest is POST /networks/create.
type NetworkCreateRequest struct {
	bus.Meta
	network.CreateRequest
}

// NetworkRequest names one network (ID, name or ID prefix).
type NetworkRequest struct {
	bus.Meta
	Network string `json:"network"`
}

// NetworkConnectRequest is POST /networks/{id}/connect and /disconnect.
type NetworkConnectRequest struct {
	bus.Meta
	Network        string                    `json:"network"`
	Container      string                    `json:"container"`
	EndpointConfig *network.EndpointSettings `json:"endpointConfig,omitempty"`
	Force          bool                      `json:"force,omitempty"` // disconnect
}

// NetworkPruneRequest is POST /networks/prune with its label and until
// filters, already parsed.
type NetworkPruneRequest struct {
	bus.Meta
	Filters map[string][]string `json:"filters,omitempty"`
}
