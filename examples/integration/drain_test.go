package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
	"github.com/headroomhq/headroom/tuner"
)

// TestStopDrainsAndReports: a pool worker stopped while its activity runs
// longer than the preset's drain window cancels it at the window's end and
// reports it before Stop returns. Stop returns with nothing reserved, and
// the activity runs again on another worker within seconds, not at its 30 s
// heartbeat timeout. Without the drain the SDK cancels the activity at
// WorkerStopTimeout and Stop returns before it is reported: its slot is
// still held then, and the retry comes 10 s or more later.
func TestStopDrainsAndReports(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	reg := queues.Default()
	started := make(chan int32, 4)
	long := func(ctx context.Context) (string, error) {
		info := activity.GetInfo(ctx)
		started <- info.Attempt
		if info.Attempt > 1 {
			return fmt.Sprintf("attempt %d", info.Attempt), nil
		}
		select { // longer than the drain window, and it honours its context
		case <-time.After(time.Minute):
			return "attempt 1", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	newPool := func() (worker.Worker, *tuner.Tuner) {
		// One controller per worker, as in two processes: a controller
		// holds one pool per queue.
		ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.95, Logger: testutil.NopLogger})
		require.NoError(t, err)
		t.Cleanup(func() { ctrl.Close() })
		preset := pool.PresetFor(queues.HighMemory)
		preset.Activity.Cost = tuner.Cost{MemoryBytes: 1 << 20}
		preset.DrainWindow = time.Second
		w, tu, err := pool.NewWorker(c, reg, queues.HighMemoryAnalytics, ctrl, preset, worker.Options{})
		require.NoError(t, err)
		w.RegisterActivityWithOptions(long, activityName("Long"))
		require.NoError(t, w.Start())
		return w, tu
	}

	startPlain(t, c, "Drained", func(ctx workflow.Context) (string, error) {
		ctx = workflow.WithActivityOptions(ctx, routing.Options(queues.HighMemoryAnalytics))
		var out string
		err := workflow.ExecuteActivity(ctx, "Long").Get(ctx, &out)
		return out, err
	}, nil)

	first, firstTuner := newPool()
	defer firstTuner.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Drained")
	require.NoError(t, err)
	require.Equal(t, int32(1), <-started)

	second, secondTuner := newPool()
	defer secondTuner.Close()
	defer second.Stop()

	stopAt := time.Now()
	first.Stop()
	stopped := time.Since(stopAt)
	act, wf := firstTuner.Stats()
	assert.Zero(t, act.Issued+wf.Issued, "nothing reserved when Stop returns")
	assert.Less(t, stopped, 5*time.Second, "Stop took the drain window and the report, not WorkerStopTimeout")

	select {
	case a := <-started:
		assert.Equal(t, int32(2), a)
		assert.Less(t, time.Since(stopAt), 10*time.Second, "the retry came within seconds of the stop")
	case <-ctx.Done():
		t.Fatal("the activity was not retried")
	}
	var out string
	require.NoError(t, run.Get(ctx, &out))
	assert.Equal(t, "attempt 2", out)
}
