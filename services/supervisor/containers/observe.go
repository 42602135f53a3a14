package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/docker/docker/api/types/container"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
	"berth/pkg/specconv"
	"berth/services/supervisor/stats"
)

// shimCall sends one command to the container's shim.
func (m *Manager) shimCall(ctx context.Context, id, verb string, req, resp any) error {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.ShimTimeout)
	defer cancel()
	return natsbus.Call(cctx, m.cfg.Conn, m.shimSubject(id, verb), req, resp)
}

// Pause is `docker pause`: the container's cgroup is frozen.
func (m *Manager) Pause(ctx context.Context, ref string) error {
	return m.freeze(ctx, ref, true)
}

// Unpause is `docker unpause`.
func (m *Manager) Unpause(ctx context.Context, ref string) error {
	return m.freeze(ctx, ref, false)
}

func (m *Manager) freeze(ctx context.Context, ref string, pause bool) error {
	c, err := m.resolve(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	st, id := c.rec.State, c.rec.ID
	m.mu.Unlock()
	switch {
	case !isRunningState(st.Status):
		return errdefs.New(errdefs.Conflict, "Container %s is not running", id)
	case st.Status == "restarting":
		return errdefs.New(errdefs.Conflict, "Container %s is restarting, wait until the container is running", id)
	case pause && st.Paused:
		return errdefs.New(errdefs.Conflict, "Container %s is already paused", id)
	case !pause && !st.Paused:
		return errdefs.New(errdefs.Conflict, "Container %s is not paused", id)
	}
	verb, action := bus.ShimPause, "pause"
	if !pause {
		verb, action = bus.ShimResume, "unpause"
	}
	if err := m.shimCall(ctx, id, verb, struct{}{}, nil); err != nil {
		return fmt.Errorf("Cannot %s container %s: %w", action, id, err)
	}
	m.setPaused(c, pause)
	m.event(c, action)
	return nil
}

func (m *Manager) setPaused(c *ctr, paused bool) {
	m.mu.Lock()
	if !isRunningState(c.rec.State.Status) || c.rec.State.Paused == paused {
		m.mu.Unlock()
		return
	}
	c.rec.State.Paused = paused
	c.rec.State.Status = map[bool]string{true: "paused", false: "running"}[paused]
	m.mu.Unlock()
	if err := m.save(c); err != nil {
		m.log.Error("saving record", "id", c.rec.ID, "err", err)
	}
}

// thawAfterSignal resumes a paused container once it has been sent its
// stop signal or SIGKILL, so that it can act on it (as Docker does: stop,
// kill and rm -f of a paused container work).
func (m *Manager) thawAfterSignal(c *ctr, sig int) {
	m.mu.Lock()
	paused, id := c.rec.State.Paused, c.rec.ID
	stopSig := ""
	if c.rec.Config != nil {
		stopSig = c.rec.Config.StopSignal
	}
	m.mu.Unlock()
	if !paused {
		return
	}
	if sig != int(syscall.SIGKILL) && stopSig != "" {
		if n, err := ParseSignal(stopSig); err != nil || n != sig {
			return
		}
	}
	if err := m.shimCall(context.Background(), id, bus.ShimResume, struct{}{}, nil); err != nil {
		m.log.Warn("cannot unpause container after signalling it", "id", id, "err", err)
		return
	}
	m.setPaused(c, false)
	// dockerd reports every resume it sees, this one included
	m.event(c, "unpause")
}

// Update is `docker update`: new resource limits (and restart policy) in
// the record, applied to the cgroups at once when the container runs.
func (m *Manager) Update(ctx context.Context, req *dockermsg.UpdateRequest) (*dockermsg.UpdateResponse, error) {
	if req.Update == nil {
		req.Update = &container.UpdateConfig{}
	}
	if err := specconv.ValidateResources(&req.Update.Resources, true); err != nil {
		return nil, err
	}
	if err := validateRestartPolicy(req.Update.RestartPolicy); err != nil {
		return nil, err
	}
	c, err := m.resolve(req.ID)
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	id, running := c.rec.ID, isRunningState(c.rec.State.Status)
	var hc container.HostConfig
	if c.rec.HostConfig != nil {
		hc = *c.rec.HostConfig
	}
	m.mu.Unlock()
	if err := specconv.MergeUpdate(&hc, req.Update); err != nil {
		return nil, errdefs.New(errdefs.KindOf(err), "Cannot update container %s: %s", id, err.Error())
	}
	if running {
		res, err := json.Marshal(specconv.UpdateResources(req.Update.Resources))
		if err != nil {
			return nil, err
		}
		if err := m.shimCall(ctx, id, bus.ShimUpdate, bus.ShimUpdateRequest{Resources: res}, nil); err != nil {
			return nil, fmt.Errorf("Cannot update container %s: %w", id, err)
		}
	}
	m.mu.Lock()
	c.rec.HostConfig = &hc
	m.mu.Unlock()
	if err := m.save(c); err != nil {
		return nil, fmt.Errorf("Cannot update container %s: %w", id, err)
	}
	m.event(c, "update")
	return &dockermsg.UpdateResponse{Warnings: []string{}}, nil
}

func validateRestartPolicy(p container.RestartPolicy) error {
	switch p.Name {
	case "":
		// dockerd takes an empty name with any count: clients before API
		// 1.44 sent one
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if p.MaximumRetryCount < 0 {
			return errdefs.New(errdefs.InvalidParameter, "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative")
		}
		if p.MaximumRetryCount != 0 {
			return errdefs.New(errdefs.InvalidParameter, "invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case container.RestartPolicyOnFailure:
		if p.MaximumRetryCount < 0 {
			return errdefs.New(errdefs.InvalidParameter, "invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return errdefs.New(errdefs.InvalidParameter, "invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", p.Name)
	}
	return nil
}

// runningID resolves ref to a container that runs (paused included).
func (m *Manager) runningID(ref string) (*ctr, string, error) {
	c, err := m.resolve(ref)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !isRunningState(c.rec.State.Status) || c.starting {
		return nil, "", errdefs.New(errdefs.Conflict, "Container %s is not running", c.rec.ID)
	}
	if c.rec.State.Status == "restarting" {
		return nil, "", errdefs.New(errdefs.Conflict, "Container %s is restarting, wait until the container is running", c.rec.ID)
	}
	return c, c.rec.ID, nil
}

// psArgPattern finds "-o x=PID…": a renamed PID column would hide the
// pids that top matches lines by (Docker refuses it too).
var psArgPattern = regexp.MustCompile(`\s+([^\s]*)=\s*(PID[^\s]*)`)

// Top is `docker top`: ps on this node with the given arguments (-ef by
// default), its lines kept for the container's processes.
func (m *Manager) Top(ctx context.Context, req *bus.TopRequest) (*bus.TopResponse, error) {
	psArgs := req.PsArgs
	if psArgs == "" {
		psArgs = "-ef"
	}
	for _, g := range psArgPattern.FindAllStringSubmatch(psArgs, -1) {
		if g[1] != "pid" {
			return nil, errdefs.New(errdefs.InvalidParameter, "specifying \"%s=%s\" is not allowed", g[1], g[2])
		}
	}
	c, id, err := m.runningID(req.ID)
	if err != nil {
		return nil, err
	}
	var pids bus.ShimPidsResponse
	if err := m.shimCall(ctx, id, bus.ShimPids, struct{}{}, &pids); err != nil {
		return nil, err
	}
	args := strings.Fields(psArgs)
	pidList := make([]string, len(pids.Pids))
	for i, p := range pids.Pids {
		pidList[i] = strconv.Itoa(p)
	}
	// ps -q lists only the given pids; some options (f) refuse it: then
	// all processes, filtered below
	out, err := exec.CommandContext(ctx, "ps", append(args, "-q", strings.Join(pidList, ","))...).Output()
	if err != nil {
		out, err = exec.CommandContext(ctx, "ps", args...).Output()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if line, _, _ := bytes.Cut(ee.Stderr, []byte("\n")); len(line) > 0 {
				return nil, errdefs.New(errdefs.Unknown, "ps: %s", line)
			}
		}
		return nil, fmt.Errorf("ps: %w", err)
	}
	resp, err := parsePS(out, pids.Pids)
	if err != nil {
		return nil, err
	}
	m.event(c, "top")
	return resp, nil
}

// parsePS keeps the lines of ps's output whose PID is one of pids; the
// last column (the command) keeps its spaces.
func parsePS(out []byte, pids []int) (*bus.TopResponse, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	resp := &bus.TopResponse{Titles: strings.Fields(lines[0]), Processes: [][]string{}}
	pidIndex := slices.Index(resp.Titles, "PID")
	if pidIndex < 0 {
		return nil, errdefs.New(errdefs.Unknown, "Couldn't find PID field in ps output")
	}
	n := len(resp.Titles)
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) <= pidIndex {
			continue
		}
		p, err := strconv.Atoi(f[pidIndex])
		if err != nil {
			return nil, errdefs.New(errdefs.Unknown, "Unexpected pid '%s': %s", f[pidIndex], err)
		}
		if !slices.Contains(pids, p) {
			continue
		}
		if len(f) > n {
			f = append(f[:n-1], strings.Join(f[n-1:], " "))
		}
		resp.Processes = append(resp.Processes, f)
	}
	return resp, nil
}

var statsHost = sync.OnceValue(stats.NewHost)

// Stats samples a container's resource usage (`docker stats`); a
// container that does not run gives only its name and ID, as Docker's.
func (m *Manager) Stats(ref string) (*container.StatsResponse, error) {
	c, err := m.resolve(ref)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	id, name, st := c.rec.ID, c.rec.Name, c.rec.State
	hostNet := c.rec.HostConfig != nil && c.rec.HostConfig.NetworkMode.IsHost()
	starting := c.starting
	m.mu.Unlock()
	if !isRunningState(st.Status) || starting || st.Status == "restarting" {
		return &container.StatsResponse{Name: name, ID: id}, nil
	}
	s := statsHost().Collect("/berth/"+id, st.Pid, !hostNet)
	s.Name, s.ID = name, id
	return &s, nil
}
