package dockermsg

import (
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"

	"berth/pkg/bus"
)

// MountPoint is one of a container's mounts as the supervisor records it:
// the fields of Docker's inspect (Mounts), and what a start needs to mount it.
type MountPoint struct {
	Type        mount.Type        `json:"type"`
	Name        string            `json:"name,omitempty"`   // the volume's name
	Source      string            `json:"source,omitempty"` // host path: a bind's source, a volume's _data
	Destination string            `json:"destination"`
	Driver      string            `json:"driver,omitempty"`
	Mode        string            `json:"mode,omitempty"` // as the user wrote it (-v …:ro,z); "z" for a -v volume
	RW          bool              `json:"rw"`
	Propagation mount.Propagation `json:"propagation,omitempty"`

	// Anonymous: a volume made for this container (no name was given),
	// which `docker rm -v` and --rm remove with it.
	Anonymous bool `json:"anonymous,omitempty"`
	// CopyData: on the first start, the image's content at Destination is
	// copied into the volume if the volume is empty (cleared once done).
	CopyData bool `json:"copyData,omitempty"`
	// Subpath mounts a directory inside the volume (--mount volume-subpath).
	Subpath string `json:"subpath,omitempty"`
	// CreateSource: a missing bind source directory is made at start (-v,
	// or --mount bind-create-src).
	CreateSource bool `json:"createSource,omitempty"`
	// NonRecursive: a plain bind (bind-recursive=disabled) instead of rbind.
	NonRecursive bool `json:"nonRecursive,omitempty"`
	// ReadOnlyNonRecursive: read-only on the top mount only
	// (bind-recursive=writable); otherwise a read-only bind is read-only
	// recursively, like Docker on kernels with mount_setattr.
	ReadOnlyNonRecursive bool `json:"readOnlyNonRecursive,omitempty"`
	// TmpfsOptions are a tmpfs mount's size, mode and exec options.
	TmpfsOptions []string `json:"tmpfsOptions,omitempty"`
}

// InspectMounts maps the records to Docker's inspect Mounts.
func InspectMounts(mps []MountPoint) []container.MountPoint {
	out := make([]container.MountPoint, 0, len(mps))
	for _, m := range mps {
		out = append(out, container.MountPoint{
			Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
			Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation,
		})
	}
	return out
}

// VolumeCreateRequest is POST /volumes/create.
type VolumeCreateRequest struct {
	bus.Meta
	Name       string            `json:"name,omitempty"`
	Driver     string            `json:"driver,omitempty"`
	DriverOpts map[string]string `json:"driverOpts,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// VolumeRequest names one volume (inspect, remove).
type VolumeRequest struct {
	bus.Meta
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
}

// VolumeListRequest is GET /volumes with its (validated) filters: dangling,
// driver, label, name.
type VolumeListRequest struct {
	Filters map[string][]string `json:"filters,omitempty"`
}

// VolumePruneRequest is POST /volumes/prune: label, label! and all.
type VolumePruneRequest struct {
	bus.Meta
	Filters map[string][]string `json:"filters,omitempty"`
}

// VolumePruneResponse answers VolumePruneRequest.
type VolumePruneResponse struct {
	Deleted        []string `json:"deleted"`
	SpaceReclaimed uint64   `json:"spaceReclaimed"`
}
