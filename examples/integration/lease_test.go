package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// devices is a host of simulated GPUs whose memory the activities allocate:
// what NVML would read is the base plus what activities hold on each.
type devices struct {
	mu    sync.Mutex
	uuids []string
	used  []uint64
	peak  []float64
	ran   []int
}

const devTotal = 80 << 30

func newDevices(n int) *devices {
	d := &devices{used: make([]uint64, n), peak: make([]float64, n), ran: make([]int, n)}
	for i := range n {
		d.uuids = append(d.uuids, fmt.Sprintf("GPU-%02d", i))
		d.used[i] = devTotal / 10
	}
	return d
}

func (d *devices) read() []gpu.Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]gpu.Device, len(d.uuids))
	for i, u := range d.uuids {
		out[i] = gpu.Device{UUID: u, Index: i, Name: "Simulated GPU", UsedBytes: d.used[i], TotalBytes: devTotal}
	}
	return out
}

func (d *devices) index(uuid string) int {
	for i, u := range d.uuids {
		if u == uuid {
			return i
		}
	}
	return -1
}

// start counts an activity on device i.
func (d *devices) start(i int) {
	d.mu.Lock()
	d.ran[i]++
	d.mu.Unlock()
}

// alloc adds b bytes on device i (negative: frees) and records the peak.
func (d *devices) alloc(i int, b int64) {
	d.mu.Lock()
	d.used[i] = uint64(int64(d.used[i]) + b)
	d.peak[i] = max(d.peak[i], float64(d.used[i])/devTotal)
	d.mu.Unlock()
}

// TestActivitiesRunOnTheirLease: a GPU pool on 2 and on 8 simulated devices
// runs activities that each allocate 8 GiB after 1 s (imports first) and
// hold it for 1 s on the device their lease names. Admission charges each to one device; because the activity runs
// where it was charged, no device goes above its 0.85 target (+0.02) and
// every device is used. The same pool on 8 devices whose activities ignore
// the lease and use device 0, as CUDA does when nothing tells it otherwise,
// overshoots device 0 in its first wave (3 slots charged to each device
// while the cost is unconfirmed, all of them on device 0): the per-device
// budget holds only with the lease.
func TestActivitiesRunOnTheirLease(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	startPlain(t, c, "Loads", func(ctx workflow.Context, n int) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: queues.GPUMLInference.Name, StartToCloseTimeout: time.Minute})
		fs := make([]workflow.Future, n)
		for i := range fs {
			fs[i] = workflow.ExecuteActivity(ctx, "Load")
		}
		for _, f := range fs {
			if err := f.Get(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	for _, tc := range []struct {
		devices, activities int
		ignoreLease         bool
	}{
		{2, 60, false},
		{8, 160, false},
		{8, 60, true},
	} {
		t.Run(fmt.Sprintf("%d devices, ignore lease %v", tc.devices, tc.ignoreLease), func(t *testing.T) {
			const target, load = 0.85, 8 << 30
			devs := newDevices(tc.devices)
			src := testutil.NewSource(resources.Usage{CPU: 0.1, CPUCores: 16, Memory: 0.2, MemoryBytes: 20 << 30, MemoryLimitBytes: 100 << 30})
			g := testutil.NewGPU()
			g.SetFunc(devs.read)
			ctrl, err := tuner.NewController(tuner.ControllerOptions{Source: src, GPU: g, TargetMemory: 0.8, TargetGPUMemory: target,
				SampleInterval: 50 * time.Millisecond, Logger: testutil.NopLogger})
			require.NoError(t, err)
			defer ctrl.Close()
			require.NoError(t, ctrl.WaitReady(context.Background()))

			var leased, unleased atomic.Int64
			var badEnv atomic.Value
			work := func(ctx context.Context) error {
				l, ok := gpu.LeaseFromContext(ctx)
				if !ok {
					unleased.Add(1)
					return nil
				}
				leased.Add(1)
				if env := l.Env(); len(env) != 1 || env[0] != "CUDA_VISIBLE_DEVICES="+l.UUID {
					badEnv.Store(fmt.Sprint(env))
				}
				i := devs.index(l.UUID)
				if tc.ignoreLease {
					i = 0
				}
				devs.start(i)
				time.Sleep(time.Second) // imports, then the model's weights
				devs.alloc(i, load)
				defer devs.alloc(i, -load)
				time.Sleep(time.Second)
				return nil
			}
			preset := pool.PresetFor(queues.GPU)
			preset.Activity.Cost = tuner.Cost{GPUMemoryBytes: load, MemoryBytes: 1 << 20}
			preset.Activity.MaxSlots = 100
			preset.Activity.RampThrottle = 20 * time.Millisecond
			preset.ActivityPollers = 16
			w, tu, err := pool.NewWorker(c, queues.Default(), queues.GPUMLInference, ctrl, preset, worker.Options{})
			require.NoError(t, err)
			defer tu.Close()
			w.RegisterActivityWithOptions(work, activityName("Load"))
			require.NoError(t, w.Start())

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Loads", tc.activities)
			require.NoError(t, err)
			require.NoError(t, run.Get(ctx, nil))
			w.Stop()

			act, _ := tu.Stats()
			t.Logf("per-device peak %.3f, activities per device %v, learned cost %+v %v", devs.peak, devs.ran, act.Cost, act.Refused)
			assert.Zero(t, act.Issued, "nothing left reserved")
			assert.Zero(t, unleased.Load(), "every GPU activity has a lease")
			assert.Equal(t, int64(tc.activities), leased.Load())
			assert.Nil(t, badEnv.Load(), "Env names the leased device")
			if tc.ignoreLease {
				assert.Greater(t, devs.peak[0], target+0.02, "without the lease, device 0 takes every other device's share")
				return
			}
			for i, p := range devs.peak {
				assert.LessOrEqual(t, p, target+0.02, "device %d", i)
				assert.Positive(t, devs.ran[i], "device %d is used", i)
			}
		})
	}
}
