package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/go-chi/chi/v5"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
	"berth/services/apigw/dockerapi"
)

// The network endpoints: /networks, /networks/{id}, create, connect,
// disconnect, prune. The supervisor answers with Docker's own types.

func (s *Server) networkList(w http.ResponseWriter, r *http.Request) {
	f, err := dockerapi.ParseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	accepted := map[string]bool{"driver": true, "id": true, "label": true, "name": true, "scope": true, "type": true, "dangling": true}
	if err := f.Validate(accepted); err != nil {
		s.fail(w, r, errdefs.Wrap(errdefs.InvalidParameter, err))
		return
	}
	var all []network.Inspect
	if err := s.call(r, bus.AreaNetworks, bus.VerbNetworkList, struct{}{}, &all); err != nil {
		s.fail(w, r, err)
		return
	}
	out := []network.Summary{}
	for _, n := range all {
		if matchNetwork(f, &n) {
			n.Containers = nil // the list leaves them out, like dockerd
			out = append(out, n)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func matchNetwork(f filters.Args, n *network.Inspect) bool {
	if f.Contains("driver") && !f.ExactMatch("driver", n.Driver) {
		return false
	}
	if f.Contains("name") && !f.Match("name", n.Name) {
		return false
	}
	if f.Contains("id") && !f.Match("id", n.ID) {
		return false
	}
	if f.Contains("scope") && !f.ExactMatch("scope", n.Scope) {
		return false
	}
	if f.Contains("label") && !f.MatchKVList("label", n.Labels) {
		return false
	}
	predefined := n.Name == "bridge" || n.Name == "host" || n.Name == "none"
	if f.Contains("type") {
		if (predefined && !f.ExactMatch("type", "builtin")) || (!predefined && !f.ExactMatch("type", "custom")) {
			return false
		}
	}
	if f.Contains("dangling") {
		dangling := !predefined && len(n.Containers) == 0
		if (dangling && !f.ExactMatch("dangling", "true") && !f.ExactMatch("dangling", "1")) ||
			(!dangling && !f.ExactMatch("dangling", "false") && !f.ExactMatch("dangling", "0")) {
			return false
		}
	}
	return true
}

func (s *Server) networkInspect(w http.ResponseWriter, r *http.Request) {
	var n network.Inspect
	if err := s.call(r, bus.AreaNetworks, bus.VerbNetworkInspect, dockermsg.NetworkRequest{Network: chi.URLParam(r, "id")}, &n); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) networkCreate(w http.ResponseWriter, r *http.Request) {
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req dockermsg.NetworkCreateRequest
	if err := json.Unmarshal(data, &req.CreateRequest); err != nil {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "invalid JSON: %v", err))
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "network name cannot be empty"))
		return
	}
	req.Meta = newKey()
	var resp network.CreateResponse
	if err := s.call(r, bus.AreaNetworks, bus.VerbNetworkCreate, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) networkRemove(w http.ResponseWriter, r *http.Request) {
	req := dockermsg.NetworkRequest{Meta: newKey(), Network: chi.URLParam(r, "id")}
	if err := s.call(r, bus.AreaNetworks, bus.VerbNetworkRemove, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) networkConnect(w http.ResponseWriter, r *http.Request, verb string) {
	data, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var body struct {
		Container      string
		EndpointConfig *network.EndpointSettings
		Force          bool
	}
	if err := json.Unmarshal(data, &body); err != nil {
		s.fail(w, r, errdefs.New(errdefs.InvalidParameter, "invalid JSON: %v", err))
		return
	}
	req := dockermsg.NetworkConnectRequest{Meta: newKey(), Network: chi.URLParam(r, "id"), Container: body.Container,
		EndpointConfig: body.EndpointConfig, Force: body.Force}
	if err := s.call(r, bus.AreaNetworks, verb, req, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) networkPrune(w http.ResponseWriter, r *http.Request) {
	flt, err := dockerapi.FilterMap(r.URL.Query().Get("filters"), map[string]bool{"label": true, "label!": true, "until": true})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req := dockermsg.NetworkPruneRequest{Meta: newKey(), Filters: flt}
	var resp network.PruneReport
	if err := s.call(r, bus.AreaNetworks, bus.VerbNetworkPrune, req, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
