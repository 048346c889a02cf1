package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
	"github.com/headroomhq/headroom/tuner"
)

// Activities report the queue they ran on, as a user's would via
// activity.GetInfo(ctx).TaskQueue.
func Validate(ctx context.Context) (string, error) { return activity.GetInfo(ctx).TaskQueue, nil }
func Process(ctx context.Context) (string, error)  { return activity.GetInfo(ctx).TaskQueue, nil }
func Train(ctx context.Context) (string, error)    { return activity.GetInfo(ctx).TaskQueue, nil }
func Embed(ctx context.Context) (string, error)    { return activity.GetInfo(ctx).TaskQueue, nil }

// Aggregate runs out of memory on the CPU pool and fits on the high-memory one.
func Aggregate(ctx context.Context) (string, error) {
	q := activity.GetInfo(ctx).TaskQueue
	if q == queues.CPUStandard.Name {
		return "", routing.ResourceExhausted("memory", errors.New("cannot allocate 40 GiB"))
	}
	return q, nil
}

// gpuNoWorkers is declared but no worker polls it.
var gpuNoWorkers = queues.Queue{Name: "gpu-a100-pool", Class: queues.GPU}

func routes(t *testing.T, reg *queues.Registry) *routing.Table {
	tb := routing.NewTable(reg)
	cpu, hm := queues.CPUStandard, queues.HighMemoryAnalytics
	require.NoError(t, tb.Add(Validate, routing.Route{Queue: queues.CPUStandard}))
	require.NoError(t, tb.Add(Process, routing.Route{Queue: queues.HighMemoryAnalytics}))
	require.NoError(t, tb.Add(Train, routing.Route{Queue: queues.GPUMLInference}))
	require.NoError(t, tb.Add(Embed, routing.Route{Queue: gpuNoWorkers, Fallback: &cpu, ScheduleToStart: 2 * time.Second}))
	require.NoError(t, tb.Add(Aggregate, routing.Route{Queue: queues.CPUStandard, Escalate: &hm}))
	return tb
}

func routedWorkflow(tb *routing.Table) func(workflow.Context) (map[string]string, error) {
	return func(ctx workflow.Context) (map[string]string, error) {
		out := map[string]string{}
		for _, a := range []any{Validate, Process, Train, Embed, Aggregate} {
			var q string
			if err := tb.Execute(ctx, a).Get(ctx, &q); err != nil {
				return out, err
			}
			out[routing.ActivityName(a)] = q
		}
		return out, nil
	}
}

func TestRoutingOnRealServer(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	reg := queues.Default()
	require.NoError(t, reg.Declare(gpuNoWorkers))
	tb := routes(t, reg)

	ctrl, err := tuner.NewController(tuner.ControllerOptions{
		TargetMemory: 0.95, TargetGPUMemory: 0.9, Logger: testutil.NopLogger,
		GPU: testutil.NewGPU(gpu.Device{UUID: "GPU-sim-0", Name: "simulated", TotalBytes: 80 << 30}),
	})
	require.NoError(t, err)
	defer ctrl.Close()

	regs := routing.Registrations{}
	pools := []struct {
		q    queues.Queue
		acts []any
	}{
		{queues.CPUStandard, []any{Validate, Embed, Aggregate}},
		{queues.HighMemoryAnalytics, []any{Process, Aggregate}},
		{queues.GPUMLInference, []any{Train}},
	}
	var workers []worker.Worker
	var tuners []*tuner.Tuner
	for _, p := range pools {
		preset := pool.PresetFor(p.q.Class)
		preset.Activity.Cost = tuner.Cost{GPUMemoryBytes: preset.Activity.Cost.GPUMemoryBytes, MemoryBytes: 1 << 20}
		w, tu, err := pool.NewWorker(c, reg, p.q, ctrl, preset, worker.Options{})
		require.NoError(t, err, p.q.Name)
		for _, a := range p.acts {
			w.RegisterActivity(a)
		}
		regs.Add(p.q, p.acts...)
		if p.q == queues.CPUStandard {
			w.RegisterWorkflowWithOptions(routedWorkflow(tb), workflowName("Routed"))
		}
		require.NoError(t, w.Start())
		workers, tuners = append(workers, w), append(tuners, tu)
	}
	// The registration check finds the queue nobody polls.
	err = tb.Check(regs)
	require.ErrorIs(t, err, routing.ErrNotRegistered)
	assert.Contains(t, err.Error(), "Embed on gpu-a100-pool")

	// A typo'd queue fails at start-up with a suggestion.
	_, _, err = pool.NewWorker(c, reg, queues.Queue{Name: "gpu-ml-inferense", Class: queues.GPU}, ctrl, pool.PresetFor(queues.GPU), worker.Options{})
	require.ErrorIs(t, err, queues.ErrUnknownQueue)
	assert.Contains(t, err.Error(), `did you mean "gpu-ml-inference"?`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queues.CPUStandard.Name}, "Routed")
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, run.Get(ctx, &got))
	elapsed := time.Since(start)
	assert.Equal(t, map[string]string{
		"Validate":  "cpu-standard",
		"Process":   "high-memory-analytics",
		"Train":     "gpu-ml-inference",
		"Embed":     "cpu-standard",          // no GPU worker on gpu-a100-pool: fell back
		"Aggregate": "high-memory-analytics", // exhausted on CPU: escalated
	}, got)
	assert.Less(t, elapsed, 30*time.Second, "the fallback happens after the 2 s schedule-to-start timeout, not never")

	// The history of a workflow that fell back and escalated replays.
	iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
	var events int
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(routedWorkflow(tb), workflowName("Routed"))
	hist, err := historyOf(ctx, iter, &events)
	require.NoError(t, err)
	require.NoError(t, replayer.ReplayWorkflowHistory(nil, hist))
	assert.Greater(t, events, 10)

	for _, w := range workers {
		w.Stop()
	}
	for i, tu := range tuners {
		act, wf := tu.Stats()
		t.Logf("pool %s: activity %+v workflow %+v", pools[i].q.Name, act, wf)
		assert.Zero(t, act.Issued, "no permit left after Stop")
		assert.Zero(t, wf.Issued)
	}
}
