package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/tuner"
)

// TestTunerOnRealServer: a worker whose only concurrency control is the
// headroom tuner runs 200 activities on a real server.
func TestTunerOnRealServer(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()

	ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.95, Logger: testutil.NopLogger})
	require.NoError(t, err)
	defer ctrl.Close()
	const maxSlots = 5
	tu, err := tuner.New(tuner.Options{Shared: ctrl,
		Activity: tuner.SlotSupplierOptions{Name: "activity", MinSlots: 1, MaxSlots: maxSlots, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: 1 << 20}},
	})
	require.NoError(t, err)

	var running, peak, done atomic.Int64
	work := func(ctx context.Context, i int) (int, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		running.Add(-1)
		done.Add(1)
		return i, nil
	}
	fanOut := func(ctx workflow.Context, n int) (int, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		fs := make([]workflow.Future, n)
		for i := range fs {
			fs[i] = workflow.ExecuteActivity(ctx, "work", i)
		}
		sum := 0
		for _, f := range fs {
			var v int
			if err := f.Get(ctx, &v); err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	}
	// WorkerStopTimeout: without it Stop returns before task goroutines
	// release their slots (the SDK waits 0 s by default).
	w := worker.New(c, "tuner-it", worker.Options{Tuner: tu, WorkerStopTimeout: 10 * time.Second})
	w.RegisterActivityWithOptions(work, activityName("work"))
	w.RegisterWorkflowWithOptions(fanOut, workflowName("fanOut"))
	require.NoError(t, w.Start())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "tuner-it"}, "fanOut", 200)
	require.NoError(t, err)
	var sum int
	require.NoError(t, run.Get(ctx, &sum))
	w.Stop()

	assert.Equal(t, 199*200/2, sum, "every activity completed once")
	assert.Equal(t, int64(200), done.Load())
	assert.LessOrEqual(t, peak.Load(), int64(maxSlots), "concurrency never exceeds MaxSlots")
	assert.Greater(t, peak.Load(), int64(1), "the tuner admitted more than MinSlots")
	act, wf := tu.Stats()
	for name, st := range map[string]tuner.Stats{"activity": act, "workflow": wf} {
		assert.Zero(t, st.Issued, "%s: no permit left after worker.Stop", name)
		assert.Zero(t, st.Used, name)
	}
	t.Logf("tuner-it: peak concurrency %d of %d, activity slots granted %d", peak.Load(), maxSlots, act.Granted)
}
