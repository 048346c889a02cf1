package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// encoders are simulated NVENCs on consumer boards: the driver refuses a
// session beyond the cap with error 10, as NVENC does, and NVML reports the
// sessions open.
type encoders struct {
	mu       sync.Mutex
	cap      int
	open     []int
	peak     []int
	ran      []int
	refusals atomic.Int64
}

func (e *encoders) read() []gpu.Device {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]gpu.Device, len(e.open))
	for i, n := range e.open {
		out[i] = gpu.Device{UUID: fmt.Sprintf("GPU-enc-%d", i), Index: i, Name: "NVIDIA GeForce RTX 4090", UsedBytes: 2 << 30, TotalBytes: 24 << 30,
			Encoder: gpu.Encoder{Known: true, Sessions: n, Utilization: 10 * n, Capacity: [3]int{-1, -1, -1}}}
	}
	return out
}

// session opens one on device i, or fails as ffmpeg reports NVENC's error 10.
func (e *encoders) session(i int) (func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.open[i] >= e.cap {
		e.refusals.Add(1)
		return nil, errors.New("[h264_nvenc] OpenEncodeSessionEx failed: out of memory (10): (no details)")
	}
	e.open[i]++
	e.ran[i]++
	e.peak[i] = max(e.peak[i], e.open[i])
	return func() {
		e.mu.Lock()
		e.open[i]--
		e.mu.Unlock()
	}, nil
}

// TestVideoPoolSessions: the VideoEncoding preset on two simulated boards
// whose driver allows 3 encoder sessions each, 40 transcodes of 300 ms.
// With the cap declared, no device ever has more than 3 sessions, both are
// used, and NVENC refuses none. With the cap unknown, the first refusal
// teaches it (for both boards: same model) and none follows; the refused
// transcode is retried and succeeds. Everything finishes, nothing is left
// reserved.
func TestVideoPoolSessions(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	startPlain(t, c, "Transcodes", func(ctx workflow.Context, n int) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: queues.VideoEncodingHardware.Name, StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond}})
		fs := make([]workflow.Future, n)
		for i := range fs {
			fs[i] = workflow.ExecuteActivity(ctx, "Transcode")
		}
		for _, f := range fs {
			if err := f.Get(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	for _, tc := range []struct {
		name     string
		declared int
	}{{"cap declared", 3}, {"cap learned", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			const n, limit = 40, 3
			enc := &encoders{cap: limit, open: make([]int, 2), peak: make([]int, 2), ran: make([]int, 2)}
			g := testutil.NewGPU()
			g.SetFunc(enc.read)
			logs := &testutil.RecordingLogger{}
			ctrl, err := tuner.NewController(tuner.ControllerOptions{Source: testutil.NewSource(resources.Usage{CPU: 0.1, CPUCores: 64, Memory: 0.1, MemoryLimitBytes: 128 << 30}),
				GPU: g, TargetCPU: 0.8, TargetMemory: 0.8, TargetEncoder: 0.9, EncoderSessions: tc.declared,
				SampleInterval: 50 * time.Millisecond, Logger: logs})
			require.NoError(t, err)
			defer ctrl.Close()
			require.NoError(t, ctrl.WaitReady(context.Background()))

			var unleased atomic.Int64
			transcode := func(ctx context.Context) error {
				l, ok := gpu.LeaseFromContext(ctx)
				if !ok {
					unleased.Add(1)
					return nil
				}
				closeSession, err := enc.session(l.Index)
				if err != nil {
					return err
				}
				defer closeSession()
				time.Sleep(300 * time.Millisecond)
				return nil
			}
			preset := pool.PresetFor(queues.VideoEncoding)
			preset.Activity.RampThrottle = 20 * time.Millisecond
			preset.ActivityPollers = 8
			w, tu, err := pool.NewWorker(c, queues.Default(), queues.VideoEncodingHardware, ctrl, preset, worker.Options{})
			require.NoError(t, err)
			defer tu.Close()
			w.RegisterActivityWithOptions(transcode, activityName("Transcode"))
			require.NoError(t, w.Start())

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Transcodes", n)
			require.NoError(t, err)
			require.NoError(t, run.Get(ctx, nil))
			w.Stop()

			act, _ := tu.Stats()
			t.Logf("peak sessions per device %v, transcodes per device %v, refusals %d, refused slots %v", enc.peak, enc.ran, enc.refusals.Load(), act.Refused)
			assert.Zero(t, unleased.Load(), "every transcode is charged to a device")
			assert.Zero(t, act.Issued, "nothing left reserved")
			assert.Equal(t, n, enc.ran[0]+enc.ran[1])
			for i := range enc.peak {
				assert.LessOrEqual(t, enc.peak[i], limit, "device %d", i)
				assert.Positive(t, enc.ran[i], "device %d is used", i)
			}
			if tc.declared > 0 {
				assert.Zero(t, enc.refusals.Load(), "a declared cap is never exceeded")
				return
			}
			assert.Equal(t, int64(1), enc.refusals.Load(), "the first refusal teaches the cap; no second one")
			assert.Equal(t, 1, logs.Count("NVENC refused a session"), "%v", logs.Lines())
		})
	}
}
