package resources_test

import (
	"context"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/log"

	"github.com/headroomhq/headroom/resources"
)

// reading is a Source that always reads the same usage, as tests and
// simulations use one.
type reading resources.Usage

func (r reading) Read(context.Context) (resources.Usage, error) { return resources.Usage(r), nil }

// A Monitor over a fixed source. Leave Source nil to read this process's
// cgroup (or the host when no limit applies).
func ExampleMonitor() {
	src := reading{CPU: 0.25, Memory: 0.5, MemoryBytes: 4 << 30, MemoryLimitBytes: 8 << 30}
	quiet := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Logger: quiet})
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
