package keda

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/headroomhq/headroom/scaling"
)

// MetricName is the metric the scaler reports for every pool, and
// MetricDesired the gauge of its last decision per task_queue.
const (
	MetricName    = "desired-replicas"
	MetricDesired = "headroom.scaling.desired_replicas"
)

// ErrInvalidOptions is wrapped by every error about bad Options.
var ErrInvalidOptions = errors.New("keda: invalid options")

// Pool is one pool the scaler answers for.
type Pool struct {
	// TaskQueue names the pool; a trigger's metadata taskQueue selects it.
	TaskQueue string
	// Signal reads what a decision is made from (the backlog from a
	// scaling.Reader, the slots in use over the pool's replicas).
	Signal func(context.Context) (scaling.Signal, error)
	Policy scaling.Policy
}

// Options configures [New].
type Options struct {
	Pools []Pool
	// Interval between two checks of a StreamIsActive stream. Zero: 5 s.
	Interval time.Duration
	// MeterProvider records MetricDesired. Nil: nothing is recorded.
	MeterProvider metric.MeterProvider
}

// Scaler is KEDA's ExternalScaler service over headroom's recommendation.
// It is safe for concurrent use.
type Scaler struct {
	pb.UnimplementedExternalScalerServer
	pools    map[string]*pool
	names    []string
	interval time.Duration
	reg      metric.Registration
	now      func() time.Time
}

type pool struct {
	p      Pool
	mu     sync.Mutex
	rec    *scaling.Recommender
	last   int
	judged bool
}

// New validates opts and returns the scaler.
func New(opts Options) (*Scaler, error) {
	s := &Scaler{pools: map[string]*pool{}, interval: opts.Interval, now: time.Now}
	if s.interval < 0 {
		return nil, fmt.Errorf("%w: Interval %v is negative", ErrInvalidOptions, opts.Interval)
	}
	if s.interval == 0 {
		s.interval = 5 * time.Second
	}
	if len(opts.Pools) == 0 {
		return nil, fmt.Errorf("%w: Pools is empty", ErrInvalidOptions)
	}
	for i, p := range opts.Pools {
		switch {
		case p.TaskQueue == "":
			return nil, fmt.Errorf("%w: Pools[%d].TaskQueue is empty", ErrInvalidOptions, i)
		case p.Signal == nil:
			return nil, fmt.Errorf("%w: Pools[%d].Signal is nil", ErrInvalidOptions, i)
		case s.pools[p.TaskQueue] != nil:
			return nil, fmt.Errorf("%w: Pools[%d].TaskQueue %q is listed twice", ErrInvalidOptions, i, p.TaskQueue)
		}
		rec, err := scaling.NewRecommender(p.Policy)
		if err != nil {
			return nil, fmt.Errorf("%w: Pools[%d].Policy: %w", ErrInvalidOptions, i, err)
		}
		s.pools[p.TaskQueue] = &pool{p: p, rec: rec}
		s.names = append(s.names, p.TaskQueue)
	}
	slices.Sort(s.names)
	if opts.MeterProvider == nil {
		opts.MeterProvider = noop.NewMeterProvider()
	}
	meter := opts.MeterProvider.Meter("github.com/headroomhq/headroom/scaling/keda")
	g, err := meter.Int64ObservableGauge(MetricDesired, metric.WithDescription("Desired replicas per pool, as last told to KEDA"))
	if err != nil {
		return nil, err
	}
	s.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, name := range s.names {
			if n, ok := s.pools[name].decided(); ok {
				o.ObserveInt64(g, int64(n), metric.WithAttributes(attribute.String("task_queue", name)))
			}
		}
		return nil
	}, g)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close unregisters the metric.
func (s *Scaler) Close() error { return s.reg.Unregister() }

func (p *pool) decided() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.judged
}

// desired reads the pool's signal and recommends.
func (s *Scaler) desired(ctx context.Context, ref *pb.ScaledObjectRef) (int, error) {
	p, err := s.pool(ref)
	if err != nil {
		return 0, err
	}
	sig, err := p.p.Signal(ctx)
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "keda: reading pool %s: %v", p.p.TaskQueue, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last, p.judged = p.rec.Recommend(s.now(), sig), true
	return p.last, nil
}

// pool finds the pool a ScaledObject's trigger names.
func (s *Scaler) pool(ref *pb.ScaledObjectRef) (*pool, error) {
	q := ref.GetScalerMetadata()["taskQueue"]
	if q == "" {
		return nil, status.Errorf(codes.InvalidArgument, "keda: scalerMetadata.taskQueue is required (ScaledObject %s/%s); pools: %s",
			ref.GetNamespace(), ref.GetName(), strings.Join(s.names, ", "))
	}
	p := s.pools[q]
	if p == nil {
		return nil, status.Errorf(codes.NotFound, "keda: scalerMetadata.taskQueue %q has no pool here; pools: %s", q, strings.Join(s.names, ", "))
	}
	return p, nil
}

// IsActive reports whether the pool wants any replica.
func (s *Scaler) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	n, err := s.desired(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &pb.IsActiveResponse{Result: n > 0}, nil
}

// StreamIsActive sends IsActive at once and again whenever it changes,
// checking every Interval, until the stream ends.
func (s *Scaler) StreamIsActive(ref *pb.ScaledObjectRef, stream grpc.ServerStreamingServer[pb.IsActiveResponse]) error {
	if _, err := s.pool(ref); err != nil {
		return err
	}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	sent, was := false, false
	for {
		n, err := s.desired(stream.Context(), ref)
		if err != nil && status.Code(err) != codes.Unavailable {
			return err
		}
		if active := n > 0; err == nil && (!sent || active != was) {
			if err := stream.Send(&pb.IsActiveResponse{Result: active}); err != nil {
				return err
			}
			sent, was = true, active
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-tick.C:
		}
	}
}

// GetMetricSpec gives the pool's one metric with a target of 1 per replica.
func (s *Scaler) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	if _, err := s.pool(ref); err != nil {
		return nil, err
	}
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{MetricName: MetricName, TargetSize: 1, TargetSizeFloat: 1}}}, nil
}

// GetMetrics gives the pool's desired replicas.
func (s *Scaler) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	if name := req.GetMetricName(); name != "" && !strings.HasSuffix(name, MetricName) {
		return nil, status.Errorf(codes.NotFound, "keda: metricName %q is not served (want %q)", name, MetricName)
	}
	n, err := s.desired(ctx, req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{MetricName: MetricName, MetricValue: int64(n), MetricValueFloat: float64(n)}}}, nil
}

// ServeOptions configures [Scaler.Serve].
type ServeOptions struct {
	// Addr to listen on. Empty: 127.0.0.1:6000 (this host only; in a
	// cluster, set it to the pod's address or ":6000").
	Addr string
	// TLS, if set, serves over TLS (KEDA's trigger then names its CA).
	TLS *tls.Config
}

// Serve listens on opts.Addr and serves until ctx is done, then stops
// gracefully. It returns the listener's error, or nil after ctx ends.
func (s *Scaler) Serve(ctx context.Context, opts ServeOptions) error {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:6000"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("keda: listen on %s: %w", addr, err)
	}
	return s.ServeListener(ctx, lis, opts.TLS)
}

// ServeListener serves on lis (TLS if cfg is set) until ctx is done.
func (s *Scaler) ServeListener(ctx context.Context, lis net.Listener, cfg *tls.Config) error {
	var sopts []grpc.ServerOption
	if cfg != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(sopts...)
	pb.RegisterExternalScalerServer(srv, s)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// Unary calls finish; StreamIsActive streams end only when
			// KEDA closes them, so they are cut after a grace.
			t := time.AfterFunc(2*time.Second, srv.Stop)
			srv.GracefulStop()
			t.Stop()
		case <-done:
		}
	}()
	err := srv.Serve(lis)
	close(done)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
