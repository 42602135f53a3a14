// Package libct is the container lifecycle: create (the parent side that
// starts the init and waits until it is parked on the exec fifo), the
// container-side init, start, state, kill, delete, exec, pause/resume,
// update, and the state kept on disk between invocations.
//
// State lives in <root>/<id>/state.json next to the exec fifo, as in runc.
// The status is derived, not stored: the init's pid plus its start time
// (so a recycled pid is never mistaken for the container), the fifo (still
// there: created), and the freezer (paused).
package libct

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/services/runtime/cgroups"
	"berth/services/runtime/seccomp"
)

// Status values (the OCI ones).
const (
	Creating = "creating"
	Created  = "created"
	Running  = "running"
	Stopped  = "stopped"
	Paused   = "paused"
)

const (
	stateFile = "state.json"
	// the container's seccomp filter as create compiled it, for its execs
	filterFile = "seccomp.bpf"
	fifoName   = "exec.fifo"
	// there when the spec has poststart hooks: start's C path (package
	// faststart) then leaves the start to Go
	poststartMarker = "poststart"
)

// State is what is persisted about a container.
type State struct {
	ID        string            `json:"id"`
	Bundle    string            `json:"bundle"`
	Rootfs    string            `json:"rootfs"`
	Pid       int               `json:"pid"`
	StartTime uint64            `json:"start_time"`
	Created   time.Time         `json:"created"`
	Owner     string            `json:"owner"`
	Cgroups   map[string]string `json:"cgroups"`
	// Config is config.json as create read it, kept undecoded: most
	// commands need a few of its fields at most, and a cold process pays
	// more for decoding (or encoding) the whole spec than for the rest of
	// its work. Spec and part decode it.
	Config json.RawMessage `json:"config"`
	// NoSeccomp: the spec has no seccomp profile (else filterFile has it).
	NoSeccomp bool `json:"no_seccomp,omitempty"`

	dir string
}

// configPart is what start, delete and the OCI state read of the spec.
type configPart struct {
	Hooks       *specs.Hooks      `json:"hooks"`
	Annotations map[string]string `json:"annotations"`
}

// Spec decodes the whole spec.
func (s *State) Spec() (*specs.Spec, error) {
	var spec specs.Spec
	if err := json.Unmarshal(s.Config, &spec); err != nil {
		return nil, fmt.Errorf("container %q: corrupt state: %w", s.ID, err)
	}
	return &spec, nil
}

// part decodes the hooks and annotations only (Load checked the JSON).
func (s *State) part() configPart {
	var p configPart
	_ = json.Unmarshal(s.Config, &p)
	return p
}

// OCIState is the state JSON printed by `state` and given to hooks.
type OCIState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ValidateID rejects ids that are empty or could leave the state directory.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("container id cannot be empty")
	}
	if !validIDChars(id) || id == "." || id == ".." || len(id) > 1024 {
		return fmt.Errorf("invalid container id format: %q", id)
	}
	return nil
}

// validIDChars is runc's ^[\w+\-.]+$ without the regexp package.
func validIDChars(id string) bool {
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// Load reads the state of container id under root.
func Load(root, id string) (*State, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %q does not exist", id)
		}
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("container %q: corrupt state: %w", id, err)
	}
	s.dir = dir
	return &s, nil
}

// filter is the container's seccomp filter (nil for none): the one create
// compiled, or (a container of an older runtime) compiled from the spec now.
func (s *State) filter() (*seccomp.Filter, error) {
	if s.NoSeccomp {
		return nil, nil
	}
	if b, err := os.ReadFile(filepath.Join(s.dir, filterFile)); err == nil {
		var f seccomp.Filter
		return &f, f.UnmarshalBinary(b)
	}
	cfg, err := s.Spec()
	if err != nil {
		return nil, err
	}
	if cfg.Linux == nil {
		return nil, nil
	}
	return seccomp.Prepare(cfg.Linux.Seccomp)
}

func (s *State) save() error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, stateFile))
}

// procStat returns the start time and state letter of pid.
func procStat(pid int) (uint64, byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 20 {
		return 0, 0, errors.New("bad stat")
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return st, f[0][0], err
}

// alive reports whether the init is still the process we started (and
// not a zombie).
func (s *State) alive() bool {
	if s.Pid <= 0 {
		return false
	}
	st, letter, err := procStat(s.Pid)
	if err != nil || st != s.StartTime {
		return false
	}
	return letter != 'Z' && letter != 'X'
}

// Status derives the current status.
func (s *State) Status() string {
	if !s.alive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(s.dir, fifoName)); err == nil {
		return Created
	}
	if len(s.Cgroups) > 0 && cgroups.Load(s.Cgroups).Frozen() {
		return Paused
	}
	return Running
}

// OCI renders the spec's state for output and hooks.
func (s *State) OCI(status string) OCIState {
	o := OCIState{OCIVersion: specs.Version, ID: s.ID, Status: status, Bundle: s.Bundle, Rootfs: s.Rootfs, Created: s.Created, Owner: s.Owner}
	if status != Stopped {
		o.Pid = s.Pid
	}
	o.Annotations = s.part().Annotations
	return o
}

func (s *State) ociJSON(status string) []byte {
	b, _ := json.Marshal(s.OCI(status))
	return b
}

// List loads every container under root.
func List(root string) ([]*State, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := Load(root, e.Name())
		if err != nil {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// waitGone waits until pid has exited (pidfd poll, no busy loop).
func waitGone(pid int, startTime uint64, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // already gone
	}
	defer unix.Close(fd)
	if st, letter, err := procStat(pid); err != nil || st != startTime || letter == 'Z' {
		return nil
	}
	ms := int(timeout / time.Millisecond)
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("process %d did not exit", pid)
		}
		return nil
	}
}
