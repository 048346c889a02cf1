package tuner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// An unhealthy GPU gets no new slots; the others still do; with every GPU
// unhealthy the pool takes no GPU work at all, MinSlots included, and
// refuses with its own reason; a device that recovers is admitted to again.
func TestUnhealthyDevicesTakeNoNewSlots(t *testing.T) {
	dev := func(uuid, why string) gpu.Device {
		return gpu.Device{UUID: uuid, Name: "test", UsedBytes: 8 << 30, TotalBytes: 80 << 30, Unhealthy: why}
	}
	g := testutil.NewGPU(dev("GPU-a", ""), dev("GPU-b", ""))
	logs := &testutil.RecordingLogger{}
	c, err := tuner.NewController(tuner.ControllerOptions{TargetGPUMemory: 0.9, TargetMemory: 0.9, SampleInterval: 5 * time.Millisecond, Logger: logs,
		Source: testutil.NewSource(resources.Usage{Memory: 0.1, MemoryLimitBytes: 64 << 30}), GPU: g})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(context.Background()))
	s, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu", MinSlots: 1, MaxSlots: 20, Resources: tuner.GPUMemory,
		Cost: tuner.Cost{GPUMemoryBytes: 4 << 30}, TrustCost: true})
	require.NoError(t, err)
	reserve := func() (*worker.SlotPermit, string) {
		p := s.TryReserveSlot(info)
		if p == nil {
			return nil, ""
		}
		d, _ := s.DeviceOf(p)
		return p, d
	}
	settle := func(devs ...gpu.Device) {
		g.Set(devs...)
		time.Sleep(50 * time.Millisecond) // several readings
	}

	settle(dev("GPU-a", "Xid 79 1s ago"), dev("GPU-b", ""))
	var held []*worker.SlotPermit
	for range 6 {
		p, d := reserve()
		require.NotNil(t, p)
		assert.Equal(t, "GPU-b", d, "only the healthy device is charged")
		held = append(held, p)
	}

	settle(dev("GPU-a", "Xid 79 1s ago"), dev("GPU-b", "row remap pending"))
	for _, p := range held {
		s.ReleaseSlot(testutil.ReleaseInfo{P: p})
	}
	held = nil
	p, _ := reserve()
	assert.Nil(t, p, "every device unhealthy: not even MinSlots")
	assert.Positive(t, s.Stats().Refused[tuner.ReasonUnhealthy])
	assert.Equal(t, "gpu_unhealthy", tuner.ReasonUnhealthy.String())

	settle(dev("GPU-a", ""), dev("GPU-b", "row remap pending"))
	p, d := reserve()
	require.NotNil(t, p, "a recovered device is admitted to again")
	assert.Equal(t, "GPU-a", d)
	s.ReleaseSlot(testutil.ReleaseInfo{P: p})
	assert.Equal(t, 2, logs.Count("GPU unhealthy"), "one warning per device turning unhealthy: %v", logs.Lines())
	assert.Equal(t, 1, logs.Count("GPU healthy again"))
}
