package integration

import (
	"context"
	"errors"
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
	"github.com/headroomhq/headroom/routing"
	"github.com/headroomhq/headroom/tuner"
)

// TestOutOfMemoryEscalates: a GPU activity that fails with PyTorch's CUDA
// out-of-memory message (a plain error, as a subprocess's stderr would give)
// on a real server is escalated by its route to the bigger GPU class and
// succeeds there, and the small pool's charge has doubled. With no bigger
// class it fails once: the interceptor made it ResourceExhausted, which is
// not retried.
func TestOutOfMemoryEscalates(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	large := queues.Queue{Name: "gpu-large", Class: queues.GPU}
	reg, err := queues.NewRegistry(queues.GPUMLInference, large)
	require.NoError(t, err)
	g := testutil.NewGPU(gpu.Device{UUID: "GPU-0", Name: "test", UsedBytes: 8 << 30, TotalBytes: 80 << 30})
	ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.9, TargetGPUMemory: 0.85, SampleInterval: 50 * time.Millisecond, Logger: testutil.NopLogger,
		Source: testutil.NewSource(resources.Usage{Memory: 0.2, MemoryLimitBytes: 100 << 30}), GPU: g})
	require.NoError(t, err)
	defer ctrl.Close()
	require.NoError(t, ctrl.WaitReady(context.Background()))

	var small, big atomic.Int64
	start := func(q queues.Queue, fn func(context.Context) (string, error)) *tuner.Tuner {
		w, tu, err := pool.NewWorker(c, reg, q, ctrl, pool.PresetFor(queues.GPU), worker.Options{})
		require.NoError(t, err)
		w.RegisterActivityWithOptions(fn, activityName("Embed"))
		require.NoError(t, w.Start())
		t.Cleanup(func() { w.Stop(); tu.Close() })
		return tu
	}
	tuSmall := start(queues.GPUMLInference, func(context.Context) (string, error) {
		small.Add(1)
		return "", errors.New("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)")
	})
	before, _ := tuSmall.Stats()
	escalating := routing.NewTable(reg)
	require.NoError(t, escalating.Add("Embed", routing.Route{Queue: queues.GPUMLInference, Escalate: &large}))
	alone := routing.NewTable(reg)
	require.NoError(t, alone.Add("Embed", routing.Route{Queue: queues.GPUMLInference}))
	tables := map[bool]*routing.Table{true: escalating, false: alone}
	startPlain(t, c, "Embed", func(ctx workflow.Context, escalate bool) (string, error) {
		var out string
		err := tables[escalate].Execute(ctx, "Embed").Get(ctx, &out)
		return out, err
	}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Embed", false)
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	assert.True(t, routing.IsResourceExhausted(err), "a CUDA OOM is ResourceExhausted: %v", err)
	assert.Equal(t, int64(1), small.Load(), "with no bigger class it runs once, not retried")
	after, _ := tuSmall.Stats()
	t.Logf("charge before %d MiB, after one OOM %d MiB", before.Cost.GPUMemoryBytes>>20, after.Cost.GPUMemoryBytes>>20)
	assert.GreaterOrEqual(t, after.Cost.GPUMemoryBytes, 2*before.Cost.GPUMemoryBytes*9/10, "the class is charged more")

	start(large, func(context.Context) (string, error) {
		big.Add(1)
		return "embedded on the large pool", nil
	})
	run, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Embed", true)
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out), "escalated to the bigger class, it succeeds")
	assert.Equal(t, "embedded on the large pool", out)
	assert.Equal(t, int64(2), small.Load(), "once more on the small pool, then escalated")
	assert.Equal(t, int64(1), big.Load())
}
