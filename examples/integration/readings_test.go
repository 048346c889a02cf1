package integration

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// TestReadingsFailingMidRun: a pool's readings fail for 3 s while 40
// activities run on a real server. Admission closes to MinSlots while they
// fail (one activity at a time), resumes when they recover, every activity
// completes, nothing is left reserved, and the controller says so once each
// way rather than once per failed reading.
func TestReadingsFailingMidRun(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	src := testutil.NewSource(resources.Usage{CPU: 0.1, CPUCores: 4, Memory: 0.3, MemoryBytes: 3 << 30, MemoryLimitBytes: 10 << 30})
	logs := &testutil.RecordingLogger{}
	ctrl, err := tuner.NewController(tuner.ControllerOptions{Source: src, TargetMemory: 0.8, SampleInterval: 100 * time.Millisecond,
		StaleAfter: 500 * time.Millisecond, Logger: logs})
	require.NoError(t, err)
	defer ctrl.Close()
	require.NoError(t, ctrl.WaitReady(context.Background()))

	var running, peak atomic.Int64
	var failing atomic.Bool
	var healedFlag atomic.Bool
	var peakFailing, peakHealed atomic.Int64
	work := func(ctx context.Context) error {
		n := running.Add(1)
		defer running.Add(-1)
		raise(&peak, n)
		if failing.Load() {
			raise(&peakFailing, n)
		}
		if healedFlag.Load() {
			raise(&peakHealed, n)
		}
		time.Sleep(2 * time.Second)
		return nil
	}
	preset := pool.PresetFor(queues.HighMemory)
	preset.Activity.Cost = tuner.Cost{MemoryBytes: 1 << 20}
	preset.ActivityPollers = 8
	w, tu, err := pool.NewWorker(c, queues.Default(), queues.HighMemoryAnalytics, ctrl, preset, worker.Options{})
	require.NoError(t, err)
	defer tu.Close()
	w.RegisterActivityWithOptions(work, activityName("Work"))
	require.NoError(t, w.Start())
	stopped := false
	defer func() {
		if !stopped {
			w.Stop()
		}
	}()

	startPlain(t, c, "Fanout", func(ctx workflow.Context, n int) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: queues.HighMemoryAnalytics.Name, StartToCloseTimeout: time.Minute})
		var fs []workflow.Future
		for range n {
			fs = append(fs, workflow.ExecuteActivity(ctx, "Work"))
		}
		for _, f := range fs {
			if err := f.Get(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Fanout", 40)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return peak.Load() > 2 }, 30*time.Second, 10*time.Millisecond, "activities run in parallel")

	src.Fail(errors.New("cgroup file unreadable"))
	time.Sleep(time.Second) // past StaleAfter: admission is closed
	failing.Store(true)
	time.Sleep(2 * time.Second)
	failing.Store(false)
	src.Set(resources.Usage{CPU: 0.1, CPUCores: 4, Memory: 0.3, MemoryBytes: 3 << 30, MemoryLimitBytes: 10 << 30})
	healed := time.Now()
	healedFlag.Store(true)

	require.NoError(t, run.Get(ctx, nil), "every activity completes")
	t.Logf("peak %d, while readings failed %d, after %d; done %v after recovery; log: %v", peak.Load(), peakFailing.Load(), peakHealed.Load(), time.Since(healed).Round(time.Millisecond), logs.Lines())
	assert.LessOrEqual(t, peakFailing.Load(), int64(preset.Activity.MinSlots), "while the readings fail, MinSlots only")
	assert.Greater(t, peakHealed.Load(), int64(preset.Activity.MinSlots), "admission resumes when they recover")
	w.Stop()
	stopped = true
	act, wf := tu.Stats()
	assert.Zero(t, act.Issued+wf.Issued, "nothing reserved")
	assert.Equal(t, 1, logs.Count("readings unusable"), "one warning for the failure, not one per reading")
	assert.Equal(t, 1, logs.Count("readings usable again"), fmt.Sprint(logs.Lines()))
}
