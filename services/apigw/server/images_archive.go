package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// imageLoad is POST /images/load (docker load): the tarball goes to the
// supervisor through the uploads bucket.
func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), importTimeout)
	defer cancel()
	store, object, err := s.upload(ctx, "load", "docker load", s.uploadBody(w, r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var resp bus.ImageLoadResponse
	if err := s.callTimeout(r, importTimeout, bus.AreaImages, bus.VerbImageLoad, bus.ImageLoadRequest{Meta: newKey(), Object: object}, &resp); err != nil {
		if errdefs.Is(err, errdefs.Unavailable) {
			_ = store.Delete(context.WithoutCancel(ctx), object)
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, l := range resp.Lines {
		_ = enc.Encode(map[string]string{"stream": l + "\n"})
	}
}

// imageSaveMany is GET /images/get?names=…
func (s *Server) imageSaveMany(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "no images named to save"))
		return
	}
	s.imageSave(w, r, names)
}

// imageSave is docker save: the supervisor writes the tarball into the
// uploads bucket, apigw streams it out and deletes it.
func (s *Server) imageSave(w http.ResponseWriter, r *http.Request, names []string) {
	var resp bus.ImageSaveResponse
	if err := s.callTimeout(r, importTimeout, bus.AreaImages, bus.VerbImageSave, bus.ImageSaveRequest{Names: names}, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), importTimeout)
	defer cancel()
	store, err := s.uploadsBucket(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer func() { _ = store.Delete(context.WithoutCancel(ctx), resp.Object) }()
	obj, err := store.Get(ctx, resp.Object)
	if err != nil {
		s.fail(w, r, errdefs.New(errdefs.Unavailable, "reading the saved images from the bus: %v", err))
		return
	}
	defer obj.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, obj); err != nil {
		s.log.Warn("save: streaming the tarball", "err", err)
	}
}

// imageHistory is GET /images/{name}/history.
func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) {
	var items []bus.ImageHistoryItem
	if err := s.call(r, bus.AreaImages, bus.VerbImageHistory, bus.ImageRequest{Name: name}, &items); err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]image.HistoryResponseItem, 0, len(items))
	for _, h := range items {
		out = append(out, image.HistoryResponseItem{ID: h.ID, Created: h.Created, CreatedBy: h.CreatedBy, Tags: h.Tags, Size: h.Size, Comment: h.Comment})
	}
	writeJSON(w, http.StatusOK, out)
}

// imagePrune is POST /images/prune.
func (s *Server) imagePrune(w http.ResponseWriter, r *http.Request) {
	flt, err := dockerapi.FilterMap(r.URL.Query().Get("filters"), map[string]bool{"dangling": true, "label": true, "label!": true, "until": true})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := bus.ImagePruneRequest{Meta: newKey(), Filters: flt}
	var resp bus.ImagePruneResponse
	if err := s.callTimeout(r, importTimeout, bus.AreaImages, bus.VerbImagePrune, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	out := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}, SpaceReclaimed: resp.SpaceReclaimed}
	for _, d := range resp.Deleted {
		out.ImagesDeleted = append(out.ImagesDeleted, image.DeleteResponse{Untagged: d.Untagged, Deleted: d.Deleted})
	}
	writeJSON(w, http.StatusOK, out)
}

// imageCommit is POST /commit (docker commit).
func (s *Server) imageCommit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := dockermsg.CommitRequest{
		Meta:      newKey(),
		Container: q.Get("container"),
		Comment:   q.Get("comment"),
		Author:    q.Get("author"),
		Changes:   q["changes"],
		Pause:     q.Get("pause") == "" || dockerapi.BoolValue(q.Get("pause")),
	}
	if req.Container == "" {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "missing container ID or name"))
		return
	}
	if repo := q.Get("repo"); repo != "" {
		var err error
		if req.Repo, req.Tag, err = splitRepoTag(repo, q.Get("tag")); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	var cfg container.Config
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.InvalidParameter, err))
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 && strings.TrimSpace(string(body)) != "null" {
		if err := json.Unmarshal(body, &cfg); err != nil {
			s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "invalid container config: %v", err))
			return
		}
		req.Config = &cfg
	}
	var resp bus.ImageImportResponse
	if err := s.callTimeout(r, importTimeout, bus.AreaImages, bus.VerbImageCommit, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": resp.ID})
}

// systemDF is GET /system/df (docker system df): images with their shared
// sizes, containers, volumes; berth has no build cache.
func (s *Server) systemDF(w http.ResponseWriter, r *http.Request) {
	var ims []dockermsg.Image
	if err := s.call(r, bus.AreaImages, bus.VerbImageList, struct{}{}, &ims); err != nil {
		s.fail(w, r, err)
		return
	}
	var usage bus.ImageUsage
	if err := s.call(r, bus.AreaImages, bus.VerbImageUsage, struct{}{}, &usage); err != nil {
		s.fail(w, r, err)
		return
	}
	var records []dockermsg.Container
	if err := s.call(r, bus.AreaContainers, bus.VerbList, bus.ListRequest{All: true}, &records); err != nil {
		s.fail(w, r, err)
		return
	}
	du := types.DiskUsage{LayersSize: usage.LayersSize, Images: []*image.Summary{}, Containers: []*container.Summary{},
		Volumes: []*volume.Volume{}, BuildCache: []*build.CacheRecord{}}
	for i := range ims {
		sum := dockerapi.ImageSummary(&ims[i])
		sum.SharedSize = usage.Shared[ims[i].ID]
		du.Images = append(du.Images, &sum)
	}
	var vols []volume.Volume
	if err := s.call(r, bus.AreaVolumes, bus.VerbVolumeList, dockermsg.VolumeListRequest{}, &vols); err != nil {
		s.fail(w, r, err)
		return
	}
	for i := range vols {
		if vols[i].UsageData == nil {
			// the CLI reads it for every volume: -1 is "not computed"
			vols[i].UsageData = &volume.UsageData{Size: -1, RefCount: -1}
		}
		du.Volumes = append(du.Volumes, &vols[i])
	}
	dockerapi.SortContainers(records)
	now := time.Now()
	for i := range records {
		c := dockerapi.ContainerSummary(&records[i], now)
		du.Containers = append(du.Containers, &c)
	}
	writeJSON(w, http.StatusOK, du)
}
