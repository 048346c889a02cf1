package integration

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/examples/internal/leaks"
	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerProcessEnv) != "" {
		os.Exit(workerProcess()) // this binary re-run as a worker process (kill_test.go)
	}
	leaks.VerifyTestMain(m)
}

func activityName(n string) activity.RegisterOptions { return activity.RegisterOptions{Name: n} }
func workflowName(n string) workflow.RegisterOptions { return workflow.RegisterOptions{Name: n} }

func historyOf(ctx context.Context, iter client.HistoryEventIterator, n *int) (*historypb.History, error) {
	h := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, ev)
		*n++
	}
	return h, nil
}

// raise sets *p to n if n is larger.
func raise(p *atomic.Int64, n int64) {
	for v := p.Load(); n > v && !p.CompareAndSwap(v, n); v = p.Load() {
	}
}

// startPlain starts a worker on queue "plain", with no tuner, running the
// workflow wf as name (and the activities acts, by their names), stopped
// when the test ends: where the tests' workflows run.
func startPlain(t *testing.T, c client.Client, name string, wf any, acts map[string]any) {
	t.Helper()
	w := worker.New(c, "plain", worker.Options{})
	w.RegisterWorkflowWithOptions(wf, workflowName(name))
	for n, a := range acts {
		w.RegisterActivityWithOptions(a, activityName(n))
	}
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}

// gpuReplica starts replica i of a GPU pool on a simulated 80 GiB device of
// its own (as a pod with one GPU has), with the GPU preset at cost, tweak
// applied to it, and load registered as "Load". It stops when the test
// ends.
func gpuReplica(t *testing.T, c client.Client, i int, cost tuner.Cost, tweak func(*pool.Preset), load func(context.Context) error) *tuner.Tuner {
	t.Helper()
	ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.9, TargetGPUMemory: 0.85, Logger: testutil.NopLogger,
		Source: testutil.NewSource(resources.Usage{Memory: 0.2, MemoryLimitBytes: 64 << 30}),
		GPU:    testutil.NewGPU(gpu.Device{UUID: fmt.Sprintf("GPU-%d", i), TotalBytes: 80 << 30})})
	require.NoError(t, err)
	t.Cleanup(func() { ctrl.Close() })
	preset := pool.PresetFor(queues.GPU)
	preset.Activity.Cost = cost
	preset.Activity.RampThrottle, preset.ActivityPollers = 20*time.Millisecond, 4
	if tweak != nil {
		tweak(&preset)
	}
	w, tu, err := pool.NewWorker(c, queues.Default(), queues.GPUMLInference, ctrl, preset, worker.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { tu.Close() })
	w.RegisterActivityWithOptions(load, activityName("Load"))
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return tu
}
