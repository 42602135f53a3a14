// Package errdefs types berth's errors once, by kind, so that every edge maps
// them the same way: apigw to Docker's HTTP statuses, the bus to a Kind field,
// the command line to an exit status.
package errdefs

import (
	"errors"
	"fmt"
)

// Kind classifies an error. The zero value is Unknown (an internal error).
type Kind string

const (
	Unknown          Kind = ""
	NotFound         Kind = "not_found"         // 404: No such container / image
	Conflict         Kind = "conflict"          // 409: name in use, container running
	InvalidParameter Kind = "invalid_parameter" // 400: bad input
	NotModified      Kind = "not_modified"      // 304: already started / stopped
	Unavailable      Kind = "unavailable"       // 503: bus or service away
	Forbidden        Kind = "forbidden"         // 403
	NotImplemented   Kind = "not_implemented"   // 501
	Unauthorized     Kind = "unauthorized"      // 401: registry credentials refused (docker login)
)

// Error is an error with a Kind. Its message is shown to users as is.
type Error struct {
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

// New returns an error of kind k with a formatted message.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap gives err the kind k, keeping its message.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Message: err.Error()}
}

// KindOf returns the kind of err, or Unknown.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Unknown
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// HTTPStatus maps a kind to the status the Docker Engine API uses for it.
// The numbers are written out: importing net/http for its constants would
// link it into every process that uses errdefs, berth-shim included.
func HTTPStatus(k Kind) int {
	switch k {
	case NotFound:
		return 404 // http.StatusNotFound
	case Conflict:
		return 409 // http.StatusConflict
	case InvalidParameter:
		return 400 // http.StatusBadRequest
	case NotModified:
		return 304 // http.StatusNotModified
	case Unavailable:
		return 503 // http.StatusServiceUnavailable
	case Forbidden:
		return 403 // http.StatusForbidden
	case NotImplemented:
		return 501 // http.StatusNotImplemented
	case Unauthorized:
		return 401 // http.StatusUnauthorized
	}
	return 500 // http.StatusInternalServerError
}

// Docker's messages, written once.

// NoSuchContainer is Docker's 404 for an unknown container reference.
func NoSuchContainer(ref string) error { return New(NotFound, "No such container: %s", ref) }

// NoSuchImage is Docker's 404 for an unknown image reference.
func NoSuchImage(ref string) error { return New(NotFound, "No such image: %s", ref) }
