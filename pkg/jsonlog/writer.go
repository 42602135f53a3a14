// Package jsonlog writes and reads container logs in Docker's json-file
// format: one JSON object per line,
//
//	{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}
//
// with size-based rotation (<path>, <path>.1 … <path>.<max-file - 1>, the
// higher the number the older the file). The shim writes the log with Writer;
// the supervisor reads it for `docker logs` with Read.
package jsonlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// MaxLineSize is the longest line kept in one record: a longer line is cut
// into records of this size, the way Docker cuts lines at 16 KiB, so that
// a container printing without newlines cannot make the shim buffer
// unbounded data.
const MaxLineSize = 16 * 1024

// Stream names.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Writer writes records to a json-file log, rotating it by size. It is safe
// for concurrent use.
type Writer struct {
	mu       sync.Mutex
	path     string
	maxSize  int64 // <= 0: never rotate
	maxFiles int   // >= 1
	f        *os.File
	size     int64
	partial  map[string][]byte // an incomplete line per stream
	buf      []byte
	written  int64  // bytes written over the writer's life (metrics)
	attrs    []byte // JSON object of every record's "attrs", or nil
	closed   bool
}

// NewWriter opens (appending) or creates the log at path. maxSize is the
// size in bytes after which the file is rotated (<= 0 never rotates);
// maxFiles is the number of files kept, the current one included (< 1
// counts as 1: the file is truncated when full).
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxFiles < 1 {
		maxFiles = 1
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{
		path:     path,
		maxSize:  maxSize,
		maxFiles: maxFiles,
		f:        f,
		size:     st.Size(),
		partial:  make(map[string][]byte, 2),
	}, nil
}

// Write logs p, read from stream at time t. Each complete line (with its
// newline) becomes one record; an incomplete tail is kept until the rest
// of the line arrives, Flush or Close, or it reaches MaxLineSize.
func (w *Writer) Write(stream string, p []byte, t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return os.ErrClosed
	}
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if pend := w.partial[stream]; len(pend) > 0 {
		// Complete the pending line first.
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			n := min(len(p), MaxLineSize-len(pend))
			pend = append(pend, p[:n]...)
			p = p[n:]
			if len(pend) < MaxLineSize {
				w.partial[stream] = pend
				return nil
			}
			keep(w.record(stream, pend, t))
			w.partial[stream] = pend[:0]
		} else if len(pend)+i+1 <= MaxLineSize {
			pend = append(pend, p[:i+1]...)
			p = p[i+1:]
			keep(w.record(stream, pend, t))
			w.partial[stream] = pend[:0]
		} else {
			n := MaxLineSize - len(pend)
			pend = append(pend, p[:n]...)
			p = p[n:]
			keep(w.record(stream, pend, t))
			w.partial[stream] = pend[:0]
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		var line []byte
		switch {
		case i >= 0 && i < MaxLineSize:
			line, p = p[:i+1], p[i+1:]
		case len(p) >= MaxLineSize:
			line, p = p[:MaxLineSize], p[MaxLineSize:]
		default:
			w.partial[stream] = append(w.partial[stream][:0], p...)
			return firstErr
		}
		keep(w.record(stream, line, t))
	}
	return firstErr
}

// Flush writes the incomplete lines as records of their own.
func (w *Writer) Flush(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush(t)
}

func (w *Writer) flush(t time.Time) error {
	if w.closed {
		return nil
	}
	var firstErr error
	for _, s := range []string{Stdout, Stderr} {
		if pend := w.partial[s]; len(pend) > 0 {
			if err := w.record(s, pend, t); err != nil && firstErr == nil {
				firstErr = err
			}
			w.partial[s] = pend[:0]
		}
	}
	for s, pend := range w.partial { // other stream names, if any
		if len(pend) > 0 {
			if err := w.record(s, pend, t); err != nil && firstErr == nil {
				firstErr = err
			}
			w.partial[s] = pend[:0]
		}
	}
	return firstErr
}

// Close flushes incomplete lines (stamped now) and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.flush(time.Now())
	w.closed = true
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Written is the number of bytes written to the log files so far.
func (w *Writer) Written() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// SetAttrs gives every record from now on attrs (the json-file driver's
// extra attributes: log options labels, env, tag); empty means none.
func (w *Writer) SetAttrs(attrs map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attrs = nil
	if len(attrs) > 0 {
		w.attrs, _ = json.Marshal(attrs) // keys sorted, as Docker's
	}
}

// Path is the current log file.
func (w *Writer) Path() string { return w.path }

func (w *Writer) record(stream string, line []byte, t time.Time) error {
	w.buf = appendRecord(w.buf[:0], stream, line, w.attrs, t)
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(w.buf)) > w.maxSize {
		if err := w.rotate(); err != nil {
			return fmt.Errorf("rotate %s: %w", w.path, err)
		}
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	w.written += int64(n)
	return err
}

func (w *Writer) rotate() error {
	if w.maxFiles > 1 {
		// Drop the oldest, shift the others up, move the current to .1.
		if err := os.Remove(w.path + "." + strconv.Itoa(w.maxFiles-1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for i := w.maxFiles - 2; i >= 1; i-- {
			err := os.Rename(w.path+"."+strconv.Itoa(i), w.path+"."+strconv.Itoa(i+1))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if err := os.Rename(w.path, w.path+".1"); err != nil {
			return err
		}
		f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_TRUNC, 0o640)
		if err != nil {
			return err
		}
		w.f.Close()
		w.f = f
	} else {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
	}
	w.size = 0
	return nil
}

// AppendRecord appends the JSON line of one record to dst: the same bytes
// Docker's json-file driver writes (HTML-safe escaping, invalid UTF-8
// replaced by U+FFFD, time in UTC with nanoseconds).
func AppendRecord(dst []byte, stream string, line []byte, t time.Time) []byte {
	return appendRecord(dst, stream, line, nil, t)
}

// appendRecord is AppendRecord with attrs, a JSON object or nil, where
// Docker puts them: between the stream and the time.
func appendRecord(dst []byte, stream string, line, attrs []byte, t time.Time) []byte {
	dst = append(dst, `{"log":`...)
	dst = appendJSONString(dst, line)
	dst = append(dst, `,"stream":`...)
	dst = appendJSONString(dst, []byte(stream))
	if attrs != nil {
		dst = append(dst, `,"attrs":`...)
		dst = append(dst, attrs...)
	}
	dst = append(dst, `,"time":"`...)
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, "\"}\n"...)
	return dst
}

func appendJSONString(dst, s []byte) []byte {
	// encoding/json's string escaping is what Docker uses too; Marshal of a
	// string cannot fail.
	b, _ := json.Marshal(string(s))
	return append(dst, b...)
}
