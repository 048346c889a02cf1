package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/tuner"
)

// beatCall is one activity call the heartbeat workflow makes.
type beatCall struct {
	Queue, Activity string
	Attempts        int32
}

func beatWorkflow(ctx workflow.Context, call beatCall) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: call.Queue, StartToCloseTimeout: time.Minute, HeartbeatTimeout: time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 1, MaximumAttempts: call.Attempts},
	})
	var out string
	err := workflow.ExecuteActivity(ctx, call.Activity).Get(ctx, &out)
	return out, err
}

// load is work that cannot heartbeat (a model load): three heartbeat
// timeouts long. It reports the attempt it ran in.
func load(ctx context.Context) (string, error) {
	select {
	case <-time.After(3 * time.Second):
		return "attempt " + string(rune('0'+activity.GetInfo(ctx).Attempt)), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// resume records progress in its first attempt and fails; its second
// attempt runs three heartbeat timeouts without recording any and fails;
// the third returns the progress the server holds.
func resume(ctx context.Context) (string, error) {
	switch activity.GetInfo(ctx).Attempt {
	case 1:
		activity.RecordHeartbeat(ctx, "step-1")
		time.Sleep(1500 * time.Millisecond) // past the SDK's heartbeat throttle: the details reach the server
		return "", errors.New("first attempt fails after recording progress")
	case 2:
		if _, err := load(ctx); err != nil {
			return "", err
		}
		return "", errors.New("second attempt fails without recording progress")
	}
	var step string
	if err := activity.GetHeartbeatDetails(ctx, &step); err != nil {
		return "", err
	}
	return step, nil
}

// TestHeartbeatsOnTheActivitysBehalf: a pool built by pool.NewWorker keeps
// an activity that cannot heartbeat alive past its heartbeat timeout, on its
// first attempt; the same activity on a worker without the interceptor
// times out. The heartbeats sent for an activity carry the details it (or
// its previous attempt) recorded, so its progress survives an attempt that
// recorded none.
func TestHeartbeatsOnTheActivitysBehalf(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	reg := queues.Default()
	ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.95, Logger: testutil.NopLogger})
	require.NoError(t, err)
	defer ctrl.Close()

	preset := pool.PresetFor(queues.HighMemory)
	preset.Activity.Cost = tuner.Cost{MemoryBytes: 1 << 20}
	w, tu, err := pool.NewWorker(c, reg, queues.HighMemoryAnalytics, ctrl, preset, worker.Options{})
	require.NoError(t, err)
	defer tu.Close()
	w.RegisterActivityWithOptions(load, activityName("Load"))
	w.RegisterActivityWithOptions(resume, activityName("Resume"))
	require.NoError(t, w.Start())
	defer w.Stop()

	startPlain(t, c, "Beat", beatWorkflow, map[string]any{"Load": load})

	run := func(call beatCall) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Beat", call)
		require.NoError(t, err)
		var out string
		err = r.Get(ctx, &out)
		return out, err
	}

	out, err := run(beatCall{Queue: queues.HighMemoryAnalytics.Name, Activity: "Load", Attempts: 1})
	require.NoError(t, err, "3 s of work with a 1 s heartbeat timeout, heartbeated by the pool")
	assert.Equal(t, "attempt 1", out)

	_, err = run(beatCall{Queue: "plain", Activity: "Load", Attempts: 1})
	var te *temporal.TimeoutError
	require.ErrorAs(t, err, &te, "without the interceptor the same work times out")
	assert.Equal(t, enumspb.TIMEOUT_TYPE_HEARTBEAT, te.TimeoutType())

	out, err = run(beatCall{Queue: queues.HighMemoryAnalytics.Name, Activity: "Resume", Attempts: 3})
	require.NoError(t, err)
	assert.Equal(t, "step-1", out, "the first attempt's progress, kept through the second's heartbeats")
}
