package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
)

// ErrNoSummary is returned when a load client's log holds no JSON summary
// (the client crashed, or was killed before it finished).
var ErrNoSummary = errors.New("no JSON summary in the load client's log")

// ParseSummary returns the load client's JSON summary from its pod log.
// The log interleaves stdout (the summary, compact or indented) with
// stderr (log records, text or JSON), so it returns the last top-level JSON
// object that is not a log record (one with "level" and "msg" keys). The
// container runtime copies the two streams line by line, each on its own,
// so a log record written to stderr after the summary was written to
// stdout (the load client's "schedule fell behind" warning) can land
// between two lines of an indented summary: every line that is a log
// record by itself is dropped first.
func ParseSummary(log []byte) (json.RawMessage, error) {
	log = dropLogLines(log)
	var last json.RawMessage
	rest := log
	for len(rest) > 0 {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		trimmed := bytes.TrimLeft(line, " \t\r")
		if len(trimmed) == 0 || trimmed[0] != '{' {
			rest = next
			continue
		}
		start := len(log) - len(rest) + (len(line) - len(trimmed))
		dec := json.NewDecoder(bytes.NewReader(log[start:]))
		var obj json.RawMessage
		if err := dec.Decode(&obj); err != nil || !isObject(obj) {
			rest = next
			continue
		}
		if !isLogRecord(obj) {
			last = obj
		}
		end := start + int(dec.InputOffset())
		rest = log[end:]
	}
	if last == nil {
		return nil, ErrNoSummary
	}
	return last, nil
}

// dropLogLines removes the lines that are whole log records: slog's text
// (time=... level=... or level=...) and JSON records on one line.
func dropLogLines(log []byte) []byte {
	out := make([]byte, 0, len(log))
	for rest := log; len(rest) > 0; {
		line, next, found := bytes.Cut(rest, []byte("\n"))
		rest = next
		t := bytes.TrimSpace(line)
		isText := (bytes.HasPrefix(t, []byte("time=")) || bytes.HasPrefix(t, []byte("level="))) && bytes.Contains(t, []byte("level="))
		isJSON := len(t) > 0 && t[0] == '{' && json.Valid(t) && isLogRecord(t)
		if isText || isJSON {
			continue
		}
		out = append(out, line...)
		if found {
			out = append(out, '\n')
		}
	}
	return out
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func isLogRecord(raw json.RawMessage) bool {
	var probe struct {
		Level *json.RawMessage `json:"level"`
		Msg   *json.RawMessage `json:"msg"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return false
	}
	return probe.Level != nil && probe.Msg != nil
}
