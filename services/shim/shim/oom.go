package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
)

// watchOOM sets up the report of each OOM kill in the container's memory
// cgroup on the bus as it happens (the supervisor publishes Docker's "oom"
// event), also when the container survives it (a child was killed). On
// cgroup v1 the kernel signals an eventfd registered with
// cgroup.event_control for memory.oom_control; on v2 memory.events changes
// (inotify). It is called before the container starts, so that no OOM is
// missed, and returns the watch loop, which ends once the cgroup is gone
// or stop is closed.
func (d *daemon) watchOOM() func(stop <-chan struct{}) {
	if d.cgroup == "" {
		return nil
	}
	v1 := filepath.Join("/sys/fs/cgroup/memory", d.cgroup)
	var wait func() error
	var counter string
	var closeFn func()
	v1OOM := false
	if _, err := os.Stat(filepath.Join(v1, "memory.oom_control")); err == nil {
		efd, c, err := oomEventfd(v1)
		if err != nil {
			d.log.Warn("no OOM notifications", "err", err)
			return nil
		}
		counter, closeFn, v1OOM = filepath.Join(v1, "memory.oom_control"), c, true
		wait = func() error {
			var b [8]byte
			_, err := efd.Read(b[:])
			return err
		}
	} else {
		v2 := filepath.Join("/sys/fs/cgroup", d.cgroup, "memory.events")
		in, c, err := inotifyFile(v2)
		if err != nil {
			return nil // no memory controller
		}
		counter, closeFn = v2, c
		wait = func() error {
			var b [4096]byte
			_, err := in.Read(b[:])
			return err
		}
	}
	seen := max(oomKills(counter), 0)
	return func(stop <-chan struct{}) {
		defer closeFn()
		events := make(chan error)
		go func() {
			for {
				err := wait()
				select {
				case events <- err:
				case <-stop:
					return
				}
				if err != nil {
					return
				}
			}
		}()
		for {
			select {
			case <-stop:
				return
			case err := <-events:
				if err != nil {
					return
				}
			}
			n := oomKills(counter)
			if n < 0 {
				return // the cgroup is gone (its removal signals too)
			}
			// v1 signals when the cgroup goes out of memory, before the
			// killer has acted (and counted); v2 on any change of
			// memory.events, of which oom_kill is one line
			if v1OOM || n > seen {
				seen = n
				d.reportOOM()
			}
		}
	}
}

func (d *daemon) reportOOM() {
	d.log.Info("OOM kill in the container's cgroup")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	<-d.dialed
	if d.nc == nil {
		return
	}
	if err := d.call(ctx, bus.Report(d.cfg.Node, d.cfg.ID, bus.ReportOOM), struct{}{}, nil); err != nil {
		// the exit report says OOMKilled too, should the container die of it
		d.log.Warn("OOM report not delivered", "err", err)
	}
}

// oomKills is the oom_kill count of a memory.oom_control or memory.events
// file, -1 when it cannot be read.
func oomKills(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// oomEventfd registers an eventfd for the OOM notifications of a v1
// memory cgroup directory.
func oomEventfd(dir string) (*os.File, func(), error) {
	ctl, err := unix.Open(filepath.Join(dir, "memory.oom_control"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ctl)
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(fmt.Sprintf("%d %d", efd, ctl)), 0o600); err != nil {
		unix.Close(ctl)
		unix.Close(efd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(efd), "oom-eventfd")
	return f, func() { f.Close(); unix.Close(ctl) }, nil
}

// inotifyFile watches a v2 cgroup file for modifications.
func inotifyFile(file string) (*os.File, func(), error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, file, unix.IN_MODIFY); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fd), "oom-inotify")
	return f, func() { f.Close() }, nil
}
