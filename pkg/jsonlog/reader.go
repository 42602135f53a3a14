package jsonlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"berth/pkg/bus"
)

// ReadOptions select the records Read hands out.
type ReadOptions struct {
	// Tail is the number of records to return from the end of the log
	// (counted after the stream and Since/Until selection); < 0 means all.
	// 0 returns no existing record (with Follow: only new ones).
	Tail int
	// Since and Until, when set, keep records with Since <= time <= Until.
	Since, Until time.Time
	// Stdout and Stderr select the streams; both false selects both.
	Stdout, Stderr bool
	// Follow keeps reading as the log grows, across rotations, until ctx
	// is done, Until has passed, or Stopped reports true (after which the
	// rest of the log is read and Read returns).
	Follow bool
	// Stopped, when set, tells a following reader that the writer is done
	// (the container exited). It is polled.
	Stopped func() bool
	// MaxFiles bounds the rotated files looked at (<path>.1 …); 0 looks
	// for as many as exist.
	MaxFiles int
	// PollInterval is how often a following reader looks for new data;
	// 0 means 100ms.
	PollInterval time.Duration
}

// ErrStop may be returned by Read's callback to end reading early; Read
// then returns nil.
var ErrStop = errors.New("jsonlog: stop")

// Decode parses one json-file line (with or without its newline).
func Decode(line []byte) (bus.LogEntry, error) {
	var e bus.LogEntry
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return e, errors.New("empty log line")
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("malformed log line: %w", err)
	}
	return e, nil
}

// Files lists the files of the log at path, oldest first (the rotated
// <path>.N … <path>.1, then path), skipping those that do not exist.
func Files(path string, maxFiles int) []string {
	var rotated []string
	for i := 1; maxFiles <= 0 || i < maxFiles; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		rotated = append(rotated, p)
	}
	out := make([]string, 0, len(rotated)+1)
	for i := len(rotated) - 1; i >= 0; i-- {
		out = append(out, rotated[i])
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return out
}

// Read hands fn the records of the log at path that opts select, oldest
// first. Malformed lines are skipped. A log that does not exist yet reads
// as empty (and, with Follow, is waited for).
func Read(ctx context.Context, path string, opts ReadOptions, fn func(bus.LogEntry) error) error {
	r := &reader{opts: opts, fn: fn}
	if !opts.Stdout && !opts.Stderr {
		r.opts.Stdout, r.opts.Stderr = true, true
	}
	if r.opts.PollInterval <= 0 {
		r.opts.PollInterval = 100 * time.Millisecond
	}
	err := r.run(ctx, path)
	if errors.Is(err, ErrStop) || errors.Is(err, errUntil) {
		return nil
	}
	return err
}

var errUntil = errors.New("past until")

type reader struct {
	opts ReadOptions
	fn   func(bus.LogEntry) error
	// tail keeps the last Tail selected records while the existing log
	// is scanned.
	ring  []bus.LogEntry
	start int
}

func (r *reader) selected(e bus.LogEntry) (bool, error) {
	switch e.Stream {
	case Stdout:
		if !r.opts.Stdout {
			return false, nil
		}
	case Stderr:
		if !r.opts.Stderr {
			return false, nil
		}
	}
	if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
		return false, nil
	}
	if !r.opts.Until.IsZero() && e.Time.After(r.opts.Until) {
		return false, errUntil
	}
	return true, nil
}

// collect is the callback while the existing log is scanned.
func (r *reader) collect(e bus.LogEntry) error {
	ok, err := r.selected(e)
	if !ok {
		return err
	}
	switch {
	case r.opts.Tail < 0:
		return r.fn(e)
	case r.opts.Tail == 0:
		return nil
	case len(r.ring) < r.opts.Tail:
		r.ring = append(r.ring, e)
	default:
		r.ring[r.start] = e
		r.start = (r.start + 1) % len(r.ring)
	}
	return nil
}

func (r *reader) flushRing() error {
	n := len(r.ring)
	for i := 0; i < n; i++ {
		if err := r.fn(r.ring[(r.start+i)%n]); err != nil {
			return err
		}
	}
	r.ring, r.start = nil, 0
	return nil
}

// live is the callback once the existing log has been handed out.
func (r *reader) live(e bus.LogEntry) error {
	ok, err := r.selected(e)
	if !ok {
		return err
	}
	return r.fn(e)
}

func (r *reader) run(ctx context.Context, path string) error {
	files := Files(path, r.opts.MaxFiles)
	var cur *os.File // the open current file, kept for Follow
	var curOff int64
	var pending []byte
	defer func() {
		if cur != nil {
			cur.Close()
		}
	}()
	for i, p := range files {
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // rotated away meanwhile
			}
			return err
		}
		last := i == len(files)-1 && p == path
		n, rest, err := scan(f, nil, r.collect)
		if err != nil {
			f.Close()
			if errors.Is(err, errUntil) {
				if ferr := r.flushRing(); ferr != nil {
					return ferr
				}
			}
			return err
		}
		if last {
			cur, curOff, pending = f, n, rest
		} else {
			f.Close()
		}
	}
	if err := r.flushRing(); err != nil {
		return err
	}
	if !r.opts.Follow {
		return nil
	}
	return r.follow(ctx, path, cur, curOff, pending)
}

// follow reads what is appended to path, reopening it after a rotation.
func (r *reader) follow(ctx context.Context, path string, f *os.File, off int64, pending []byte) error {
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		// Stopped is sampled before draining, so that what was written
		// before the writer stopped is read.
		stopped := r.opts.Stopped != nil && r.opts.Stopped()
		if f == nil {
			nf, err := os.Open(path)
			if err == nil {
				f, off, pending = nf, 0, nil
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if f != nil {
			for {
				n, rest, err := scanFrom(f, off, pending, r.live)
				if err != nil {
					return err
				}
				off, pending = n, rest
				// Rotated or truncated? Compare with what is at path now.
				st, err := os.Stat(path)
				fst, ferr := f.Stat()
				if ferr != nil {
					return ferr
				}
				if err == nil && sameFile(st, fst) {
					if st.Size() < off { // truncated (max-file 1)
						off, pending = 0, nil
						continue
					}
					break
				}
				// The file was renamed away: it has been read to its end
				// (the writer no longer appends to it), go on with the new one.
				f.Close()
				f = nil
				nf, err := os.Open(path)
				if err != nil {
					if errors.Is(err, os.ErrNotExist) {
						break
					}
					return err
				}
				f, off, pending = nf, 0, nil
			}
		}
		if stopped {
			return nil
		}
		if !r.opts.Until.IsZero() && time.Now().After(r.opts.Until) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func sameFile(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return os.SameFile(a, b)
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// scanFrom reads f from off, handing complete lines to fn; it returns the
// offset after the last byte read and the incomplete last line.
func scanFrom(f *os.File, off int64, pending []byte, fn func(bus.LogEntry) error) (int64, []byte, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, pending, err
	}
	n, rest, err := scan(f, pending, fn)
	return off + n, rest, err
}

// scan reads rd to its end and hands each complete, well-formed line to fn.
// pending is an incomplete line read before; scan returns the number of
// bytes read and the new incomplete line.
func scan(rd io.Reader, pending []byte, fn func(bus.LogEntry) error) (int64, []byte, error) {
	br := bufio.NewReaderSize(rd, 64*1024)
	var n int64
	line := pending
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if err == bufio.ErrBufferFull {
			line = append(line, chunk...)
			continue
		}
		if err != nil {
			if err == io.EOF {
				line = append(line, chunk...)
				return n, line, nil
			}
			return n, nil, err
		}
		var full []byte
		if len(line) > 0 {
			line = append(line, chunk...)
			full = line
		} else {
			full = chunk
		}
		if e, derr := Decode(full); derr == nil {
			if err := fn(e); err != nil {
				return n, nil, err
			}
		}
		line = line[:0]
	}
}
