package leaks

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
)

func TestFindsHeadroomGoroutines(t *testing.T) {
	if s := find(); s != "" {
		t.Fatalf("unexpected headroom goroutines before the test:\n%s", s)
	}
	m, err := resources.NewMonitor(resources.MonitorOptions{Source: testutil.NewSource(resources.Usage{}), Logger: testutil.NopLogger})
	if err != nil {
		t.Fatal(err)
	}
	// Once the first reading is in, the sampling goroutine is past its go
	// statement and shows its own frame.
	if err := m.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := find(); !strings.Contains(s, "resources.(*Monitor).run") {
		t.Fatalf("a running Monitor was not reported; got:\n%s", s)
	}
	m.Close()
	if s := wait(2 * time.Second); s != "" {
		t.Fatalf("a closed Monitor was reported:\n%s", s)
	}
}
