package image

import (
	"regexp"
	"strings"

	"github.com/distribution/reference"

	"berth/pkg/errdefs"
)

var hexRef = regexp.MustCompile(`^(sha256:)?[0-9a-f]{1,64}$`)

// NormalizeRef turns a user's image reference into Docker's familiar
// name:tag form (`busybox` → `busybox:latest`,
// `docker.io/library/busybox:latest` → `busybox:latest`).
func NormalizeRef(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", errdefs.New(errdefs.InvalidParameter, "invalid reference format: %v", err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", errdefs.New(errdefs.InvalidParameter, "invalid reference format: digest references are not supported: %s", ref)
	}
	return reference.FamiliarString(reference.TagNameOnly(named)), nil
}

// RefForError is the form Docker shows in "No such image: …": the
// normalised name:tag when ref parses as a name, else ref itself.
func RefForError(ref string) string {
	if n, err := NormalizeRef(ref); err == nil {
		return n
	}
	return ref
}

// ShortID is Docker's 12-character form of an ID (without "sha256:").
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// isIDPrefix reports whether ref names id by (a prefix of) its ID.
func isIDPrefix(id, ref string) bool {
	if !hexRef.MatchString(ref) {
		return false
	}
	if strings.HasPrefix(id, ref) {
		return true
	}
	return strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), ref)
}

// NormalizeDigestRef turns a name@sha256:… reference into Docker's familiar
// form (`docker.io/library/busybox@sha256:…` → `busybox@sha256:…`).
func NormalizeDigestRef(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", errdefs.New(errdefs.InvalidParameter, "invalid reference format: %v", err)
	}
	c, ok := named.(reference.Canonical)
	if !ok {
		return "", errdefs.New(errdefs.InvalidParameter, "invalid reference format: %s has no digest", ref)
	}
	return reference.FamiliarName(c) + "@" + c.Digest().String(), nil
}

// repoTag is the reference repo[:tag] names (none for an empty repo), as
// docker import and docker commit take it.
func repoTag(repo, tag string) ([]string, error) {
	if repo == "" {
		return nil, nil
	}
	ref := repo
	if tag != "" {
		ref += ":" + tag
	}
	n, err := NormalizeRef(ref)
	if err != nil {
		return nil, err
	}
	return []string{n}, nil
}
