package specconv

import (
	"time"

	"github.com/docker/docker/api/types/container"

	"berth/pkg/errdefs"
)

// Docker's healthcheck defaults.
const (
	DefaultHealthInterval      = 30 * time.Second
	DefaultHealthTimeout       = 30 * time.Second
	DefaultHealthStartInterval = 5 * time.Second
	DefaultHealthRetries       = 3
)

// MergeHealthcheck fills the container's healthcheck from the image's, as
// Docker's create does: no healthcheck of its own takes the image's, and a
// field left zero takes the image's value.
func MergeHealthcheck(c *container.Config, img *container.HealthConfig) {
	if img == nil {
		return
	}
	if c.Healthcheck == nil {
		h := *img
		h.Test = append([]string(nil), img.Test...)
		c.Healthcheck = &h
		return
	}
	h := c.Healthcheck
	if len(h.Test) == 0 {
		h.Test = append([]string(nil), img.Test...)
	}
	if h.Interval == 0 {
		h.Interval = img.Interval
	}
	if h.Timeout == 0 {
		h.Timeout = img.Timeout
	}
	if h.StartPeriod == 0 {
		h.StartPeriod = img.StartPeriod
	}
	if h.StartInterval == 0 {
		h.StartInterval = img.StartInterval
	}
	if h.Retries == 0 {
		h.Retries = img.Retries
	}
}

// ValidateHealthcheck rejects what Docker's create rejects.
func ValidateHealthcheck(h *container.HealthConfig) error {
	if h == nil {
		return nil
	}
	const minimum = time.Millisecond
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", h.Interval}, {"Timeout", h.Timeout}, {"StartPeriod", h.StartPeriod}, {"StartInterval", h.StartInterval}} {
		if d.v != 0 && d.v < minimum {
			return errdefs.New(errdefs.InvalidParameter, "%s in Healthcheck cannot be less than %s", d.name, minimum)
		}
	}
	if h.Retries < 0 {
		return errdefs.New(errdefs.InvalidParameter, "Retries in Healthcheck cannot be negative")
	}
	return nil
}

// ProbeCommand is the command a healthcheck runs: ["CMD", args…] runs args,
// ["CMD-SHELL", cmd] runs cmd with shell (the container's Shell), /bin/sh -c
// when empty. It is nil for none: no Test, or ["NONE"], or a type Docker
// does not know either.
func ProbeCommand(h *container.HealthConfig, shell []string) []string {
	if h == nil || len(h.Test) == 0 {
		return nil
	}
	switch h.Test[0] {
	case "CMD":
		if len(h.Test) > 1 {
			return append([]string(nil), h.Test[1:]...)
		}
	case "CMD-SHELL":
		if len(h.Test) > 1 {
			if len(shell) == 0 {
				shell = []string{"/bin/sh", "-c"}
			}
			return append(append([]string(nil), shell...), h.Test[1:]...)
		}
	}
	return nil
}
