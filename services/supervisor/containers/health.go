package containers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"

	"berth/pkg/bus"
	"berth/pkg/specconv"
)

// Healthchecks, dockerd's way: a running container whose config has a
// healthcheck (its own or its image's) gets a monitor that execs the probe
// in it every interval (the start interval during the start period, while
// it has not been healthy yet), killed after the timeout. A success makes
// it healthy; retries failures in a row outside the start period make it
// unhealthy. State.Health keeps the status, the failing streak and the
// last five results; each change of status is a "health_status: <status>"
// event and is saved with the record. When the container stops its status
// becomes unhealthy, as dockerd's.

const (
	maxHealthLog       = 5    // results kept in State.Health.Log
	maxHealthOutput    = 4096 // bytes of a probe's output kept
	healthCallOverhead = 10 * time.Second
)

// healthMonitor is the probe loop of one run of a container.
type healthMonitor struct {
	stop chan struct{}
}

// startHealth starts the monitor of a container that has just started (or
// was restored running), if it has a healthcheck. A restored container
// keeps its status; a started one begins "starting".
func (m *Manager) startHealth(c *ctr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.health != nil || c.removed || !c.rec.State.Running || c.rec.Config == nil {
		return
	}
	hc := c.rec.Config.Healthcheck
	probe := specconv.ProbeCommand(hc, c.rec.Config.Shell)
	if probe == nil {
		if hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
			m.log.Warn("unknown healthcheck type (expected CMD or CMD-SHELL); no healthcheck", "id", c.rec.ID, "type", hc.Test[0])
		}
		return
	}
	if c.rec.State.Health == nil {
		c.rec.State.Health = &container.Health{Status: container.Starting, Log: []*container.HealthcheckResult{}}
	}
	mon := &healthMonitor{stop: make(chan struct{})}
	c.health = mon
	go m.healthLoop(c, mon, *hc, probe, c.rec.State.StartedAt)
}

// stopHealthLocked ends the monitor of a container that stopped (m.mu held).
func (m *Manager) stopHealthLocked(c *ctr) {
	if c.health == nil {
		return
	}
	close(c.health.stop)
	c.health = nil
	if h := c.rec.State.Health; h != nil {
		nh := *h
		nh.Status = container.Unhealthy
		c.rec.State.Health = &nh
	}
}

// restoreHealth starts the monitors of the containers restore found running.
func (m *Manager) restoreHealth() {
	m.mu.Lock()
	var cs []*ctr
	for _, c := range m.byID {
		if c.rec.State.Running && !c.starting {
			cs = append(cs, c)
		}
	}
	m.mu.Unlock()
	for _, c := range cs {
		m.startHealth(c)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (m *Manager) healthLoop(c *ctr, mon *healthMonitor, hc container.HealthConfig, probe []string, startedAt time.Time) {
	interval := orDefault(hc.Interval, specconv.DefaultHealthInterval)
	timeout := orDefault(hc.Timeout, specconv.DefaultHealthTimeout)
	startInterval := orDefault(hc.StartInterval, specconv.DefaultHealthStartInterval)
	retries := hc.Retries
	if retries <= 0 {
		retries = specconv.DefaultHealthRetries
	}
	for {
		wait := interval
		m.mu.Lock()
		if h := c.rec.State.Health; h != nil && h.Status == container.Starting && time.Since(startedAt) < hc.StartPeriod {
			wait = startInterval
		}
		m.mu.Unlock()
		select {
		case <-mon.stop:
			return
		case <-time.After(wait):
		}
		res := m.runProbe(c, probe, timeout)
		if m.cfg.OnHealthCheck != nil {
			m.cfg.OnHealthCheck(res.ExitCode == 0)
		}
		select {
		case <-mon.stop:
			return
		default:
		}
		m.recordHealth(c, mon, res, retries, hc.StartPeriod, startedAt)
	}
}

// runProbe execs the probe in the container, with exec events as dockerd
// sends them for its probes.
func (m *Manager) runProbe(c *ctr, probe []string, timeout time.Duration) *container.HealthcheckResult {
	res := &container.HealthcheckResult{Start: time.Now()}
	m.mu.Lock()
	rec := c.rec
	m.mu.Unlock()
	execID := NewID()
	cfg := container.ExecOptions{Cmd: probe}
	m.event(c, execAction("exec_create", probe), "execID", execID)
	p, err := m.execProcess(&rec, &cfg, nil)
	if err == nil {
		m.event(c, execAction("exec_start", probe), "execID", execID)
		var resp *bus.ShimExecResponse
		resp, err = m.shimExec(context.Background(), rec.ID, &bus.ShimExecRequest{
			ExecID: execID, Process: p, Probe: true, TimeoutMs: timeout.Milliseconds(), OutputLimit: maxHealthOutput,
		}, timeout+healthCallOverhead)
		if err == nil {
			res.ExitCode, res.Output = resp.ExitCode, resp.Output
			if resp.TimedOut {
				res.ExitCode, res.Output = -1, fmt.Sprintf("Health check exceeded timeout (%v)", timeout)
			}
			m.event(c, "exec_die", "execID", execID, "exitCode", strconv.Itoa(resp.ExitCode))
		}
	}
	if err != nil {
		res.ExitCode, res.Output = -1, err.Error()
	}
	res.End = time.Now()
	return res
}

// recordHealth applies one probe's result.
func (m *Manager) recordHealth(c *ctr, mon *healthMonitor, res *container.HealthcheckResult, retries int, startPeriod time.Duration, startedAt time.Time) {
	m.mu.Lock()
	if c.health != mon || c.rec.State.Health == nil {
		m.mu.Unlock()
		return
	}
	// a new value: readers of the record share the old one
	h := *c.rec.State.Health
	old := h.Status
	h.Log = append(append([]*container.HealthcheckResult{}, h.Log...), res)
	if len(h.Log) > maxHealthLog {
		h.Log = h.Log[len(h.Log)-maxHealthLog:]
	}
	switch {
	case res.ExitCode == 0:
		h.FailingStreak = 0
		h.Status = container.Healthy
	case h.Status == container.Starting && res.Start.Sub(startedAt) < startPeriod:
		// failures in the start period do not count
	default:
		h.FailingStreak++
		if h.FailingStreak >= retries {
			h.Status = container.Unhealthy
		}
	}
	c.rec.State.Health = &h
	m.mu.Unlock()
	if h.Status != old {
		if err := m.save(c); err != nil {
			m.log.Error("saving record", "id", c.rec.ID, "err", err)
		}
		m.event(c, "health_status: "+h.Status)
	}
}
