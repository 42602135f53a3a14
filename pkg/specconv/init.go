package specconv

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/errdefs"
)

// InitBinary is where the init of `--init` is bind-mounted in the
// container, as Docker mounts its docker-init.
const InitBinary = "/sbin/docker-init"

// applyInit puts the init (HostConfig.Init) at PID 1, running the
// container's command.
func applyInit(s *specs.Spec, initPath string) error {
	if initPath == "" {
		return errdefs.New(errdefs.InvalidParameter, "--init: no init binary is configured (berth-supervisor --init-path)")
	}
	s.Process.Args = append([]string{InitBinary, "--"}, s.Process.Args...)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: InitBinary, Type: "bind", Source: initPath, Options: []string{"bind", "ro"}})
	return nil
}
