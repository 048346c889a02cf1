package routing_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
)

func TestOptionsMerge(t *testing.T) {
	o := routing.Options(queues.GPUMLInference, workflow.ActivityOptions{StartToCloseTimeout: 3 * time.Hour}, workflow.ActivityOptions{HeartbeatTimeout: 5 * time.Second})
	assert.Equal(t, "gpu-ml-inference", o.TaskQueue)
	assert.Equal(t, 3*time.Hour, o.StartToCloseTimeout, "overridden")
	assert.Equal(t, 5*time.Second, o.HeartbeatTimeout, "overridden by the later override")
	require.NotNil(t, o.RetryPolicy, "class default kept")
	assert.Contains(t, o.RetryPolicy.NonRetryableErrorTypes, routing.ResourceExhaustedType)
	o = routing.Options(queues.CPUStandard, workflow.ActivityOptions{TaskQueue: "elsewhere"})
	assert.Equal(t, "cpu-standard", o.TaskQueue, "the queue is the route's, never an override's")
}

// ranOn records which queue each attempt ran on.
type ranOn struct {
	mu     sync.Mutex
	queues []string
}

func (r *ranOn) add(ctx context.Context) string {
	q := activity.GetInfo(ctx).TaskQueue
	r.mu.Lock()
	r.queues = append(r.queues, q)
	r.mu.Unlock()
	return q
}

var runs ranOn

func Train(ctx context.Context, n int) (string, error) {
	q := runs.add(ctx)
	if q == queues.GPUMLInference.Name {
		// What the server reports when no GPU worker started it in time.
		return "", temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	}
	return "trained on " + q, nil
}

func Aggregate(ctx context.Context, rows int) (string, error) {
	q := runs.add(ctx)
	if q == queues.CPUStandard.Name {
		return "", routing.ResourceExhausted("memory", errors.New("cannot allocate"))
	}
	return "aggregated on " + q, nil
}

func Validate(ctx context.Context) (string, error) { return "ok on " + runs.add(ctx), nil }

func Forgotten(ctx context.Context) error { return nil }

func table(t *testing.T) *routing.Table {
	tb := routing.NewTable(queues.Default())
	cpu, hm := queues.CPUStandard, queues.HighMemoryAnalytics
	require.NoError(t, tb.Add(Train, routing.Route{Queue: queues.GPUMLInference, Fallback: &cpu, ScheduleToStart: 30 * time.Second}))
	require.NoError(t, tb.Add(Aggregate, routing.Route{Queue: queues.CPUStandard, Escalate: &hm}))
	require.NoError(t, tb.Add(Validate, routing.Route{Queue: queues.CPUStandard}))
	return tb
}

func Pipeline(tb *routing.Table) func(ctx workflow.Context) ([]string, error) {
	return func(ctx workflow.Context) ([]string, error) {
		var out []string
		for _, call := range []struct {
			act  any
			args []any
		}{{Validate, nil}, {Train, []any{1}}, {Aggregate, []any{10}}} {
			var s string
			if err := tb.Execute(ctx, call.act, call.args...).Get(ctx, &s); err != nil {
				return out, err
			}
			out = append(out, s)
		}
		return out, nil
	}
}

func TestFallbackAndEscalation(t *testing.T) {
	runs = ranOn{}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	tb := table(t)
	env.RegisterWorkflowWithOptions(Pipeline(tb), workflow.RegisterOptions{Name: "Pipeline"})
	env.RegisterActivity(Train)
	env.RegisterActivity(Aggregate)
	env.RegisterActivity(Validate)
	env.ExecuteWorkflow("Pipeline")
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var out []string
	require.NoError(t, env.GetWorkflowResult(&out))
	assert.Equal(t, []string{"ok on cpu-standard", "trained on cpu-standard", "aggregated on high-memory-analytics"}, out)
	assert.Equal(t, []string{"cpu-standard", "gpu-ml-inference", "cpu-standard", "cpu-standard", "high-memory-analytics"}, runs.queues,
		"GPU tried once then CPU; CPU exhausted once (not retried there) then escalated once")
}

func TestUnroutedActivityIsAnError(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	tb := table(t)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		return tb.Execute(ctx, Forgotten).Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "W"})
	env.RegisterActivity(Forgotten)
	env.ExecuteWorkflow("W")
	require.Error(t, env.GetWorkflowError())
	assert.Contains(t, env.GetWorkflowError().Error(), "no route")
	assert.Contains(t, env.GetWorkflowError().Error(), "Forgotten")
}

func TestTableValidation(t *testing.T) {
	tb := routing.NewTable(queues.Default())
	err := tb.Add(Train, routing.Route{Queue: queues.Queue{Name: "gpu-ml-inferense", Class: queues.GPU}})
	require.ErrorIs(t, err, queues.ErrUnknownQueue)
	assert.Contains(t, err.Error(), "did you mean")
	cpu := queues.CPUStandard
	assert.Error(t, tb.Add(Train, routing.Route{Queue: queues.GPUMLInference, Fallback: &cpu}), "fallback needs a schedule-to-start timeout")
	_, err = tb.Lookup("Train")
	assert.ErrorIs(t, err, routing.ErrUnrouted)
	assert.Equal(t, "Train", routing.ActivityName(Train))
	assert.Equal(t, "Train", routing.ActivityName("Train"))
}

func TestRegistrationCheck(t *testing.T) {
	tb := table(t)
	regs := routing.Registrations{}
	regs.Add(queues.CPUStandard, Validate, Train, Aggregate)
	regs.Add(queues.HighMemoryAnalytics, Aggregate)
	err := tb.Check(regs)
	require.ErrorIs(t, err, routing.ErrNotRegistered)
	assert.Equal(t, "routing: routed activity not registered on its queue: Train on gpu-ml-inference", err.Error())
	regs.Add(queues.GPUMLInference, Train)
	assert.NoError(t, tb.Check(regs))
}

func TestErrorPredicates(t *testing.T) {
	assert.True(t, routing.IsResourceExhausted(routing.ResourceExhausted("gpu_memory", nil)))
	assert.False(t, routing.IsResourceExhausted(errors.New("x")))
	assert.True(t, routing.IsScheduleToStartTimeout(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)))
	assert.False(t, routing.IsScheduleToStartTimeout(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil)))
}
