package resources_test

import (
	"context"
	"fmt"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
)

// A Monitor over a fake source, as tests and simulations use it. Leave Source
// nil to read this process's cgroup (or the host when no limit applies).
func ExampleMonitor() {
	src := testutil.NewSource(resources.Usage{CPU: 0.25, Memory: 0.5, MemoryBytes: 4 << 30, MemoryLimitBytes: 8 << 30})
	m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Logger: testutil.NopLogger})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.WaitReady(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	s := m.Snapshot()
	fmt.Printf("cpu %.0f%%, memory %.0f%% of %d GiB\n", 100*s.Usage.CPU, 100*s.Usage.Memory, s.Usage.MemoryLimitBytes>>30)
	// Output: cpu 25%, memory 50% of 8 GiB
}
