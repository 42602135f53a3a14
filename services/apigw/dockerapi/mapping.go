package dockerapi

//lint:file-ignore SA1019 events keep the legacy status/id/from fields that older API clients still read

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/storage"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
)

// TimestampFormat is Docker's fixed-width RFC3339Nano used for log timestamps.
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return time.Time{}.Format(time.RFC3339Nano) // "0001-01-01T00:00:00Z", like Docker
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ContainerName returns a record's name with Docker's leading slash.
func ContainerName(c *dockermsg.Container) string {
	if strings.HasPrefix(c.Name, "/") {
		return c.Name
	}
	return "/" + c.Name
}

// Tty reports whether the container was created with a terminal.
func Tty(c *dockermsg.Container) bool { return c.Config != nil && c.Config.Tty }

// ContainerInspect maps a record to GET /containers/{id}/json.
func ContainerInspect(c *dockermsg.Container) container.InspectResponse {
	hc := c.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	cfg := c.Config
	if cfg == nil {
		cfg = &container.Config{}
	}
	args := c.Args
	if args == nil {
		args = []string{}
	}
	driver := c.Driver
	if driver == "" {
		driver = "overlay2"
	}
	netMode := string(hc.NetworkMode)
	if netMode == "" {
		netMode = "bridge"
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:      c.ID,
			Created: formatTime(c.Created),
			Path:    c.Path,
			Args:    args,
			State: &container.State{
				Status:     c.State.Status,
				Running:    c.State.Running,
				Paused:     c.State.Paused,
				Restarting: c.State.Restarting,
				OOMKilled:  c.State.OOMKilled,
				Dead:       c.State.Dead,
				Pid:        c.State.Pid,
				ExitCode:   c.State.ExitCode,
				Error:      c.State.Error,
				StartedAt:  formatTime(c.State.StartedAt),
				FinishedAt: formatTime(c.State.FinishedAt),
			},
			Image:          c.Image,
			ResolvConfPath: c.ResolvConfPath,
			HostnamePath:   c.HostnamePath,
			HostsPath:      c.HostsPath,
			LogPath:        c.LogPath,
			Name:           ContainerName(c),
			RestartCount:   c.RestartCount,
			Driver:         driver,
			Platform:       "linux",
			HostConfig:     hc,
			GraphDriver: storage.DriverData{
				Name: driver,
				Data: map[string]string{},
			},
		},
		Mounts:          dockermsg.InspectMounts(c.Mounts),
		Config:          cfg,
		NetworkSettings: inspectNetworkSettings(c, netMode),
	}
}

// inspectNetworkSettings is the record's NetworkSettings (an older record
// without: its network mode's network, empty), with Docker's empty values.
func inspectNetworkSettings(c *dockermsg.Container, netMode string) *container.NetworkSettings {
	ns := &container.NetworkSettings{}
	if c.NetworkSettings != nil {
		*ns = *c.NetworkSettings
	} else if !strings.HasPrefix(netMode, "container:") {
		ns.Networks = map[string]*network.EndpointSettings{netMode: {}}
	}
	if ns.Networks == nil {
		ns.Networks = map[string]*network.EndpointSettings{}
	}
	if ns.Ports == nil {
		ns.Ports = nat.PortMap{}
	}
	return ns
}

// summaryPorts are `docker ps`'s ports: every published one, and the
// exposed ones without a host port.
func summaryPorts(c *dockermsg.Container) []container.Port {
	out := []container.Port{}
	if c.NetworkSettings == nil {
		return out
	}
	for p, bs := range c.NetworkSettings.Ports {
		if len(bs) == 0 {
			out = append(out, container.Port{PrivatePort: uint16(p.Int()), Type: p.Proto()})
		}
		for _, b := range bs {
			hp, _ := strconv.Atoi(b.HostPort)
			out = append(out, container.Port{IP: b.HostIP, PrivatePort: uint16(p.Int()), PublicPort: uint16(hp), Type: p.Proto()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PrivatePort != out[j].PrivatePort {
			return out[i].PrivatePort < out[j].PrivatePort
		}
		return out[i].PublicPort < out[j].PublicPort
	})
	return out
}

// StatusString is the human status of `docker ps` ("Up 3 seconds", "Exited (0) 2 minutes ago").
func StatusString(s dockermsg.State, now time.Time) string {
	switch {
	case s.Running && s.Paused:
		return fmt.Sprintf("Up %s (Paused)", units.HumanDuration(now.Sub(s.StartedAt)))
	case s.Running && s.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
	case s.Running:
		return "Up " + units.HumanDuration(now.Sub(s.StartedAt))
	case s.Status == container.StateRemoving:
		return "Removal In Progress"
	case s.Dead || s.Status == container.StateDead:
		return "Dead"
	case s.StartedAt.IsZero() || s.Status == container.StateCreated:
		return "Created"
	case s.FinishedAt.IsZero():
		return ""
	}
	return fmt.Sprintf("Exited (%d) %s ago", s.ExitCode, units.HumanDuration(now.Sub(s.FinishedAt)))
}

// Command is `docker ps`'s COMMAND column.
func Command(c *dockermsg.Container) string {
	if len(c.Args) == 0 {
		return c.Path
	}
	return c.Path + " " + strings.Join(c.Args, " ")
}

// ContainerSummary maps a record to one entry of GET /containers/json.
func ContainerSummary(c *dockermsg.Container, now time.Time) container.Summary {
	var labels map[string]string
	imageName := c.Image
	if c.Config != nil {
		labels = c.Config.Labels
		if c.Config.Image != "" {
			imageName = c.Config.Image
		}
	}
	if labels == nil {
		labels = map[string]string{}
	}
	netMode := "bridge"
	if c.HostConfig != nil && c.HostConfig.NetworkMode != "" {
		netMode = string(c.HostConfig.NetworkMode)
	}
	s := container.Summary{
		ID:      c.ID,
		Names:   []string{ContainerName(c)},
		Image:   imageName,
		ImageID: c.Image,
		Command: Command(c),
		Created: c.Created.Unix(),
		Ports:   summaryPorts(c),
		SizeRw:  c.SizeRw,
		Labels:  labels,
		State:   c.State.Status,
		Status:  StatusString(c.State, now),
		NetworkSettings: &container.NetworkSettingsSummary{
			Networks: inspectNetworkSettings(c, netMode).Networks,
		},
		Mounts: dockermsg.InspectMounts(c.Mounts),
	}
	s.HostConfig.NetworkMode = netMode
	return s
}

// SortContainers orders records like Docker's list: newest first.
func SortContainers(cs []dockermsg.Container) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Created.After(cs[j].Created) })
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ImageSummary maps an image record to one entry of GET /images/json.
func ImageSummary(im *dockermsg.Image) image.Summary {
	labels := im.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return image.Summary{
		Containers:  int64(im.Containers),
		Created:     im.Created.Unix(),
		ID:          im.ID,
		Labels:      labels,
		RepoDigests: nonNil(im.RepoDigests),
		RepoTags:    nonNil(im.RepoTags),
		SharedSize:  -1,
		Size:        im.Size,
	}
}

// ImageInspect maps an image record to GET /images/{name}/json.
func ImageInspect(im *dockermsg.Image) image.InspectResponse {
	layers := make([]string, 0, len(im.RootFS.DiffIDs))
	for _, d := range im.RootFS.DiffIDs {
		layers = append(layers, d.String())
	}
	rootType := im.RootFS.Type
	if rootType == "" {
		rootType = "layers"
	}
	created := ""
	if !im.Created.IsZero() {
		created = formatTime(im.Created)
	}
	arch, os := im.Architecture, im.OS
	if os == "" {
		os = "linux"
	}
	return image.InspectResponse{
		ID:           im.ID,
		RepoTags:     nonNil(im.RepoTags),
		RepoDigests:  nonNil(im.RepoDigests),
		Comment:      im.Comment,
		Created:      created,
		Author:       im.Author,
		Config:       &dockerspec.DockerOCIImageConfig{ImageConfig: im.Config},
		Architecture: arch,
		Os:           os,
		Size:         im.Size,
		GraphDriver:  storage.DriverData{Name: "overlay2", Data: map[string]string{}},
		RootFS:       image.RootFS{Type: rootType, Layers: layers},
		Metadata:     image.Metadata{},
	}
}

// EventMessage maps a bus event to Docker's events.Message, filling the
// legacy status/id/from fields the older clients read.
func EventMessage(ev *bus.Event) events.Message {
	m := events.Message{
		Type:     events.Type(ev.Type),
		Action:   events.Action(ev.Action),
		Actor:    events.Actor{ID: ev.Actor.ID, Attributes: ev.Actor.Attributes},
		Scope:    ev.Scope,
		Time:     ev.Time,
		TimeNano: ev.TimeNano,
	}
	if m.Scope == "" {
		m.Scope = "local"
	}
	if m.Actor.Attributes == nil {
		m.Actor.Attributes = map[string]string{}
	}
	if m.TimeNano == 0 && m.Time != 0 {
		m.TimeNano = m.Time * int64(time.Second)
	}
	if m.Time == 0 && m.TimeNano != 0 {
		m.Time = m.TimeNano / int64(time.Second)
	}
	switch m.Type {
	case events.ContainerEventType:
		m.Status = string(m.Action)
		m.ID = m.Actor.ID
		m.From = m.Actor.Attributes["image"]
	case events.ImageEventType:
		m.Status = string(m.Action)
		m.ID = m.Actor.ID
	}
	return m
}
