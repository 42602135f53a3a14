package dockermsg

import "github.com/docker/docker/api/types/container"

// ArchiveRequest is HEAD, GET and PUT /containers/{id}/archive, and (with
// Path empty) GET /containers/{id}/export.
type ArchiveRequest struct {
	ID                   string `json:"id"`
	Path                 string `json:"path,omitempty"`
	NoOverwriteDirNonDir bool   `json:"noOverwriteDirNonDir,omitempty"`
	CopyUIDGID           bool   `json:"copyUIDGID,omitempty"`
}

// ArchiveResponse answers an ArchiveRequest. Stream is the subject of the
// transfer (natsbus.Download or Upload) when there is content to move.
type ArchiveResponse struct {
	Stat   *container.PathStat `json:"stat,omitempty"`
	Stream string              `json:"stream,omitempty"`
}
