package integration

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/scaling"
	"github.com/headroomhq/headroom/scaling/keda"
	"github.com/headroomhq/headroom/tuner"
)

// TestKEDAScalerOnARealServer: KEDA's client (generated from its proto)
// asks headroom's external scaler about a GPU pool on a real server. With
// 60 workflows queued and no worker, the pool is active and its metric is
// ⌈backlog ÷ 7⌉. Two replicas start; their worker heartbeats carry their
// slots in use to the server, where the scaler reads them (ListWorkers):
// while they run, the metric never falls below the busy replicas. When the
// queue is empty and nothing runs, the pool goes inactive and the metric to
// 0.
func TestKEDAScalerOnARealServer(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	wc := srv.NewClientWithOptions(client.Options{WorkerHeartbeatInterval: time.Second})
	defer wc.Close()
	q := queues.GPUMLInference.Name
	backlog, err := scaling.NewReader(c, srv.GetDefaultNamespace(), q, 200*time.Millisecond)
	require.NoError(t, err)
	fleet, err := scaling.NewFleetReader(c, srv.GetDefaultNamespace(), q, 200*time.Millisecond, time.Second)
	require.NoError(t, err)
	sc, err := keda.New(keda.Options{Interval: 100 * time.Millisecond, Pools: []keda.Pool{{TaskQueue: q,
		Signal: scaling.Source(backlog, fleet), Policy: scaling.Policy{Max: 50, PerReplica: 7, ScaleDownWindow: time.Second}}}})
	require.NoError(t, err)
	defer sc.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- sc.ServeListener(sctx, lis, nil) }()
	defer func() { stop(); require.NoError(t, <-served) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	kd := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Name: "gpu-workers", Namespace: "ml", ScalerMetadata: map[string]string{"taskQueue": q}}
	metricNow := func(ctx context.Context) int {
		m, err := kd.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "s0-" + keda.MetricName})
		require.NoError(t, err)
		return int(m.MetricValues[0].MetricValueFloat)
	}

	startPlain(t, c, "TwoSeconds", func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: q, StartToCloseTimeout: time.Minute})
		return workflow.ExecuteActivity(ctx, "Load").Get(ctx, nil)
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 60
	var runs []client.WorkflowRun
	for i := range n {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("keda-%d", i), TaskQueue: "plain"}, "TwoSeconds")
		require.NoError(t, err)
		runs = append(runs, run)
	}
	require.Eventually(t, func() bool { return metricNow(ctx) == (n+6)/7 }, 30*time.Second, 100*time.Millisecond,
		"no worker: ⌈%d ÷ 7⌉ from the server's backlog alone", n)
	act, err := kd.IsActive(ctx, ref)
	require.NoError(t, err)
	assert.True(t, act.Result, "scale from zero on the backlog")

	for i := range 2 {
		gpuReplica(t, wc, i, tuner.Cost{GPUMemoryBytes: 8 << 30, MemoryBytes: 1 << 20},
			func(p *pool.Preset) { p.Activity.TrustCost, p.Activity.MaxSlots = true, 6 },
			func(context.Context) error { time.Sleep(2 * time.Second); return nil })
	}
	seen := scaling.Replicas{}
	var trace []string
	for {
		time.Sleep(300 * time.Millisecond)
		rep, err := fleet.Read(ctx)
		require.NoError(t, err)
		got := metricNow(ctx)
		trace = append(trace, fmt.Sprintf("%d/%d/%d→%d", rep.Running, rep.Busy, rep.InUse, got))
		seen.Running, seen.Busy, seen.InUse = max(seen.Running, rep.Running), max(seen.Busy, rep.Busy), max(seen.InUse, rep.InUse)
		assert.GreaterOrEqual(t, got, rep.Busy, "never below the replicas with a slot in use")
		if got == 0 {
			break
		}
		require.NoError(t, ctx.Err(), "never inactive: %v", trace)
	}
	t.Logf("running/busy/in use (heartbeats)→desired: %v", trace)
	assert.Equal(t, 2, seen.Running, "both replicas seen through their heartbeats")
	assert.Equal(t, 2, seen.Busy)
	assert.Positive(t, seen.InUse)
	for _, r := range runs {
		require.NoError(t, r.Get(ctx, nil))
	}
	act, err = kd.IsActive(ctx, ref)
	require.NoError(t, err)
	assert.False(t, act.Result, "empty queue, nothing held: inactive")
}
