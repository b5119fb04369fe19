package kind

import (
	"context"
	"fmt"
	"log/slog"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// slogKind adapts slog to kind's logger: V(0) is info, V(1+) debug.
type slogKind struct{ l *slog.Logger }

func (s slogKind) Warn(msg string)                   { s.l.Warn(msg, "component", "kind") }
func (s slogKind) Warnf(f string, a ...interface{})  { s.Warn(fmt.Sprintf(f, a...)) }
func (s slogKind) Error(msg string)                  { s.l.Error(msg, "component", "kind") }
func (s slogKind) Errorf(f string, a ...interface{}) { s.Error(fmt.Sprintf(f, a...)) }
func (s slogKind) V(level kindlog.Level) kindlog.InfoLogger {
	return slogKindInfo{l: s.l, level: level}
}

type slogKindInfo struct {
	l     *slog.Logger
	level kindlog.Level
}

func (s slogKindInfo) lvl() slog.Level {
	if s.level > 0 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
func (s slogKindInfo) Info(msg string) {
	s.l.Log(context.Background(), s.lvl(), msg, "component", "kind")
}
func (s slogKindInfo) Infof(f string, a ...interface{}) { s.Info(fmt.Sprintf(f, a...)) }
func (s slogKindInfo) Enabled() bool                    { return s.l.Enabled(context.Background(), s.lvl()) }
