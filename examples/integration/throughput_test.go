package integration

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// BenchmarkActivityThroughput: activities per second through one worker on
// the embedded server, with the headroom tuner and with the SDK's fixed-size
// tuner at the same MaxSlots. Run: go -C examples test -run x -bench Throughput ./integration/
func BenchmarkActivityThroughput(b *testing.B) {
	const slots, perRun = 20, 200
	for _, tc := range []struct {
		name  string
		tuner func(b *testing.B) worker.WorkerTuner
	}{
		{"headroom", func(b *testing.B) worker.WorkerTuner {
			t, err := tuner.New(tuner.Options{
				Controller: tuner.ControllerOptions{TargetMemory: 0.95, Logger: testutil.NopLogger,
					Source: testutil.NewSource(resources.Usage{Memory: 0.3, MemoryBytes: 3 << 30, MemoryLimitBytes: 10 << 30})},
				Activity: tuner.SlotSupplierOptions{Name: "activity", MinSlots: 1, MaxSlots: slots, RampThrottle: time.Millisecond,
					Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: 1 << 20}},
				Workflow: tuner.SlotSupplierOptions{Name: "workflow", MinSlots: 5, MaxSlots: slots, Resources: tuner.Memory},
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { t.Close() })
			return t
		}},
		{"sdk-fixed", func(b *testing.B) worker.WorkerTuner {
			t, err := worker.NewFixedSizeTuner(worker.FixedSizeTunerOptions{
				NumWorkflowSlots: slots, NumActivitySlots: slots, NumLocalActivitySlots: slots, NumNexusSlots: slots})
			if err != nil {
				b.Fatal(err)
			}
			return t
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := temporaltest.NewServer()
			defer srv.Stop()
			c := srv.GetDefaultClient()
			w := worker.New(c, "throughput", worker.Options{Tuner: tc.tuner(b), WorkerStopTimeout: 10 * time.Second})
			w.RegisterActivityWithOptions(func(ctx context.Context, i int) (int, error) { return i, nil }, activityName("noop"))
			w.RegisterWorkflowWithOptions(func(ctx workflow.Context, n int) error {
				ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
				fs := make([]workflow.Future, n)
				for i := range fs {
					fs[i] = workflow.ExecuteActivity(ctx, "noop", i)
				}
				for _, f := range fs {
					if err := f.Get(ctx, nil); err != nil {
						return err
					}
				}
				return nil
			}, workflowName("fan"))
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Stop()
			ctx := context.Background()
			start := time.Now()
			for b.Loop() {
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "throughput"}, "fan", perRun)
				if err != nil {
					b.Fatal(err)
				}
				if err := run.Get(ctx, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(perRun*b.N)/time.Since(start).Seconds(), "activities/s")
		})
	}
}
