// Package leaks checks, after a test binary's tests, that no goroutine
// started by headroom is still running.
//
// The root module uses goleak everywhere. This module's tests run an
// embedded Temporal server, whose libraries (and the SDK's per-client worker
// heartbeats) keep process-wide goroutines alive after Stop; they are not
// ours to stop, and listing them by name for goleak breaks with every server
// release. So this check looks only at goroutines with a headroom frame.
package leaks

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

const ours = "github.com/headroomhq/headroom/"

// VerifyTestMain runs the tests, then fails the binary if a goroutine with a
// headroom frame outlives them (after up to 5 s for them to exit).
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := wait(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaks: headroom goroutines still running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func wait(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := find()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func find() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, ours) || strings.Contains(g, "testing.(*M)") || strings.Contains(g, "leaks.find") {
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
