package tuner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/tuner"
)

const GiB = 1 << 30

// slowAlloc is the workload the SDK's reactive tuner overshoots on: each task
// reaches 3 % of memory over 2 s and holds it 3 s; the backlog exceeds what
// fits under the target.
func slowAlloc(pollers int) sim.Scenario {
	return sim.Scenario{
		Host:     &sim.Host{BaseMem: 0.2, BaseCPU: 0.05, MemLimit: 64 * GiB},
		Task:     func(int) sim.Task { return sim.Task{Mem: 0.03, Ramp: 2 * time.Second, Hold: 3 * time.Second} },
		Tasks:    100000,
		Pollers:  pollers,
		Duration: 60 * time.Second,
		Warmup:   10 * time.Second,
		Resource: "memory",
		Target:   0.8,
	}
}

// slowAllocSupplier is an activity supplier priced for slowAlloc's tasks (3 %
// of 64 GiB, footprint settled after 2 s) with the SDK's 50 ms ramp.
func slowAllocSupplier(t *testing.T, c *tuner.Controller) *tuner.SlotSupplier {
	t.Helper()
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{
		Name: "activity", MinSlots: 1, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond,
		Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 3 / 100},
	})
	require.NoError(t, err)
	return sup
}

func newController(t *testing.T, h *sim.Host, opts tuner.ControllerOptions) *tuner.Controller {
	t.Helper()
	src, g := h.Sources()
	opts.Source = src
	if opts.TargetGPUMemory > 0 {
		opts.GPU = g
	}
	if opts.SampleInterval == 0 {
		opts.SampleInterval = 100 * time.Millisecond
	}
	opts.Logger = testutil.NopLogger
	c, err := tuner.NewController(opts)
	require.NoError(t, err)
	require.NoError(t, c.WaitReady(context.Background()))
	return c
}
