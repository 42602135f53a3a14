package natslite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// maxControlLine bounds a protocol line (the server's own default limit is
// 4 KiB; INFO lines of big clusters are longer).
const maxControlLine = 64 * 1024

var errLineTooLong = errors.New("nats: protocol line too long")

type opKind int

const (
	opMsg opKind = iota + 1
	opPing
	opPong
	opOK
	opErr
	opInfo
)

// op is one operation read from the server.
type op struct {
	kind    opKind
	subject string
	reply   string
	sid     uint64
	hdr     []byte // HMSG: the header block
	data    []byte
	text    string // -ERR message, INFO JSON
}

// parser reads the server's side of the protocol.
type parser struct {
	maxPayload int // bigger messages are a protocol error
}

// readLine reads one CRLF (or LF) terminated line without its terminator.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == nil || err == bufio.ErrBufferFull {
			if len(line)+len(frag) > maxControlLine {
				return nil, errLineTooLong
			}
			line = append(line, frag...)
			if err == nil {
				break
			}
			continue
		}
		if err == io.EOF && len(line)+len(frag) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// splitVerb returns the line's first word in upper case and the rest.
func splitVerb(line []byte) (string, string) {
	s := strings.TrimLeft(string(line), " \t")
	verb, rest, _ := strings.Cut(s, " ")
	if v2, r2, ok := strings.Cut(verb, "\t"); ok {
		verb, rest = v2, r2+" "+rest
	}
	return strings.ToUpper(verb), strings.TrimLeft(rest, " \t")
}

// next reads the next operation.
func (p *parser) next(br *bufio.Reader) (op, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return op{}, err
		}
		verb, rest := splitVerb(line)
		switch verb {
		case "":
			continue // an empty line: tolerated
		case "MSG", "HMSG":
			return p.msg(br, verb == "HMSG", rest)
		case "PING":
			return op{kind: opPing}, nil
		case "PONG":
			return op{kind: opPong}, nil
		case "+OK":
			return op{kind: opOK}, nil
		case "-ERR":
			return op{kind: opErr, text: unquoteErr(rest)}, nil
		case "INFO":
			return op{kind: opInfo, text: rest}, nil
		default:
			return op{}, fmt.Errorf("nats: unknown protocol operation %.40q", line)
		}
	}
}

// msg parses "MSG <subject> <sid> [reply] <size>" or "HMSG <subject> <sid>
// [reply] <hdr size> <total size>" and reads the payload.
func (p *parser) msg(br *bufio.Reader, hasHdr bool, args string) (op, error) {
	f := strings.Fields(args)
	n := 3
	if hasHdr {
		n = 4
	}
	if len(f) != n && len(f) != n+1 {
		return op{}, fmt.Errorf("nats: malformed MSG arguments %.80q", args)
	}
	o := op{kind: opMsg, subject: f[0]}
	sid, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return op{}, fmt.Errorf("nats: malformed MSG sid %.40q", f[1])
	}
	o.sid = sid
	if len(f) == n+1 {
		o.reply = f[2]
	}
	size, err := strconv.Atoi(f[len(f)-1])
	limit := max(p.maxPayload, 1<<20)
	if err != nil || size < 0 || size > limit {
		return op{}, fmt.Errorf("nats: malformed MSG size %.40q", f[len(f)-1])
	}
	hsize := 0
	if hasHdr {
		hsize, err = strconv.Atoi(f[len(f)-2])
		if err != nil || hsize < 0 || hsize > size {
			return op{}, fmt.Errorf("nats: malformed HMSG header size %.40q", f[len(f)-2])
		}
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return op{}, err
	}
	if buf[size] != '\r' || buf[size+1] != '\n' {
		return op{}, errors.New("nats: message payload not followed by CRLF")
	}
	buf = buf[:size:size]
	if hasHdr {
		o.hdr = buf[:hsize:hsize]
	}
	o.data = buf[hsize:]
	return o, nil
}

// unquoteErr turns "'Permissions Violation for …'" into its message.
func unquoteErr(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		s = s[1 : len(s)-1]
	}
	return s
}

// parseInfo takes what the client needs from INFO's JSON without a JSON
// decoder: max_payload and headers (top-level keys; the server writes
// them once each).
func parseInfo(js string) serverInfo {
	var info serverInfo
	if v, ok := jsonField(js, "max_payload"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			info.maxPayload = n
		}
	}
	if v, ok := jsonField(js, "headers"); ok {
		info.headers = v == "true"
	}
	if v, ok := jsonField(js, "tls_required"); ok {
		info.tlsRequired = v == "true"
	}
	return info
}

// jsonField returns the literal (number, true, false…) value of "key": in
// js. It is not a JSON parser: it finds the key as a quoted string followed
// by a colon outside any other string.
func jsonField(js, key string) (string, bool) {
	inStr := false
	for i := 0; i < len(js); i++ {
		ch := js[i]
		if inStr {
			if ch == '\\' {
				i++
			} else if ch == '"' {
				inStr = false
			}
			continue
		}
		if ch != '"' {
			continue
		}
		// a string starts at i
		if strings.HasPrefix(js[i+1:], key+`"`) {
			rest := strings.TrimLeft(js[i+2+len(key):], " \t")
			if v, ok := strings.CutPrefix(rest, ":"); ok {
				v = strings.TrimLeft(v, " \t")
				end := strings.IndexAny(v, ",} \t\r\n")
				if end < 0 {
					end = len(v)
				}
				return v[:end], true
			}
		}
		inStr = true
	}
	return "", false
}

const hdrLine = "NATS/1.0"

// encodeHeader writes h as "NATS/1.0\r\nKey: Value\r\n…\r\n" (keys sorted,
// so that the same header gives the same bytes).
func encodeHeader(h Header) ([]byte, error) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString(hdrLine + "\r\n")
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, ": \t\r\n") {
			return nil, fmt.Errorf("%w: key %q", ErrBadHeader, k)
		}
		for _, v := range h[k] {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("%w: value of %q", ErrBadHeader, k)
			}
			b.WriteString(k)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// decodeHeader parses a header block; status is the code on the first
// line ("503"), if any.
func decodeHeader(b []byte) (Header, string, error) {
	s := string(b)
	first, rest, ok := strings.Cut(s, "\r\n")
	if !ok || !strings.HasPrefix(first, hdrLine) {
		return nil, "", fmt.Errorf("%w: no %s line", ErrBadHeader, hdrLine)
	}
	status := ""
	if st := strings.TrimSpace(first[len(hdrLine):]); st != "" {
		status, _, _ = strings.Cut(st, " ")
		if len(status) != 3 {
			return nil, "", fmt.Errorf("%w: bad status %.20q", ErrBadHeader, st)
		}
	}
	h := Header{}
	for rest != "" {
		var line string
		line, rest, ok = strings.Cut(rest, "\r\n")
		if !ok {
			return nil, "", fmt.Errorf("%w: unterminated line", ErrBadHeader)
		}
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			return nil, "", fmt.Errorf("%w: line %.40q", ErrBadHeader, line)
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return h, status, nil
}
