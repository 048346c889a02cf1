package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/internal/testutil"
)

// Bad input, sent as a client in another language would (JSON objects with
// fields missing, zero or negative), fails the workflow on its first
// attempt with a non-retryable error naming the field, and no stage is
// scheduled. And the activity-only pools (GPU, high-memory) hold no
// workflow poll: the server sees workflow pollers on the CPU queue only.
func TestBadInputAndActivityOnlyPools(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	cfg := pipeline.Config{Rows: 100, DatasetMB: 4, GPUMemMB: 64, LoadTime: 10 * time.Millisecond, Epochs: 1, GPUWait: time.Minute, OutDir: t.TempDir()}
	env, err := pipeline.NewEnv(cfg, nil, testutil.NopLogger)
	require.NoError(t, err)
	defer env.Close()
	pools, err := env.StartPools(c, cfg, pipeline.CPUQueue, pipeline.HighMemQueue, pipeline.GPUQueue)
	require.NoError(t, err)
	defer func() { assert.Zero(t, pipeline.StopPools(pools), "no slot left reserved") }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			in    map[string]any
			field string
			// decode: the value does not fit the field's Go type, and the
			// SDK fails the workflow on decoding its input (not retried).
			decode bool
		}{
			{"no fields", map[string]any{}, "Rows", false},
			{"no DatasetMB", map[string]any{"ID": 1, "Rows": 10, "Epochs": 1}, "DatasetMB", false},
			{"zero rows", map[string]any{"Rows": 0, "DatasetMB": 4, "Epochs": 1}, "Rows", false},
			{"negative dataset", map[string]any{"Rows": 10, "DatasetMB": -4, "Epochs": 1}, "DatasetMB", false},
			{"negative load time", map[string]any{"Rows": 10, "DatasetMB": 4, "Epochs": 1, "LoadTime": -1}, "LoadTime", false},
			{"dataset past the limit", map[string]any{"Rows": 10, "DatasetMB": 1 << 40, "Epochs": 1}, "DatasetMB", false},
			{"negative GPU memory", map[string]any{"Rows": 10, "DatasetMB": 4, "Epochs": 1, "GPUMemMB": -5}, "GPUMemMB", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bad-" + tc.name, TaskQueue: pipeline.CPUQueue.Name},
					pipeline.WorkflowName, tc.in)
				require.NoError(t, err)
				err = run.Get(ctx, nil)
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.field, "the error names the field")
				var app *temporal.ApplicationError
				if !tc.decode {
					require.True(t, errors.As(err, &app), "an application error: %v", err)
					assert.Equal(t, pipeline.ErrInvalidInput, app.Type())
					assert.True(t, app.NonRetryable())
				}
				h := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
				tasks := 0
				for h.HasNext() {
					ev, err := h.Next()
					require.NoError(t, err)
					assert.NotEqual(t, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, ev.GetEventType(), "no stage runs on bad input")
					if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
						tasks++
					}
				}
				assert.Equal(t, 1, tasks, "failed on the first workflow task, not retried")
			})
		}
	})

	t.Run("activity-only pools hold no workflow poll", func(t *testing.T) {
		pollers := func(q string, tt enumspb.TaskQueueType) []*taskqueuepb.PollerInfo {
			r, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
				Namespace: srv.GetDefaultNamespace(), TaskQueue: &taskqueuepb.TaskQueue{Name: q, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}, TaskQueueType: tt})
			require.NoError(t, err)
			return r.GetPollers()
		}
		// Pollers show once they have polled; the activity pollers of every
		// pool, and the CPU pool's workflow pollers, are there within seconds.
		require.Eventually(t, func() bool {
			for _, q := range []string{pipeline.CPUQueue.Name, pipeline.GPUQueue.Name, pipeline.HighMemQueue.Name} {
				if len(pollers(q, enumspb.TASK_QUEUE_TYPE_ACTIVITY)) == 0 {
					return false
				}
			}
			return len(pollers(pipeline.CPUQueue.Name, enumspb.TASK_QUEUE_TYPE_WORKFLOW)) > 0
		}, 30*time.Second, 200*time.Millisecond)
		assert.Empty(t, pollers(pipeline.GPUQueue.Name, enumspb.TASK_QUEUE_TYPE_WORKFLOW), "GPU pool")
		assert.Empty(t, pollers(pipeline.HighMemQueue.Name, enumspb.TASK_QUEUE_TYPE_WORKFLOW), "high-memory pool")
	})
}
