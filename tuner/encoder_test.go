package tuner_test

import (
	"context"
	"fmt"
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

func encoderDev(uuid string, sessions, util int) gpu.Device {
	return gpu.Device{UUID: uuid, Name: "NVIDIA L4", UsedBytes: 2 << 30, TotalBytes: 24 << 30,
		Encoder: gpu.Encoder{Known: true, Sessions: sessions, Utilization: util, Capacity: [3]int{-1, -1, -1}}}
}

// videoPool is a controller governing encoders (and CPU) over g, and a video
// supplier on it.
func videoPool(t *testing.T, g gpu.Source, opts tuner.ControllerOptions, cost tuner.Cost) (*tuner.SlotSupplier, *testutil.RecordingLogger) {
	t.Helper()
	logs := &testutil.RecordingLogger{}
	opts.TargetCPU, opts.SampleInterval, opts.Logger, opts.GPU = 0.9, 5*time.Millisecond, logs, g
	opts.Source = testutil.NewSource(resources.Usage{CPU: 0.1, CPUCores: 64, MemoryLimitBytes: 64 << 30})
	c, err := tuner.NewController(opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.WaitReady(context.Background()))
	cost.CPUCores = 0.5
	s, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "video", MinSlots: 1, MaxSlots: 20,
		Resources: tuner.CPU | tuner.Encoder, Cost: cost, TrustCost: true})
	require.NoError(t, err)
	return s, logs
}

// fill reserves until refused and returns the permits and the devices they
// were charged to.
func fill(s *tuner.SlotSupplier) ([]*worker.SlotPermit, map[string]int) {
	var held []*worker.SlotPermit
	on := map[string]int{}
	for p := s.TryReserveSlot(info); p != nil; p = s.TryReserveSlot(info) {
		held = append(held, p)
		d, _ := s.DeviceOf(p)
		on[d]++
	}
	return held, on
}

// With the cap known, each device takes as many sessions as it allows, less
// those other processes hold, and no more; a session freed is taken again
// on its device; engine time bounds slots too.
func TestEncoderSessionsPerDevice(t *testing.T) {
	g := testutil.NewGPU(encoderDev("GPU-a", 0, 0), encoderDev("GPU-b", 1, 0))
	s, _ := videoPool(t, g, tuner.ControllerOptions{TargetEncoder: 0.9, EncoderSessions: 3}, tuner.Cost{})
	held, on := fill(s)
	assert.Equal(t, map[string]int{"GPU-a": 3, "GPU-b": 2}, on, "cap 3 per device; one of GPU-b's is another process's")
	st := s.Stats()
	assert.Zero(t, st.Fit)
	assert.Positive(t, st.Refused[tuner.ReasonEncoder])
	assert.Equal(t, "encoder", tuner.ReasonEncoder.String())

	s.ReleaseSlot(testutil.ReleaseInfo{P: held[0]})
	p := s.TryReserveSlot(info)
	require.NotNil(t, p)
	d, _ := s.DeviceOf(p)
	assert.Equal(t, "GPU-a", d, "the freed session is taken again where it was")
	for _, p := range append(held[1:], p) {
		s.ReleaseSlot(testutil.ReleaseInfo{P: p})
	}
	assert.Zero(t, s.Stats().Issued)

	// Engine time: 30 % per slot against 90 % of the engine, one device
	// already 40 % busy: 1 + 3 slots.
	g2 := testutil.NewGPU(encoderDev("GPU-a", 0, 40), encoderDev("GPU-b", 0, 0))
	s2, _ := videoPool(t, g2, tuner.ControllerOptions{TargetEncoder: 0.9}, tuner.Cost{EncoderLoad: 30})
	_, on = fill(s2)
	assert.Equal(t, map[string]int{"GPU-a": 1, "GPU-b": 3}, on)
}

// A host whose GPUs report no encoder: the class is budgeted on its other
// resources, charged to no device, and the log says so once.
func TestNoEncoderFallsBack(t *testing.T) {
	dev := gpu.Device{UUID: "GPU-h100", Name: "NVIDIA H100", UsedBytes: 1 << 30, TotalBytes: 80 << 30}
	s, logs := videoPool(t, testutil.NewGPU(dev), tuner.ControllerOptions{TargetEncoder: 0.9}, tuner.Cost{})
	held, on := fill(s)
	assert.Len(t, held, 20, "MaxSlots: CPU has room for all")
	assert.Equal(t, map[string]int{"": 20}, on, "no device charged")
	for _, p := range held {
		s.ReleaseSlot(testutil.ReleaseInfo{P: p})
	}
	assert.Equal(t, 1, logs.Count("no GPU here reports a video encoder"), "%v", logs.Lines())
}

// NVML losing the GPUs (GPU_IS_LOST and the like) gates every device of a
// GPU pool, MinSlots included, until a re-Init reads them again.
func TestLostGPUsTakeNoSlots(t *testing.T) {
	g := testutil.NewGPU(gpu.Device{UUID: "GPU-a", Name: "test", UsedBytes: 8 << 30, TotalBytes: 80 << 30},
		gpu.Device{UUID: "GPU-b", Name: "test", UsedBytes: 8 << 30, TotalBytes: 80 << 30})
	logs := &testutil.RecordingLogger{}
	c, err := tuner.NewController(tuner.ControllerOptions{TargetGPUMemory: 0.9, SampleInterval: 5 * time.Millisecond, Logger: logs,
		Source: testutil.NewSource(resources.Usage{}), GPU: g})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(context.Background()))
	s, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu", MinSlots: 2, MaxSlots: 8, Resources: tuner.GPUMemory,
		Cost: tuner.Cost{GPUMemoryBytes: 4 << 30}, TrustCost: true})
	require.NoError(t, err)

	g.Fail(fmt.Errorf("%w: nvmlDeviceGetCount returned 15", gpu.ErrGPUUnavailable))
	time.Sleep(50 * time.Millisecond)
	assert.Nil(t, s.TryReserveSlot(info), "lost: not even MinSlots")
	assert.Positive(t, s.Stats().Refused[tuner.ReasonUnhealthy])
	assert.Zero(t, s.Stats().Fit)
	assert.Equal(t, 1, logs.Count("NVML lost the GPUs"), "%v", logs.Lines())

	g.Fail(nil)
	time.Sleep(50 * time.Millisecond)
	p := s.TryReserveSlot(info)
	require.NotNil(t, p, "re-Init read the devices again: admitted")
	s.ReleaseSlot(testutil.ReleaseInfo{P: p})
}
