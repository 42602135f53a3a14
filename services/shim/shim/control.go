package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// StatusPaused is the state of a frozen container.
const StatusPaused = "paused"

// pause freezes the container (the runtime's freezer) and resume thaws it.
func (d *daemon) pause() error  { return d.freeze(true) }
func (d *daemon) resume() error { return d.freeze(false) }

func (d *daemon) freeze(frozen bool) error {
	d.mu.Lock()
	st := d.status
	d.mu.Unlock()
	verb, from, to := "pause", StatusRunning, StatusPaused
	if !frozen {
		verb, from, to = "resume", StatusPaused, StatusRunning
	}
	if st != from && st != to {
		return errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.rt.run(ctx, verb, d.cfg.ID); err != nil {
		return err
	}
	d.mu.Lock()
	if d.status == from {
		d.status = to
	}
	d.mu.Unlock()
	return nil
}

// update hands new cgroup limits to the runtime.
func (d *daemon) update(req bus.ShimUpdateRequest) error {
	if d.isStopped() {
		return errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
	}
	f := filepath.Join(d.cfg.StateDir, "update.json")
	if err := os.WriteFile(f, req.Resources, 0o600); err != nil {
		return err
	}
	defer os.Remove(f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.rt.run(ctx, "update", "--resources", f, d.cfg.ID)
	return err
}

// pids lists the container's processes.
func (d *daemon) pids() (bus.ShimPidsResponse, error) {
	var resp bus.ShimPidsResponse
	if d.isStopped() {
		return resp, errdefs.New(errdefs.Conflict, "container %s is not running", d.cfg.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := d.rt.run(ctx, "ps", "--format", "json", d.cfg.ID)
	if err != nil {
		return resp, err
	}
	err = json.Unmarshal(out, &resp.Pids)
	return resp, err
}
