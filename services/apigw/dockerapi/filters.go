package dockerapi

import (
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// ParseFilters reads a filters query parameter (both of Docker's JSON forms).
func ParseFilters(raw string) (filters.Args, error) {
	f, err := filters.FromJSON(raw)
	if err != nil {
		return filters.NewArgs(), errdefs.New(errdefs.InvalidParameter, "invalid filters: %v", err)
	}
	return f, nil
}

// FilterMap reads a filters query parameter into the bus's form, refusing
// (400, in Docker's words) any filter not in accepted unless accepted is nil.
func FilterMap(raw string, accepted map[string]bool) (map[string][]string, error) {
	f, err := ParseFilters(raw)
	if err != nil {
		return nil, err
	}
	if accepted != nil {
		if err := f.Validate(accepted); err != nil {
			return nil, errdefs.Wrap(errdefs.InvalidParameter, err)
		}
	}
	out := map[string][]string{}
	for _, k := range f.Keys() {
		out[k] = f.Get(k)
	}
	return out, nil
}

// The filters berth's GET /containers/json understands.
var acceptedPsFilters = map[string]bool{
	"id": true, "name": true, "label": true, "status": true, "ancestor": true,
	"health": true,
}

// ListOptions are the parsed query of GET /containers/json.
type ListOptions struct {
	All     bool
	Limit   int
	Filters filters.Args
	// AncestorIDs are the image IDs the "ancestor" values resolved to
	// (filled in by the caller, which can ask the supervisor).
	AncestorIDs map[string]bool
}

// ValidateListFilters checks keys and status values, with Docker's messages.
// A status filter implies all, like dockerd.
func ValidateListFilters(o *ListOptions) error {
	if err := o.Filters.Validate(acceptedPsFilters); err != nil {
		return errdefs.Wrap(errdefs.InvalidParameter, err)
	}
	if err := o.Filters.WalkValues("health", func(v string) error {
		switch v {
		case container.Starting, container.Healthy, container.Unhealthy, container.NoHealthcheck:
			return nil
		}
		return errdefs.New(errdefs.InvalidParameter, "Unrecognised filter value for health: %s", v)
	}); err != nil {
		return err
	}
	return o.Filters.WalkValues("status", func(v string) error {
		if container.ValidateContainerState(v) != nil {
			return errdefs.New(errdefs.InvalidParameter, "invalid filter 'status=%s'", v)
		}
		o.All = true
		return nil
	})
}

// FilterContainers applies all, filters and limit to the supervisor's
// records, newest first, like dockerd's list.
func FilterContainers(cs []dockermsg.Container, o ListOptions) []dockermsg.Container {
	SortContainers(cs)
	out := make([]dockermsg.Container, 0, len(cs))
	for i := range cs {
		if o.Limit > 0 && len(out) >= o.Limit {
			break
		}
		if MatchContainer(&cs[i], o) {
			out = append(out, cs[i])
		}
	}
	return out
}

// MatchContainer says whether one record passes the list options.
func MatchContainer(c *dockermsg.Container, o ListOptions) bool {
	f := o.Filters
	if !c.State.Running && !o.All && o.Limit <= 0 {
		return false
	}
	if !f.Match("id", c.ID) {
		return false
	}
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	if !f.MatchKVList("label", labels) {
		return false
	}
	name := ContainerName(c)
	if !f.Match("name", name) && !f.Match("name", strings.TrimPrefix(name, "/")) {
		return false
	}
	if f.Contains("status") && !f.ExactMatch("status", c.State.Status) {
		return false
	}
	if f.Contains("health") && !f.ExactMatch("health", healthStatus(c)) {
		return false
	}
	if f.Contains("ancestor") && !matchAncestor(c, f.Get("ancestor"), o.AncestorIDs) {
		return false
	}
	return true
}

func matchAncestor(c *dockermsg.Container, values []string, ids map[string]bool) bool {
	if ids[c.Image] {
		return true
	}
	cfgImage := ""
	if c.Config != nil {
		cfgImage = c.Config.Image
	}
	for _, v := range values {
		if v == "" {
			continue
		}
		if v == c.Image || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), strings.TrimPrefix(v, "sha256:")) {
			return true
		}
		if cfgImage != "" && NormalizeImageRef(v) == NormalizeImageRef(cfgImage) {
			return true
		}
	}
	return false
}

// NormalizeImageRef gives "busybox" and "busybox:latest" (and
// "docker.io/library/busybox:latest") one spelling for comparisons.
func NormalizeImageRef(ref string) string {
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	if strings.Contains(ref, "@") {
		return ref
	}
	slash := strings.LastIndex(ref, "/")
	if !strings.Contains(ref[slash+1:], ":") {
		ref += ":latest"
	}
	return ref
}

// The filters GET /events understands.
var acceptedEventFilters = map[string]bool{
	"type": true, "container": true, "event": true, "label": true, "image": true, "volume": true, "network": true,
}

// ValidateEventFilters checks the keys of an events filter.
func ValidateEventFilters(f filters.Args) error {
	if err := f.Validate(acceptedEventFilters); err != nil {
		return errdefs.Wrap(errdefs.InvalidParameter, err)
	}
	return nil
}

// MatchEvent applies an events filter like dockerd's daemon/events/filter.go.
func MatchEvent(f filters.Args, m *events.Message) bool {
	attrs := m.Actor.Attributes
	if !f.ExactMatch("type", string(m.Type)) {
		return false
	}
	if f.Contains("event") {
		action := string(m.Action)
		short := action
		if i := strings.IndexAny(action, ":"); i >= 0 {
			short = action[:i]
		}
		if !f.ExactMatch("event", action) && !f.ExactMatch("event", short) {
			return false
		}
	}
	if f.Contains("container") {
		if m.Type != events.ContainerEventType {
			return false
		}
		if !f.FuzzyMatch("container", m.Actor.ID) && !f.FuzzyMatch("container", attrs["name"]) {
			return false
		}
	}
	if f.Contains("image") {
		var img string
		switch m.Type {
		case events.ContainerEventType:
			img = attrs["image"]
		case events.ImageEventType:
			img = m.Actor.ID
		default:
			return false
		}
		if !matchImageFilter(f.Get("image"), img, attrs["name"], m.Type) {
			return false
		}
	}
	if f.Contains("network") {
		if m.Type != events.NetworkEventType {
			return false
		}
		if !f.FuzzyMatch("network", m.Actor.ID) && !f.ExactMatch("network", attrs["name"]) {
			return false
		}
	}
	if f.Contains("label") && !f.MatchKVList("label", attrs) {
		return false
	}
	if f.Contains("volume") && !f.FuzzyMatch("volume", m.Actor.ID) && !f.FuzzyMatch("volume", attrs["name"]) {
		return false
	}
	return true
}

func matchImageFilter(values []string, img, name string, typ events.Type) bool {
	for _, v := range values {
		if v == img || NormalizeImageRef(v) == NormalizeImageRef(img) {
			return true
		}
		if typ == events.ImageEventType && name != "" && NormalizeImageRef(v) == NormalizeImageRef(name) {
			return true
		}
		if strings.HasPrefix(strings.TrimPrefix(img, "sha256:"), strings.TrimPrefix(v, "sha256:")) && len(strings.TrimPrefix(v, "sha256:")) >= 4 {
			return true
		}
	}
	return false
}

// healthStatus is the health filter's view of a container: its
// healthcheck's status, "none" without one.
func healthStatus(c *dockermsg.Container) string {
	if c.State.Health == nil {
		return container.NoHealthcheck
	}
	return c.State.Health.Status
}
