// Package specconv is the one place that maps a Docker container
// configuration (container.Config + HostConfig, merged with the image's
// config) to an OCI runtime spec.
package specconv

import (
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPath is the PATH a container gets when neither the image nor the
// container sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Merge fills the container config from the image config the way Docker's
// create does (daemon/commit.go merge): user, env (the container's entries
// win), labels, exposed ports, volumes, entrypoint/cmd, working dir, stop
// signal. The result is what `docker inspect` shows as Config.
func Merge(c *container.Config, img ocispec.ImageConfig) {
	if c.User == "" {
		c.User = img.User
	}
	if len(img.ExposedPorts) > 0 {
		if c.ExposedPorts == nil {
			c.ExposedPorts = nat.PortSet{}
		}
		for p := range img.ExposedPorts {
			if _, ok := c.ExposedPorts[nat.Port(p)]; !ok {
				c.ExposedPorts[nat.Port(p)] = struct{}{}
			}
		}
	}
	if len(c.Env) == 0 {
		c.Env = append([]string(nil), img.Env...)
	} else {
		for _, ie := range img.Env {
			k, _, _ := strings.Cut(ie, "=")
			found := false
			for _, ue := range c.Env {
				if uk, _, _ := strings.Cut(ue, "="); uk == k {
					found = true
					break
				}
			}
			if !found {
				c.Env = append(c.Env, ie)
			}
		}
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range img.Labels {
		if _, ok := c.Labels[k]; !ok {
			c.Labels[k] = v
		}
	}
	if len(c.Entrypoint) == 0 {
		if len(c.Cmd) == 0 {
			c.Cmd = append([]string(nil), img.Cmd...)
		}
		if c.Entrypoint == nil {
			c.Entrypoint = append([]string(nil), img.Entrypoint...)
		}
	}
	// `--entrypoint ""` sends [""]: it has kept the image's cmd out, and now
	// means no entrypoint (dockerd's mergeAndVerifyConfig)
	if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" {
		c.Entrypoint = nil
	}
	if c.WorkingDir == "" {
		c.WorkingDir = img.WorkingDir
	}
	if len(img.Volumes) > 0 {
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		for v := range img.Volumes {
			c.Volumes[v] = struct{}{}
		}
	}
	if c.StopSignal == "" {
		c.StopSignal = img.StopSignal
	}
}

// Args returns the process's argv from a merged config: entrypoint followed
// by cmd. It is empty when neither is set (Docker: "No command specified").
func Args(c *container.Config) []string {
	var args []string
	args = append(args, c.Entrypoint...)
	args = append(args, c.Cmd...)
	return args
}
