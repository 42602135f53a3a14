package server

import (
	"encoding/json"
	"net/http"

	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/api/types/volume"
	"github.com/go-chi/chi/v5"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

func (s *Server) volumeCreate(w http.ResponseWriter, r *http.Request) {
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body volume.CreateOptions
	if len(data) > 0 {
		if err := json.Unmarshal(data, &body); err != nil {
			s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "invalid JSON: %v", err))
			return
		}
	}
	if body.ClusterVolumeSpec != nil {
		s.fail(w, r, errdefs.New(errdefs.NotImplemented, "cluster volumes are not supported by berth"))
		return
	}
	req := dockermsg.VolumeCreateRequest{Meta: newKey(), Name: body.Name, Driver: body.Driver, DriverOpts: body.DriverOpts, Labels: body.Labels}
	var v volume.Volume
	if err := s.call(r, bus.AreaVolumes, bus.VerbVolumeCreate, req, &v); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) volumeList(w http.ResponseWriter, r *http.Request) {
	f, err := dockerapi.FilterMap(r.URL.Query().Get("filters"), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var vs []volume.Volume
	if err := s.call(r, bus.AreaVolumes, bus.VerbVolumeList, dockermsg.VolumeListRequest{Filters: f}, &vs); err != nil {
		s.fail(w, r, err)
		return
	}
	if vs == nil {
		vs = []volume.Volume{}
	}
	out := volume.ListResponse{Volumes: make([]*volume.Volume, 0, len(vs)), Warnings: []string{}}
	for i := range vs {
		out.Volumes = append(out.Volumes, &vs[i])
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) volumeInspect(w http.ResponseWriter, r *http.Request) {
	var v volume.Volume
	if err := s.call(r, bus.AreaVolumes, bus.VerbVolumeInspect, dockermsg.VolumeRequest{Name: chi.URLParam(r, "name")}, &v); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) volumeRemove(w http.ResponseWriter, r *http.Request) {
	req := dockermsg.VolumeRequest{Meta: newKey(), Name: chi.URLParam(r, "name"), Force: dockerapi.BoolValue(r.URL.Query().Get("force"))}
	if err := s.call(r, bus.AreaVolumes, bus.VerbVolumeRemove, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) volumePrune(w http.ResponseWriter, r *http.Request) {
	f, err := dockerapi.FilterMap(r.URL.Query().Get("filters"), nil)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if versions.LessThan(apiVersion(r), "1.42") && f["all"] == nil {
		// before API 1.42, prune took every unused volume, not only the anonymous ones
		f["all"] = []string{"true"}
	}
	var resp dockermsg.VolumePruneResponse
	if err := s.callTimeout(r, 2*s.cfg.CallTimeout, bus.AreaVolumes, bus.VerbVolumePrune, dockermsg.VolumePruneRequest{Meta: newKey(), Filters: f}, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	if resp.Deleted == nil {
		resp.Deleted = []string{}
	}
	writeJSON(w, http.StatusOK, volume.PruneReport{VolumesDeleted: resp.Deleted, SpaceReclaimed: resp.SpaceReclaimed})
}
