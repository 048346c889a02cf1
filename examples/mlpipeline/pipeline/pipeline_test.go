package pipeline_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/examples/internal/leaks"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/internal/testutil"
)

func TestMain(m *testing.M) { leaks.VerifyTestMain(m) }

// TestPipelineEndToEnd runs the example as the README's command does: an
// embedded server, all three pools tuned by headroom, 20 pipelines.
func TestPipelineEndToEnd(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	cfg := pipeline.Config{Rows: 2000, DatasetMB: 32, GPUMemMB: 3 << 10, LoadTime: 500 * time.Millisecond, Epochs: 20, GPUWait: time.Minute, OutDir: t.TempDir()}
	env, err := pipeline.NewEnv(cfg, nil, testutil.NopLogger)
	require.NoError(t, err)
	defer env.Close()
	pools, err := env.StartPools(c, cfg, pipeline.CPUQueue, pipeline.HighMemQueue, pipeline.GPUQueue)
	require.NoError(t, err)

	// Under -race on 2 cores the 20 pipelines take under a minute (GPU slots
	// are charged twice their declared cost until the readings confirm it);
	// they took 8 minutes and more while workflow pollers waited behind a
	// CPU activity that waited for room. The limit is a hang guard with room
	// for a host busy with other tests: the CPU pool admits by host CPU.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const n = 20
	runs, err := pipeline.StartPipelines(ctx, c, cfg, n, "e2e")
	require.NoError(t, err)
	want := map[string]string{
		"validate_data":         "cpu-standard",
		"process_large_dataset": "high-memory-analytics",
		"train_model":           "gpu-ml-inference",
		"generate_embeddings":   "gpu-ml-inference",
		"store_results":         "cpu-standard",
	}
	var wg sync.WaitGroup
	results := make([][]pipeline.Stage, n)
	errs := make([]error, n)
	for i, r := range runs {
		wg.Add(1)
		go func(i int, r client.WorkflowRun) {
			defer wg.Done()
			errs[i] = r.Get(ctx, &results[i])
		}(i, r)
	}
	wg.Wait()
	for i := range runs {
		require.NoError(t, errs[i], "pipeline %d", i)
		require.Len(t, results[i], 5)
		for _, s := range results[i] {
			assert.Equal(t, want[s.Name], s.Queue, "pipeline %d stage %s ran on its class's queue", i, s.Name)
			if env.Sim != nil && s.Queue == "gpu-ml-inference" {
				assert.Contains(t, s.Detail, "on GPU-simulated-0", "pipeline %d stage %s loaded on the device of its lease", i, s.Name)
			}
		}
	}
	if env.Sim != nil {
		devs, err := env.Sim.Devices(ctx)
		require.NoError(t, err)
		assert.Zero(t, devs[0].UsedBytes, "every GPU stage gave its memory back")
	}
	assert.Zero(t, pipeline.StopPools(pools), "no slot left reserved after the workers stop")
}
