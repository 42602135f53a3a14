package image

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"berth/pkg/errdefs"
)

// takeHealthcheck takes the HEALTHCHECK instructions out of changes
// (docker import --change) and returns the others and the last
// healthcheck, parsed as the Dockerfile instruction:
//
//	HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D] [--retries=N] CMD command
//	HEALTHCHECK NONE
func takeHealthcheck(changes []string) ([]string, *container.HealthConfig, error) {
	var rest []string
	var hc *container.HealthConfig
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		instr, args, _ := strings.Cut(ch, " ")
		if !strings.EqualFold(instr, "HEALTHCHECK") {
			rest = append(rest, ch)
			continue
		}
		h, err := parseHealthcheck(strings.TrimSpace(args))
		if err != nil {
			return nil, nil, errdefs.New(errdefs.InvalidParameter, "HEALTHCHECK: %v", err)
		}
		hc = h
	}
	return rest, hc, nil
}

func parseHealthcheck(s string) (*container.HealthConfig, error) {
	h := &container.HealthConfig{}
	for strings.HasPrefix(s, "--") {
		flag, after, _ := strings.Cut(s, " ")
		s = strings.TrimSpace(after)
		name, val, ok := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		if !ok {
			return nil, fmt.Errorf("flag --%s needs a value (--%s=…)", name, name)
		}
		if name == "retries" {
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("invalid --retries %q", val)
			}
			h.Retries = n
			continue
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			return nil, fmt.Errorf("invalid --%s %q: %v", name, val, err)
		}
		switch name {
		case "interval":
			h.Interval = d
		case "timeout":
			h.Timeout = d
		case "start-period":
			h.StartPeriod = d
		case "start-interval":
			h.StartInterval = d
		default:
			return nil, fmt.Errorf("unknown flag: --%s", name)
		}
	}
	typ, cmd, _ := strings.Cut(s, " ")
	cmd = strings.TrimSpace(cmd)
	switch strings.ToUpper(typ) {
	case "NONE":
		if cmd != "" || h.Interval != 0 || h.Timeout != 0 || h.StartPeriod != 0 || h.StartInterval != 0 || h.Retries != 0 {
			return nil, fmt.Errorf("HEALTHCHECK NONE takes no arguments")
		}
		return &container.HealthConfig{Test: []string{"NONE"}}, nil
	case "CMD":
		if cmd == "" {
			return nil, fmt.Errorf("missing command after HEALTHCHECK CMD")
		}
		var args []string
		if strings.HasPrefix(cmd, "[") && json.Unmarshal([]byte(cmd), &args) == nil {
			h.Test = append([]string{"CMD"}, args...)
		} else {
			h.Test = []string{"CMD-SHELL", cmd}
		}
		return h, nil
	}
	return nil, fmt.Errorf("unknown type %q (expected CMD or NONE)", typ)
}
