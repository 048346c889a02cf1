package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/headroomhq/headroom/resources"
)

// WaitSnapshot blocks until m publishes a snapshot for which cond holds, or
// fails the test after 5 s. It waits on Changed, never polls.
func WaitSnapshot(t testing.TB, m interface{ Snapshot() *resources.Snapshot }, cond func(*resources.Snapshot) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		s := m.Snapshot()
		if cond(s) {
			return
		}
		select {
		case <-s.Changed():
		case <-ctx.Done():
			t.Fatal("testutil: snapshot condition not reached in 5 s")
		}
	}
}
