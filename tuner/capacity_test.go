package tuner_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// Stats.Fit is the capacity an autoscaler reads: exactly how many more
// slots the supplier would admit now, one after another (no ramp), under
// its targets, MaxSlots, MinSlots and on healthy devices only.
func TestFitIsWhatWouldBeAdmitted(t *testing.T) {
	for _, tc := range []struct {
		mem, gpuA, gpuB float64
		sickB           bool
		min, max        int
	}{
		{mem: 0.1, min: 0, max: 100},
		{mem: 0.5, min: 0, max: 100},
		{mem: 0.79, min: 0, max: 100},
		{mem: 0.85, min: 2, max: 100}, // over target: MinSlots only
		{mem: 0.1, min: 0, max: 2},
		{mem: 0.1, gpuA: 0.2, gpuB: 0.6, min: 0, max: 100},
		{mem: 0.1, gpuA: 0.2, gpuB: 0.2, sickB: true, min: 1, max: 100},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			opts := tuner.ControllerOptions{TargetMemory: 0.8}
			supOpts := tuner.SlotSupplierOptions{MinSlots: tc.min, MaxSlots: tc.max, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: GiB / 20}, TrustCost: true}
			if tc.gpuA > 0 {
				why := ""
				if tc.sickB {
					why = "Xid 79"
				}
				opts.TargetGPUMemory = 0.9
				opts.GPU = testutil.NewGPU(gpu.Device{UUID: "GPU-a", UsedBytes: uint64(tc.gpuA * 80 * GiB), TotalBytes: 80 * GiB},
					gpu.Device{UUID: "GPU-b", UsedBytes: uint64(tc.gpuB * 80 * GiB), TotalBytes: 80 * GiB, Unhealthy: why})
				supOpts.Resources = tuner.GPUMemory | tuner.Memory
				supOpts.Cost.GPUMemoryBytes = 4 * GiB
			}
			c, _ := fixedController(t, resources.Usage{Memory: tc.mem, MemoryLimitBytes: 10 * GiB}, opts)
			s, err := tuner.NewSlotSupplier(c, supOpts)
			require.NoError(t, err)
			fit := s.Stats().Fit
			var held []*worker.SlotPermit
			for p := s.TryReserveSlot(info); p != nil; p = s.TryReserveSlot(info) {
				held = append(held, p)
			}
			t.Logf("fit %d, admitted %d", fit, len(held))
			assert.Equal(t, len(held), fit, "Fit is what is admitted")
			assert.Zero(t, s.Stats().Fit, "and then nothing more fits")
			for _, p := range held {
				s.ReleaseSlot(testutil.ReleaseInfo{P: p})
			}
		})
	}
}
