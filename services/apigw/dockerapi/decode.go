package dockerapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"berth/pkg/errdefs"
	"berth/pkg/signame"
)

// CreateBody is the body of POST /containers/create: Docker's
// ContainerConfigWrapper.
type CreateBody struct {
	*container.Config
	HostConfig       *container.HostConfig     `json:"HostConfig,omitempty"`
	NetworkingConfig *network.NetworkingConfig `json:"NetworkingConfig,omitempty"`
}

// DecodeCreateBody decodes and checks a create body. Every failure is an
// InvalidParameter error with a message a user can act on.
func DecodeCreateBody(data []byte) (*CreateBody, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "config cannot be empty in order to create a container")
	}
	var b CreateBody
	if err := DecodeJSON(data, &b); err != nil {
		return nil, err
	}
	if b.Config == nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "config cannot be empty in order to create a container")
	}
	if strings.TrimSpace(b.Config.Image) == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "no image specified: Config.Image must not be empty")
	}
	if b.HostConfig == nil {
		b.HostConfig = &container.HostConfig{}
	}
	if b.HostConfig.AutoRemove && b.HostConfig.RestartPolicy.Name != "" && b.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled {
		return nil, errdefs.New(errdefs.InvalidParameter, "can't create 'AutoRemove' container with restart policy")
	}
	return &b, nil
}

// DecodeJSON decodes one JSON value, turning syntax and type errors into
// InvalidParameter errors naming the offending field.
func DecodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return invalidJSON(err)
	}
	// Anything but white space after the value is malformed too.
	if _, err := dec.Token(); err != io.EOF {
		return errdefs.New(errdefs.InvalidParameter, "invalid JSON: unexpected data after the end of the JSON object")
	}
	return nil
}

func invalidJSON(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return errdefs.New(errdefs.InvalidParameter, "invalid JSON: %v (at byte %d)", se, se.Offset)
	case errors.As(err, &te):
		// Config and HostConfig.Resources are embedded: users know their fields at the top.
		field := strings.TrimPrefix(te.Field, "Config.")
		field = strings.ReplaceAll(field, "Resources.", "")
		if field == "" {
			field = "(top level)"
		}
		return errdefs.New(errdefs.InvalidParameter, "invalid JSON: field %s must be of type %s, not %s", field, te.Type, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errdefs.New(errdefs.InvalidParameter, "invalid JSON: unexpected end of input")
	}
	return errdefs.New(errdefs.InvalidParameter, "invalid JSON: %v", err)
}

var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// ValidateContainerName checks a name given with ?name= (empty is fine: the
// supervisor picks one), with Docker's rule and message.
func ValidateContainerName(name string) error {
	if name == "" {
		return nil
	}
	if !validName.MatchString(name) {
		return errdefs.New(errdefs.InvalidParameter, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return nil
}

// ParseSignal checks a signal given as a name (KILL, SIGKILL) or a number
// and returns it in a canonical form ("SIGKILL" or "9"). Empty stays empty.
func ParseSignal(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		switch {
		case n == 0:
			return "", errdefs.New(errdefs.InvalidParameter, "invalid signal: %s", s)
		case n < 1 || n > 64 || n == 32 || n == 33:
			// dockerd parses any number, then takes only Linux's signals
			// (32 and 33 belong to the C library's threads)
			return "", errdefs.New(errdefs.InvalidParameter, "the linux daemon does not support signal %d", n)
		}
		return s, nil
	}
	if signame.Number(s) == 0 {
		return "", errdefs.New(errdefs.InvalidParameter, "invalid signal: %s", s)
	}
	return "SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG"), nil
}

// BoolValue reads a query parameter like Docker's httputils.BoolValue: "",
// "0", "no", "false" and "none" are false, anything else true.
func BoolValue(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// IntValue reads an optional integer query parameter.
func IntValue(name, v string) (*int, error) {
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "invalid value for %s: %q is not an integer", name, v)
	}
	return &n, nil
}

// ParseTail reads logs' tail parameter: "all", empty or a negative number is -1.
func ParseTail(v string) (int, error) {
	if v == "" || v == "all" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errdefs.New(errdefs.InvalidParameter, "invalid value for tail: %q", v)
	}
	if n < 0 {
		return -1, nil
	}
	return n, nil
}
