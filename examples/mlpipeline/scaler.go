package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/scaling"
	"github.com/headroomhq/headroom/scaling/keda"
)

// heartbeatEvery is how often the example's workers tell the server their
// slots in use (client.Options.WorkerHeartbeatInterval), which the scaler
// reads back per pool.
const heartbeatEvery = 5 * time.Second

// poolSignal reads a pool's Signal (the queue's backlog, the replicas'
// slots in use from their heartbeats) at most once per every; the fleet
// reader also names each replica.
func poolSignal(c client.Client, namespace, queue string, every time.Duration) (func(context.Context) (scaling.Signal, error), *scaling.FleetReader, error) {
	backlog, err := scaling.NewReader(c, namespace, queue, every)
	if err != nil {
		return nil, nil, err
	}
	fleet, err := scaling.NewFleetReader(c, namespace, queue, every, heartbeatEvery)
	if err != nil {
		return nil, nil, err
	}
	return scaling.Source(backlog, fleet), fleet, nil
}

// runScaler serves KEDA's external scaler for the three pools: desired
// replicas from the server's backlog and the workers' heartbeats.
func runScaler(ctx context.Context, f flags, rest []string, out io.Writer) error {
	if f.address == "" {
		return errors.New("scaler needs -address (it reads the queues of a running server)")
	}
	if len(rest) > 0 {
		return fmt.Errorf("scaler takes no arguments, got %q", rest)
	}
	c, closeClient, err := connect(ctx, f, out)
	if err != nil {
		return err
	}
	defer closeClient()
	var pools []keda.Pool
	var names []string
	for _, q := range pipeline.PoolNames {
		signal, _, err := poolSignal(c, f.namespace, q.Name, 5*time.Second)
		if err != nil {
			return err
		}
		pools = append(pools, keda.Pool{TaskQueue: q.Name, Signal: signal, Policy: pipeline.ScalingPolicy(q)})
		names = append(names, q.Name)
	}
	sort.Strings(names)
	mp, stopMetrics, err := meterProvider(f.metrics, out) // headroom.scaling.desired_replicas
	if err != nil {
		return err
	}
	defer stopMetrics()
	sc, err := keda.New(keda.Options{Pools: pools, MeterProvider: mp})
	if err != nil {
		return err
	}
	defer sc.Close()
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("-listen %s: %v", f.listen, err)
	}
	fmt.Fprintf(out, "scaler: KEDA external scaler on %s for %s; Ctrl-C to stop\n", lis.Addr(), strings.Join(names, ", "))
	return sc.ServeListener(ctx, lis, nil)
}
