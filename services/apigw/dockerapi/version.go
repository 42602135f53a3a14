// Package dockerapi holds the pure parts of berth-apigw: the mapping from the
// supervisor's records (pkg/bus) to the Docker Engine API's wire types, the
// filters of the list and events endpoints, API version negotiation and the
// decoding of request bodies. Nothing here does I/O, so it is tested on its own.
package dockerapi

import (
	"regexp"

	"github.com/docker/docker/api/types/versions"

	"berth/pkg/errdefs"
)

// API versions berth-apigw speaks.
const (
	APIVersion    = "1.51" // the highest version served
	MinAPIVersion = "1.24" // the lowest version served, like dockerd 28
)

var versionRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// NegotiateVersion checks the version a client put in the URL (/v1.43/…).
// An empty version means the newest. It returns the version the request is
// served with.
func NegotiateVersion(v string) (string, error) {
	if v == "" {
		return APIVersion, nil
	}
	if !versionRe.MatchString(v) {
		return "", errdefs.New(errdefs.InvalidParameter, "invalid API version %q", v)
	}
	if versions.GreaterThan(v, APIVersion) {
		return "", errdefs.New(errdefs.InvalidParameter, "client version %s is too new. Maximum supported API version is %s", v, APIVersion)
	}
	if versions.LessThan(v, MinAPIVersion) {
		return "", errdefs.New(errdefs.InvalidParameter, "client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)
	}
	return v, nil
}

// SplitVersionPrefix splits "/v1.43/containers/json" into "1.43" and
// "/containers/json". Paths without a version prefix come back unchanged.
func SplitVersionPrefix(path string) (version, rest string) {
	if len(path) < 3 || path[0] != '/' || path[1] != 'v' {
		return "", path
	}
	i := 2
	for i < len(path) && (path[i] == '.' || (path[i] >= '0' && path[i] <= '9')) {
		i++
	}
	if i == 2 || (i < len(path) && path[i] != '/') {
		return "", path
	}
	rest = path[i:]
	if rest == "" {
		rest = "/"
	}
	return path[2:i], rest
}
