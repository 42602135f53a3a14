package containers

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/container"
)

// Restart policy back-off, as Docker's restart manager: 100 ms, doubled on
// every restart up to a minute, back to 100 ms once a run lasted 10 s.
const (
	restartBackoffMin   = 100 * time.Millisecond
	restartBackoffMax   = time.Minute
	restartBackoffReset = 10 * time.Second
)

// restartState is a container's restart policy bookkeeping (guarded by
// Manager.mu).
type restartState struct {
	backoff time.Duration
	timer   *time.Timer // a restart is pending
}

// shouldRestart applies the container's restart policy to an exit.
func shouldRestart(hc *container.HostConfig, exitCode, restartCount int, manuallyStopped bool) bool {
	if hc == nil || hc.AutoRemove || manuallyStopped {
		return false
	}
	switch hc.RestartPolicy.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return true
	case container.RestartPolicyOnFailure:
		max := hc.RestartPolicy.MaximumRetryCount
		return exitCode != 0 && (max == 0 || restartCount < max)
	}
	return false
}

// maybeRestart schedules a restart after an exit when the policy says so.
func (m *Manager) maybeRestart(c *ctr, exitCode int, ranFor time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restoring || c.removed || c.restart.timer != nil ||
		!shouldRestart(c.rec.HostConfig, exitCode, c.rec.RestartCount, c.rec.HasBeenManuallyStopped) {
		return
	}
	if ranFor >= restartBackoffReset || c.restart.backoff == 0 {
		c.restart.backoff = restartBackoffMin
	} else {
		c.restart.backoff = min(c.restart.backoff*2, restartBackoffMax)
	}
	d := c.restart.backoff
	var t *time.Timer
	t = time.AfterFunc(d, func() { m.policyRestart(c, t) })
	c.restart.timer = t
	m.log.Info("restart policy: restarting", "id", c.rec.ID, "policy", c.rec.HostConfig.RestartPolicy.Name, "in", d, "exitCode", exitCode)
}

// policyRestart starts the container again for its restart policy.
func (m *Manager) policyRestart(c *ctr, t *time.Timer) {
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	if c.restart.timer != t || c.removed || c.rec.HasBeenManuallyStopped || isRunningState(c.rec.State.Status) {
		if c.restart.timer == t {
			c.restart.timer = nil
		}
		m.mu.Unlock()
		return
	}
	c.restart.timer = nil
	c.rec.RestartCount++
	m.mu.Unlock()
	if err := m.startLocked(context.Background(), c); err != nil {
		m.log.Warn("restart policy: start failed", "id", c.rec.ID, "err", err)
		if serr := m.save(c); serr != nil {
			m.log.Error("saving record", "id", c.rec.ID, "err", serr)
		}
		m.mu.Lock()
		code := c.rec.State.ExitCode
		m.mu.Unlock()
		m.maybeRestart(c, code, 0)
		return
	}
	m.event(c, "restart")
}

// cancelRestart drops a pending policy restart; manual marks the container
// stopped by a user (kept in its record: unless-stopped stays stopped
// across supervisor restarts).
func (m *Manager) cancelRestart(c *ctr, manual bool) {
	m.mu.Lock()
	if c.restart.timer != nil {
		c.restart.timer.Stop()
		c.restart.timer = nil
	}
	changed := manual && !c.rec.HasBeenManuallyStopped && c.rec.HostConfig != nil && c.rec.HostConfig.RestartPolicy.Name != "" && c.rec.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled
	if changed {
		c.rec.HasBeenManuallyStopped = true
	}
	m.mu.Unlock()
	if changed {
		if err := m.save(c); err != nil {
			m.log.Error("saving record", "id", c.rec.ID, "err", err)
		}
	}
}

// manualStart is a start by a user: the policy applies again, from the
// shortest back-off.
func (m *Manager) manualStart(c *ctr) {
	m.mu.Lock()
	c.rec.HasBeenManuallyStopped = false
	c.restart.backoff = 0
	if c.restart.timer != nil {
		c.restart.timer.Stop()
		c.restart.timer = nil
	}
	m.mu.Unlock()
}

// restoreRestartPolicies restarts, after a supervisor restart, the stopped
// containers whose policy wants them running, as dockerd does when it
// starts: those that ran before. A stop by a user suspends a policy only
// until the daemon restarts, except unless-stopped's.
func (m *Manager) restoreRestartPolicies() {
	m.mu.Lock()
	var cands, resumed []*ctr
	for _, c := range m.byID {
		if !isRunningState(c.rec.State.Status) && !c.rec.State.StartedAt.IsZero() && c.rec.State.Status == "exited" {
			cands = append(cands, c)
			if c.rec.HasBeenManuallyStopped && c.rec.HostConfig != nil && c.rec.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
				c.rec.HasBeenManuallyStopped = false
				resumed = append(resumed, c)
			}
		}
	}
	m.mu.Unlock()
	for _, c := range resumed {
		if err := m.save(c); err != nil {
			m.log.Error("saving record", "id", c.rec.ID, "err", err)
		}
	}
	for _, c := range cands {
		m.mu.Lock()
		code := c.rec.State.ExitCode
		m.mu.Unlock()
		m.maybeRestart(c, code, 0)
	}
}
