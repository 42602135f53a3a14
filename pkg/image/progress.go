package image

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/docker/docker/pkg/jsonmessage"
)

// Message is one line of Docker's JSON progress stream, what the docker CLI
// renders as progress bars (jsonmessage.JSONMessage on the wire).
type Message struct {
	Status         string          `json:"status,omitempty"`
	ID             string          `json:"id,omitempty"`
	ProgressDetail *Detail         `json:"progressDetail,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	Stream         string          `json:"stream,omitempty"`
	ErrorDetail    *ErrorDetail    `json:"errorDetail,omitempty"`
	Error          string          `json:"error,omitempty"`
	Aux            json.RawMessage `json:"aux,omitempty"`
}

// Detail is a message's byte counts.
type Detail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

// ErrorDetail is the error of a failed stream.
type ErrorDetail struct {
	Message string `json:"message"`
}

// Progress receives the messages of a long operation (pull, push, load).
// It must be safe for concurrent use.
type Progress func(Message)

func (p Progress) send(m Message) {
	if p != nil {
		p(m)
	}
}

func (p Progress) status(id, status string) {
	if p != nil {
		p(Message{ID: id, Status: status, ProgressDetail: &Detail{}})
	}
}

func (p Progress) line(status string) {
	if p != nil {
		p(Message{Status: status})
	}
}

// bar reports byte progress of one layer at most every 100ms.
type bar struct {
	p      Progress
	id     string
	action string
	total  int64

	mu   sync.Mutex
	cur  int64
	last time.Time
}

func (b *bar) add(n int64) {
	if b.p == nil {
		return
	}
	b.mu.Lock()
	b.cur += n
	cur := b.cur
	now := time.Now()
	emit := now.Sub(b.last) >= 100*time.Millisecond
	if emit {
		b.last = now
	}
	b.mu.Unlock()
	if emit {
		b.emit(cur)
	}
}

func (b *bar) emit(cur int64) {
	if b.p == nil {
		return
	}
	jp := jsonmessage.JSONProgress{Current: cur, Total: b.total}
	b.p(Message{ID: b.id, Status: b.action, ProgressDetail: &Detail{Current: cur, Total: b.total}, Progress: jp.String()})
}

// countingReader counts what is read through it.
type countingReader struct {
	r  interface{ Read([]byte) (int, error) }
	fn func(int64)
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.fn(int64(n))
	}
	return n, err
}
