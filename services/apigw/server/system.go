package server

import (
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/services/apigw/dockerapi"
)

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("OK"))
}

func uname() (kernel, machine string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", runtime.GOARCH
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:])
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	kernel, _ := uname()
	v := types.Version{
		Version:       EngineVersion,
		APIVersion:    dockerapi.APIVersion,
		MinAPIVersion: dockerapi.MinAPIVersion,
		GitCommit:     s.cfg.GitCommit,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
	}
	v.Platform.Name = "berth"
	v.Components = []types.ComponentVersion{{
		Name:    "Engine",
		Version: EngineVersion,
		Details: map[string]string{
			"ApiVersion":    dockerapi.APIVersion,
			"MinAPIVersion": dockerapi.MinAPIVersion,
			"GitCommit":     s.cfg.GitCommit,
			"GoVersion":     runtime.Version(),
			"Os":            runtime.GOOS,
			"Arch":          runtime.GOARCH,
			"KernelVersion": kernel,
			"Experimental":  "false",
			"Note":          "berth " + s.cfg.Version + " speaking the Docker Engine API",
		},
	}, {
		Name:    "berth",
		Version: s.cfg.Version,
		Details: map[string]string{"GitCommit": s.cfg.GitCommit},
	}}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) {
	var bi bus.Info
	if err := s.call(r, bus.AreaSystem, bus.VerbInfo, struct{}{}, &bi); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.mapInfo(&bi))
}

func (s *Server) mapInfo(bi *bus.Info) system.Info {
	kernel, machine := uname()
	if bi.KernelVersion != "" {
		kernel = bi.KernelVersion
	}
	name := bi.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	osName := bi.OperatingSystem
	if osName == "" {
		osName = operatingSystem()
	}
	ncpu := bi.NCPU
	if ncpu == 0 {
		ncpu = runtime.NumCPU()
	}
	driver := bi.Driver
	if driver == "" {
		driver = "overlay2"
	}
	rt := bi.Runtime
	if rt == "" {
		rt = "berth-runtime"
	}
	return system.Info{
		ID:                bi.ID,
		Containers:        bi.Containers,
		ContainersRunning: bi.ContainersRunning,
		ContainersPaused:  bi.ContainersPaused,
		ContainersStopped: bi.ContainersStopped,
		Images:            bi.Images,
		Driver:            driver,
		DriverStatus:      [][2]string{},
		Plugins: system.PluginsInfo{
			Volume:  []string{"local"},
			Network: []string{"bridge", "host", "null"},
			Log:     []string{"json-file"},
		},
		MemoryLimit:        true,
		SwapLimit:          true,
		CPUCfsPeriod:       true,
		CPUCfsQuota:        true,
		CPUShares:          true,
		CPUSet:             true,
		PidsLimit:          true,
		IPv4Forwarding:     true,
		NGoroutines:        runtime.NumGoroutine(),
		NEventsListener:    int(s.eventListeners.Load()),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      bi.CgroupVersion,
		KernelVersion:      kernel,
		OperatingSystem:    osName,
		OSVersion:          "",
		OSType:             "linux",
		Architecture:       machine,
		IndexServerAddress: "https://index.docker.io/v1/",
		RegistryConfig: &registry.ServiceConfig{
			IndexConfigs: map[string]*registry.IndexInfo{},
		},
		NCPU:              ncpu,
		MemTotal:          bi.MemTotal,
		DockerRootDir:     bi.RootDir,
		Name:              name,
		Labels:            []string{"berth.node=" + s.cfg.Node},
		ServerVersion:     EngineVersion,
		Runtimes:          map[string]system.RuntimeWithStatus{rt: {Runtime: system.Runtime{Path: rt}}},
		DefaultRuntime:    rt,
		Swarm:             swarm.Info{LocalNodeState: swarm.LocalNodeStateInactive},
		ContainerdCommit:  system.Commit{ID: "berth-supervisor"},
		RuncCommit:        system.Commit{ID: "berth-runtime"},
		InitCommit:        system.Commit{ID: "none"},
		SecurityOptions:   []string{},
		CDISpecDirs:       []string{},
		Warnings:          []string{},
		GenericResources:  nil,
		ExperimentalBuild: false,
	}
}

func operatingSystem() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
