package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.uber.org/goleak"

	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/tuner"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPresets(t *testing.T) {
	gpu := pool.PresetFor(queues.GPU)
	assert.LessOrEqual(t, gpu.Activity.MaxSlots, 8, "GPU pools run few concurrent activities")
	assert.NotZero(t, gpu.Activity.Cost.GPUMemoryBytes)
	assert.NotZero(t, gpu.Activity.Resources&tuner.GPUMemory)
	cpu := pool.PresetFor(queues.CPU)
	assert.GreaterOrEqual(t, cpu.Activity.MaxSlots, 100, "CPU pools run many")
	hm := pool.PresetFor(queues.HighMemory)
	assert.NotZero(t, hm.Activity.Cost.MemoryBytes)
	assert.Greater(t, gpu.DrainWindow, cpu.DrainWindow, "GPU work gets longer to finish when its worker stops")
	custom := pool.PresetFor(queues.Class("fpga"))
	assert.Equal(t, "fpga", custom.Activity.Name)
}

func TestNewWorkerRejectsFixedLimits(t *testing.T) {
	_, _, err := pool.NewWorker(nil, queues.Default(), queues.CPUStandard, nil, pool.PresetFor(queues.CPU),
		worker.Options{MaxConcurrentActivityExecutionSize: 10})
	require.ErrorIs(t, err, pool.ErrWorkerOptions)
	assert.Contains(t, err.Error(), "MaxConcurrentActivityExecutionSize")

	_, _, err = pool.NewWorker(nil, queues.Default(), queues.Queue{Name: "cpu-standart", Class: queues.CPU}, nil, pool.PresetFor(queues.CPU), worker.Options{})
	assert.ErrorIs(t, err, queues.ErrUnknownQueue)

	_, _, err = pool.NewWorker(nil, nil, queues.CPUStandard, nil, pool.PresetFor(queues.CPU), worker.Options{})
	assert.ErrorIs(t, err, tuner.ErrInvalidOptions, "no controller")
}

func TestNewWorkerRejectsAStopTimeoutInsideTheDrainWindow(t *testing.T) {
	p := pool.PresetFor(queues.GPU)
	_, _, err := pool.NewWorker(nil, queues.Default(), queues.GPUMLInference, nil, p, worker.Options{WorkerStopTimeout: p.DrainWindow})
	require.ErrorIs(t, err, pool.ErrWorkerOptions)
	assert.Contains(t, err.Error(), "WorkerStopTimeout")
	assert.Contains(t, err.Error(), "DrainWindow")

	p.DrainWindow = -time.Second
	_, _, err = pool.NewWorker(nil, queues.Default(), queues.GPUMLInference, nil, p, worker.Options{})
	require.ErrorIs(t, err, pool.ErrWorkerOptions)
	assert.Contains(t, err.Error(), "Preset.DrainWindow")
}
