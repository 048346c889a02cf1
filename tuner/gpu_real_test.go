//go:build linux && cgo

package tuner_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/tuner"
)

// loadScript is one simulated model load: import PyTorch, grow to 8 GiB of
// GPU memory in 1 GiB steps over 2 s, hold it 2 s, exit (which frees it).
const loadScript = `
import time, torch
xs = []
for _ in range(8):
    xs.append(torch.empty(1 << 30, dtype=torch.uint8, device="cuda:0"))
    torch.cuda.synchronize()
    time.sleep(0.25)
time.sleep(2)
`

// The tuner on a real GPU, with real NVML readings and real processes whose
// footprint shows seconds after their slot was used (PyTorch's import, then
// the allocation: nothing shows for the first ~3.5 s, all of it by ~6 s).
// HEADROOM_REAL_GPU_SETTLE overrides the declared settle time (6 s). Skipped
// without an NVIDIA GPU and PyTorch.
func TestRealGPUModelLoads(t *testing.T) {
	probe, err := gpu.NewNVMLSource(gpu.NVMLOptions{})
	if err != nil {
		t.Skipf("no NVIDIA GPU on this host: %v", err)
	}
	defer probe.Close()
	if err := exec.Command("python3", "-c", "import torch; assert torch.cuda.is_available()").Run(); err != nil {
		t.Skipf("python3 with CUDA PyTorch not available: %v", err)
	}
	settle := 6 * time.Second // PyTorch's import, then 2 s of allocation
	if v, err := time.ParseDuration(os.Getenv("HEADROOM_REAL_GPU_SETTLE")); err == nil {
		settle = v
	}
	ctx := context.Background()
	ds, err := probe.Devices(ctx)
	require.NoError(t, err)
	dev := ds[0]
	total := float64(dev.TotalBytes)
	// Room for five 8 GiB loads (plus CUDA contexts) above what is in use now.
	target := (float64(dev.UsedBytes) + 44*(1<<30)) / total
	t.Logf("%s: %d of %d MiB in use; target %.3f", dev.Name, dev.UsedBytes>>20, dev.TotalBytes>>20, target)

	c, err := tuner.NewController(tuner.ControllerOptions{TargetGPUMemory: target, SampleInterval: 100 * time.Millisecond, Logger: testutil.NopLogger})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(ctx))
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu", MinSlots: 1, MaxSlots: 20,
		Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 8 << 30}})
	require.NoError(t, err)

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // an independent reading, every 20 ms
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if ds, err := probe.Devices(ctx); err == nil && ds[0].UsedBytes > peak.Load() {
				peak.Store(ds[0].UsedBytes)
			}
		}
	}()

	const tasks = 24
	var next, running, maxRunning atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 { // reservers, like the SDK's pollers: more than fit
		wg.Go(func() {
			for next.Add(1) <= tasks {
				p, err := sup.ReserveSlot(ctx, info)
				if !assert.NoError(t, err) {
					return
				}
				sup.MarkSlotUsed(testutil.MarkUsedInfo{P: p})
				n := running.Add(1)
				for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
				}
				out, err := exec.Command("python3", "-c", loadScript).CombinedOutput()
				assert.NoError(t, err, "%s", out)
				running.Add(-1)
				sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	st := sup.Stats()
	peakFrac := float64(peak.Load()) / total
	t.Logf("declared settle time %v: %d loads in %v; at most %d at once; peak %.3f of the device (target %.3f); learned settle time %v, cost %d MiB; prompt release %v; refused %v",
		settle, tasks, time.Since(start).Round(time.Second), maxRunning.Load(), peakFrac, target, st.SettleTime, st.Cost.GPUMemoryBytes>>20, st.Confirmed, st.Refused)
	assert.LessOrEqual(t, peakFrac, target+0.02, "no overshoot on a real GPU")
	assert.Zero(t, st.Issued, "every permit released")
}
