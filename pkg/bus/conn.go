package bus

import (
	"encoding/json"
	"fmt"

	"berth/pkg/errdefs"
)

// DecodeReply turns a Reply's bytes into resp or a typed error.
func DecodeReply(data []byte, resp any) error {
	var r Reply
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("bad reply on the bus: %w", err)
	}
	if r.Error != nil {
		return &errdefs.Error{Kind: r.Error.Kind, Message: r.Error.Message}
	}
	if resp == nil || len(r.Data) == 0 {
		return nil
	}
	return json.Unmarshal(r.Data, resp)
}

// EncodeReply builds the Reply for a handler's result.
func EncodeReply(v any, err error) []byte {
	var r Reply
	if err != nil {
		r.Error = &ReplyError{Kind: errdefs.KindOf(err), Message: err.Error()}
	} else if v != nil {
		data, merr := json.Marshal(v)
		if merr != nil {
			r.Error = &ReplyError{Message: merr.Error()}
		} else {
			r.Data = data
		}
	}
	out, _ := json.Marshal(r)
	return out
}

// Decode unmarshals a request, rejecting unknown fields is not done on
// purpose (a newer sender may add fields); a malformed body is an
// InvalidParameter error.
func Decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return errdefs.New(errdefs.InvalidParameter, "malformed bus message: %v", err)
	}
	return nil
}
