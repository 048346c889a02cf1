package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/scaling"
	"github.com/headroomhq/headroom/tuner"
)

// TestDesiredReplicasFromTheServersBacklog: a workflow queues 200 GPU
// activities with no GPU worker running. (One workflow, not 200: the
// embedded server writes to one SQLite connection, and 200 starts with their
// workflow tasks took 25–50 s under -race before the last activity reached
// the queue.) The desired GPU replicas, from the server's
// backlog alone, are ⌈backlog ÷ per-replica capacity⌉. As two replicas start
// the backlog drains and the desired count falls, never below what the slots
// in use need; it reaches zero only once the queue is empty and no slot is
// held.
func TestDesiredReplicasFromTheServersBacklog(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	const n, per = 200, 7
	policy := scaling.Policy{Max: 50, PerReplica: per, ScaleDownWindow: time.Second}
	reader, err := scaling.NewReader(c, srv.GetDefaultNamespace(), queues.GPUMLInference.Name, 200*time.Millisecond)
	require.NoError(t, err)
	startPlain(t, c, "Loads", func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: queues.GPUMLInference.Name, StartToCloseTimeout: time.Minute})
		var fs []workflow.Future
		for range n {
			fs = append(fs, workflow.ExecuteActivity(ctx, "Load"))
		}
		for _, f := range fs {
			if err := f.Get(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Loads")
	require.NoError(t, err)
	var st scaling.QueueStats
	var readErr error
	waited := time.Now()
	if !assert.Eventually(t, func() bool {
		st, readErr = reader.Read(ctx)
		return readErr == nil && st.Backlog >= n
	}, 30*time.Second, 100*time.Millisecond) {
		t.Fatalf("the server never reported the backlog of %d: last read %+v, %v", n, st, readErr)
	}
	t.Logf("the server reported the backlog after %v", time.Since(waited).Round(time.Millisecond))
	want, err := scaling.Desired(scaling.Signal{Backlog: st.Backlog}, policy)
	require.NoError(t, err)
	assert.Equal(t, int((st.Backlog+per-1)/per), want, "⌈backlog ÷ per-replica capacity⌉ with no worker running")
	t.Logf("no worker: backlog %d, age %v, desired %d", st.Backlog, st.BacklogAge.Round(time.Millisecond), want)

	var tuners []*tuner.Tuner
	for i := range 2 {
		tuners = append(tuners, gpuReplica(t, c, i, tuner.Cost{GPUMemoryBytes: 1 << 30, MemoryBytes: 1 << 20}, nil,
			func(context.Context) error { time.Sleep(300 * time.Millisecond); return nil }))
	}
	rec, err := scaling.NewRecommender(policy)
	require.NoError(t, err)
	last, peakInUse := want, 0
	var trace []string
	for done := false; !done; {
		time.Sleep(250 * time.Millisecond)
		st, err := reader.Read(ctx)
		require.NoError(t, err)
		inUse, capacity, busy := 0, 0, 0
		for _, tu := range tuners {
			a, _ := tu.Stats()
			inUse += a.Used
			if a.Used > 0 {
				busy++
			}
			capacity = max(capacity, a.Issued+a.Fit)
		}
		peakInUse = max(peakInUse, inUse)
		s := scaling.Signal{Backlog: st.Backlog, InUse: inUse, PerReplica: capacity, BusyReplicas: busy}
		got := rec.Recommend(time.Now(), s)
		trace = append(trace, fmt.Sprintf("%d/%d/%d→%d", st.Backlog, inUse, capacity, got))
		assert.GreaterOrEqual(t, got, max((inUse+capacity-1)/max(capacity, 1), busy), "never fewer than the slots in use need: %+v", s)
		if got == 0 {
			assert.Zero(t, st.Backlog, "zero only with the queue empty")
			assert.Zero(t, inUse, "and no slot held")
			done = true
		}
		last = got
		require.NoError(t, ctx.Err(), "never scaled to zero: %v", trace)
	}
	t.Logf("backlog/in use/per replica→desired: %v", trace)
	assert.Zero(t, last)
	assert.Positive(t, peakInUse)
	require.NoError(t, run.Get(ctx, nil))
}
