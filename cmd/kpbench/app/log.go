package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Log formats (--log-format).
const (
	logAuto  = "auto"
	logHuman = "human"
	logText  = "text"
	logJSON  = "json"
)

// newLogger returns the logger of every command: short step lines on a
// terminal (as kind prints them), slog's key=value text when stderr is not
// a terminal (CI logs, files), JSON on request.
func newLogger(w io.Writer, format string, verbose int) (*slog.Logger, error) {
	level := slog.LevelInfo
	if verbose > 0 {
		level = slog.LevelDebug
	}
	if format == logAuto {
		format = logText
		if isTerminal(w) {
			format = logHuman
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case logHuman:
		return slog.New(&humanHandler{w: w, level: level, mu: &sync.Mutex{}}), nil
	case logText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case logJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be auto, human, text or json, got %q", format)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// humanHandler writes one short line per record: a mark for the level, the
// message, and the attributes in parentheses; no time stamp and no level
// word for information.
//
//   - lab: control plane ready (elapsed 3.971s)
//     ! warning: run is invalid (reasons [interrupted])
type humanHandler struct {
	w     io.Writer
	level slog.Level
	mu    *sync.Mutex
	// pre are the rendered attributes of WithAttrs; prefix is the groups
	// of WithGroup, dotted, for attributes added later.
	pre    []string
	prefix string
}

func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("✗ error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("! warning: ")
	case r.Level >= slog.LevelInfo:
		b.WriteString("• ")
	default:
		b.WriteString("  ")
	}
	b.WriteString(r.Message)
	parts := append([]string(nil), h.pre...)
	r.Attrs(func(a slog.Attr) bool {
		parts = appendAttr(parts, h.prefix, a)
		return true
	})
	if len(parts) > 0 {
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// appendAttr renders a as "key value", groups flattened with dots.
func appendAttr(parts []string, prefix string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return parts
	}
	key := prefix + a.Key
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			parts = appendAttr(parts, key+".", g)
		}
		return parts
	}
	return append(parts, key+" "+a.Value.String())
}

func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.pre = append([]string(nil), h.pre...)
	for _, a := range as {
		c.pre = appendAttr(c.pre, h.prefix, a)
	}
	return &c
}

func (h *humanHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}
