package testutil

import (
	"slices"
	"strings"
	"sync"
)

// RecordingLogger is an SDK log.Logger that keeps every message at Info
// and above ("LEVEL message"), for tests that assert what was logged.
type RecordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *RecordingLogger) add(level, msg string) {
	l.mu.Lock()
	l.lines = append(l.lines, level+" "+msg)
	l.mu.Unlock()
}

func (l *RecordingLogger) Debug(string, ...any)       {}
func (l *RecordingLogger) Info(msg string, _ ...any)  { l.add("INFO", msg) }
func (l *RecordingLogger) Warn(msg string, _ ...any)  { l.add("WARN", msg) }
func (l *RecordingLogger) Error(msg string, _ ...any) { l.add("ERROR", msg) }

// Lines returns the messages so far.
func (l *RecordingLogger) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Count returns how many messages contain sub.
func (l *RecordingLogger) Count(sub string) (n int) {
	for _, s := range l.Lines() {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}
