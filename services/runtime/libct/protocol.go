package libct

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"berth/services/runtime/seccomp"
)

// Messages between the runtime and the container-side init travel as JSON
// lines over a socketpair. The nsenter constructor writes the first one
// ("pid") before the Go runtime of the init even starts. The runtime's
// first line to the init is its initConfig; the type of the other
// messages is kept apart from it, so that the init, whose every message
// costs it the encoder of the type it sends, never builds one for the config.
type message struct {
	Type   string `json:"type"`
	Pid    int    `json:"pid,omitempty"`
	Forked bool   `json:"forked,omitempty"`
	Msg    string `json:"msg,omitempty"`
}

const (
	msgPid       = "pid"
	msgHooks     = "hooks"      // init: run prestart/createRuntime now
	msgHooksDone = "hooks-done" // runtime: done
	msgReady     = "ready"      // init: parked on the exec fifo
	msgError     = "error"

	// startFailed prefixes the init's errors, as runc's do (Docker's
	// messages show them).
	startFailed = "unable to start container process: "
	msgDebug    = "debug" // init: progress, for --debug
)

// initConfig is everything the create init needs.
type initConfig struct {
	ID           string            `json:"id"`
	Spec         json.RawMessage   `json:"spec"`              // config.json, decoded by the init only
	Seccomp      *seccomp.Filter   `json:"seccomp,omitempty"` // compiled by the runtime meanwhile
	Rootfs       string            `json:"rootfs"`
	NoPivot      bool              `json:"no_pivot"`
	NoNewKeyring bool              `json:"no_new_keyring"`
	PreserveFds  int               `json:"preserve_fds"`
	FifoFd       int               `json:"fifo_fd"`
	ConsoleFd    int               `json:"console_fd"`
	CgroupPaths  map[string]string `json:"cgroup_paths"`
	CgroupV2     bool              `json:"cgroup_v2"`
	UserNS       bool              `json:"user_ns"`
	CgroupNS     bool              `json:"cgroup_ns"`
	TimeNS       bool              `json:"time_ns"`
	State        json.RawMessage   `json:"state"`
	Debug        bool              `json:"debug"`
}

type channel struct {
	f *os.File
	r *bufio.Reader
}

func newChannel(f *os.File) *channel { return &channel{f: f, r: bufio.NewReader(f)} }

func (c *channel) send(m message) error { return c.sendJSON(m) }

func (c *channel) sendConfig(cfg *initConfig) error { return c.sendJSON(cfg) }

func (c *channel) sendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.f.Write(append(b, '\n'))
	return err
}

// recvConfig reads the runtime's first line (the init's side).
func (c *channel) recvConfig() (*initConfig, error) {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var cfg initConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// recv returns io.EOF when the other side is gone.
func (c *channel) recv() (message, error) {
	var m message
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		if len(line) == 0 {
			return m, io.EOF
		}
		return m, err
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("bad message from init: %w", err)
	}
	return m, nil
}
