package tuner

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
)

// task is one activity task as the SDK drives it on its goroutine:
// reserved, marked used, its activity running (bound) and returned, then
// released. Some tasks never run an activity (an empty poll released unused,
// or a task the worker fails before any interceptor runs).
type task struct {
	p     *worker.SlotPermit
	stage int // 0 reserved, 1 marked used, 2 activity running, 3 returned
	skip  bool
	l     *lease
	dev   string
}

// TestLeasesFollowActivities drives a 4-GPU supplier through random
// interleavings of the SDK's per-task sequence (MarkSlotUsed, the
// interceptor taking a slot, the activity returning, ReleaseSlot) across up
// to 24 concurrent tasks. At every step each device holds at least the
// charges of the activities running on it (no running activity's charge is
// ever refunded, and its device never changes under it); every activity
// that asks gets a device; at the end nothing is left reserved.
func TestLeasesFollowActivities(t *testing.T) {
	devs := []gpu.Device{}
	for _, u := range []string{"GPU-a", "GPU-b", "GPU-c", "GPU-d"} {
		devs = append(devs, gpu.Device{UUID: u, Index: len(devs), Name: "test", UsedBytes: 8 << 30, TotalBytes: 80 << 30})
	}
	c, err := NewController(ControllerOptions{TargetGPUMemory: 0.9, TargetMemory: 0.9, Logger: testutil.NopLogger, SampleInterval: time.Millisecond,
		Source: testutil.NewSource(resources.Usage{Memory: 0.1, MemoryLimitBytes: 64 << 30}), GPU: testutil.NewGPU(devs...)})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(context.Background()))
	s, err := NewSlotSupplier(c, SlotSupplierOptions{Name: "gpu", MinSlots: 24, MaxSlots: 24, Resources: GPUMemory, Cost: Cost{GPUMemoryBytes: 8 << 30}, TrustCost: true})
	require.NoError(t, err)
	info := &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_NORMAL}

	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var tasks []*task
		handed := map[string]int{}
		for step := 0; step < 400 || len(tasks) > 0; step++ {
			if step < 400 && len(tasks) < 24 && rng.IntN(3) == 0 {
				p := s.TryReserveSlot(info)
				require.NotNil(t, p, "below MinSlots")
				tasks = append(tasks, &task{p: p, skip: rng.IntN(8) == 0})
			} else if len(tasks) > 0 {
				i := rng.IntN(len(tasks))
				tk := tasks[i]
				switch {
				case tk.stage == 0 && rng.IntN(4) == 0, tk.stage == 3, tk.stage == 1 && tk.skip:
					s.ReleaseSlot(testutil.ReleaseInfo{P: tk.p})
					tasks[i] = tasks[len(tasks)-1]
					tasks = tasks[:len(tasks)-1]
				case tk.stage == 0:
					s.MarkSlotUsed(testutil.MarkUsedInfo{P: tk.p})
					tk.stage = 1
				case tk.stage == 1:
					l, dev, ok := s.take()
					require.NotNil(t, l, "seed %d step %d: an activity found no slot to run on", seed, step)
					require.True(t, ok)
					tk.l, tk.dev, tk.stage = l, dev.UUID, 2
					handed[dev.UUID]++
				case tk.stage == 2:
					s.done(tk.l)
					tk.stage = 3
				}
			}
			if msg := checkLeases(c, s, tasks); msg != "" {
				t.Fatalf("seed %d step %d: %s", seed, step, msg)
			}
		}
		st := s.Stats()
		require.Zero(t, st.Issued, "seed %d: nothing left reserved", seed)
		if seed == 0 {
			t.Logf("devices handed out: %v", handed)
			require.Len(t, handed, 4, "every device is used")
		}
	}
}

// checkLeases reports what is wrong with the running activities' charges,
// if anything.
func checkLeases(c *Controller, s *SlotSupplier, tasks []*task) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	running := map[int]int32{}
	for _, tk := range tasks {
		if tk.stage != 2 {
			continue
		}
		if tk.l.sl == nil {
			return "a running activity was orphaned"
		}
		d := tk.l.sl.device
		if c.devUUIDs[d] != tk.dev {
			return fmt.Sprintf("a running activity's charge moved from %s to %s", tk.dev, c.devUUIDs[d])
		}
		running[d]++
	}
	for d, n := range running {
		if s.k.usedOn[d] < n {
			return fmt.Sprintf("device %d holds %d charges for %d running activities", d, s.k.usedOn[d], n)
		}
	}
	return ""
}
