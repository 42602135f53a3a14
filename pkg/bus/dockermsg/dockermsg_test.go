package dockermsg

import (
	"testing"

	"berth/pkg/bus"
)

// FuzzMessages feeds arbitrary bytes to the records and the create command
// as the supervisor and apigw decode them: an error or a value, never a panic.
func FuzzMessages(f *testing.F) {
	f.Add([]byte(`{"key":"k","name":"x","config":{"Image":"busybox"}}`))
	f.Add([]byte(`{"id":"x","name":"/x","state":{"status":"running","pid":3},"hostConfig":{"Memory":1}}`))
	f.Add([]byte(`{"id":"sha256:00","repoTags":["a:b"],"config":{"Env":["A=B"]},"rootfs":{"type":"layers"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{&CreateRequest{}, &CreateResponse{}, &Container{}, &Image{}} {
			_ = bus.Decode(data, v)
		}
	})
}
