// Package hooks runs OCI lifecycle hooks: each hook gets the container
// state JSON on stdin, its own args and env, and is killed when its timeout
// expires. Which namespace a hook runs in is decided by the caller
// (prestart/createRuntime/poststart/poststop in the runtime's, the
// createContainer/startContainer ones from the container's init).
package hooks

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Run runs the hooks in order and stops at the first failure.
func Run(kind string, hs []specs.Hook, state []byte) error {
	for i, h := range hs {
		if err := runOne(h, state); err != nil {
			return fmt.Errorf("%s hook #%d (%s): %w", kind, i, h.Path, err)
		}
	}
	return nil
}

func runOne(h specs.Hook, state []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("invalid timeout %d", *h.Timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	} else {
		cmd.Args = []string{h.Path}
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			msg = strings.ReplaceAll(msg, "\n", "; ")
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}
