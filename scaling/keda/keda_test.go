package keda_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/headroomhq/headroom/scaling"
	"github.com/headroomhq/headroom/scaling/keda"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// signal is a pool signal the test sets.
type signal struct {
	mu  sync.Mutex
	s   scaling.Signal
	err error
}

func (s *signal) set(v scaling.Signal, err error) {
	s.mu.Lock()
	s.s, s.err = v, err
	s.mu.Unlock()
}

func (s *signal) read(context.Context) (scaling.Signal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s, s.err
}

// serve starts the scaler on a loopback port (TLS if cfg) and returns a
// client generated from KEDA's proto, as KEDA's operator uses it.
func serve(t *testing.T, sc *keda.Scaler, cfg *tls.Config, creds credentials.TransportCredentials) pb.ExternalScalerClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.ServeListener(ctx, lis, cfg) }()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		assert.NoError(t, <-done)
	})
	return pb.NewExternalScalerClient(conn)
}

func desiredGauge(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != keda.MetricDesired {
				continue
			}
			for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
				q, _ := p.Attributes.Value(attribute.Key("task_queue"))
				out[q.AsString()] = p.Value
			}
		}
	}
	return out
}

// KEDA's calls through a client generated from its proto: the metric spec
// (one metric, target 1 per replica), the desired replicas as the metric's
// value and as the gauge, activity, a stream that reports the change to
// inactive, and errors that name what is wrong.
func TestScalerAnswersKEDA(t *testing.T) {
	gpuSig, cpuSig := &signal{}, &signal{}
	gpuSig.set(scaling.Signal{Backlog: 200, PerReplica: 7}, nil)
	cpuSig.set(scaling.Signal{InUse: 3, PerReplica: 50, BusyReplicas: 2}, nil)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	sc, err := keda.New(keda.Options{Interval: 10 * time.Millisecond, MeterProvider: mp, Pools: []keda.Pool{
		{TaskQueue: "gpu-ml-inference", Signal: gpuSig.read, Policy: scaling.Policy{Max: 40, PerReplica: 7, ScaleDownWindow: time.Millisecond}},
		{TaskQueue: "cpu-standard", Signal: cpuSig.read, Policy: scaling.Policy{Min: 1, Max: 10, PerReplica: 50}},
	}})
	require.NoError(t, err)
	defer sc.Close()
	cl := serve(t, sc, nil, nil)
	ctx := context.Background()
	ref := func(q string) *pb.ScaledObjectRef {
		return &pb.ScaledObjectRef{Name: "workers", Namespace: "ml", ScalerMetadata: map[string]string{"taskQueue": q}}
	}

	spec, err := cl.GetMetricSpec(ctx, ref("gpu-ml-inference"))
	require.NoError(t, err)
	require.Len(t, spec.MetricSpecs, 1)
	assert.Equal(t, keda.MetricName, spec.MetricSpecs[0].MetricName)
	assert.Equal(t, 1.0, spec.MetricSpecs[0].TargetSizeFloat)

	got := map[string]float64{}
	for _, q := range []string{"gpu-ml-inference", "cpu-standard"} {
		m, err := cl.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(q), MetricName: "s0-" + keda.MetricName})
		require.NoError(t, err)
		require.Len(t, m.MetricValues, 1)
		got[q] = m.MetricValues[0].MetricValueFloat
	}
	assert.Equal(t, map[string]float64{"gpu-ml-inference": 29, "cpu-standard": 2}, got,
		"⌈200 ÷ 7⌉ GPU replicas; the CPU pool keeps its two busy replicas")
	assert.Equal(t, map[string]int64{"gpu-ml-inference": 29, "cpu-standard": 2}, desiredGauge(t, reader), "the gauge says what KEDA was told")

	act, err := cl.IsActive(ctx, ref("gpu-ml-inference"))
	require.NoError(t, err)
	assert.True(t, act.Result)

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.StreamIsActive(sctx, ref("gpu-ml-inference"))
	require.NoError(t, err)
	first, err := stream.Recv()
	require.NoError(t, err)
	assert.True(t, first.Result)
	time.Sleep(5 * time.Millisecond) // past the scale-down window
	gpuSig.set(scaling.Signal{PerReplica: 7}, nil)
	next, err := stream.Recv()
	require.NoError(t, err)
	assert.False(t, next.Result, "empty queue, nothing held: inactive, pushed without a poll")
	cancel()

	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"no taskQueue", func() error { _, err := cl.IsActive(ctx, &pb.ScaledObjectRef{Name: "w"}); return err }, codes.InvalidArgument, "scalerMetadata.taskQueue is required"},
		{"unknown queue", func() error { _, err := cl.GetMetricSpec(ctx, ref("gpu-typo")); return err }, codes.NotFound, `"gpu-typo" has no pool here; pools: cpu-standard, gpu-ml-inference`},
		{"unknown metric", func() error {
			_, err := cl.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("cpu-standard"), MetricName: "cpu"})
			return err
		}, codes.NotFound, "is not served"},
		{"signal fails", func() error {
			cpuSig.set(scaling.Signal{}, errors.New("describe: rate limited"))
			_, err := cl.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("cpu-standard")})
			return err
		}, codes.Unavailable, "rate limited"},
	} {
		err := tc.call()
		assert.Equal(t, tc.code, status.Code(err), tc.name)
		assert.ErrorContains(t, err, tc.msg, tc.name)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	ok := func(context.Context) (scaling.Signal, error) { return scaling.Signal{}, nil }
	pol := scaling.Policy{Max: 1, PerReplica: 1}
	for _, tc := range []struct {
		opts keda.Options
		msg  string
	}{
		{keda.Options{}, "Pools is empty"},
		{keda.Options{Pools: []keda.Pool{{Signal: ok, Policy: pol}}}, "Pools[0].TaskQueue is empty"},
		{keda.Options{Pools: []keda.Pool{{TaskQueue: "q", Policy: pol}}}, "Pools[0].Signal is nil"},
		{keda.Options{Pools: []keda.Pool{{TaskQueue: "q", Signal: ok, Policy: pol}, {TaskQueue: "q", Signal: ok, Policy: pol}}}, "listed twice"},
		{keda.Options{Pools: []keda.Pool{{TaskQueue: "q", Signal: ok}}}, "Pools[0].Policy"},
		{keda.Options{Interval: -1, Pools: []keda.Pool{{TaskQueue: "q", Signal: ok, Policy: pol}}}, "Interval"},
	} {
		_, err := keda.New(tc.opts)
		assert.ErrorIs(t, err, keda.ErrInvalidOptions)
		assert.ErrorContains(t, err, tc.msg)
	}
}

// TLS is optional: with a certificate the scaler serves only TLS clients.
func TestScalerOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	sc, err := keda.New(keda.Options{Pools: []keda.Pool{{TaskQueue: "q", Policy: scaling.Policy{Max: 5, PerReplica: 2},
		Signal: func(context.Context) (scaling.Signal, error) { return scaling.Signal{Backlog: 5}, nil }}}})
	require.NoError(t, err)
	defer sc.Close()
	cl := serve(t, sc, &tls.Config{Certificates: []tls.Certificate{cert}}, credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}))
	m, err := cl.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"taskQueue": "q"}}})
	require.NoError(t, err)
	assert.Equal(t, 3.0, m.MetricValues[0].MetricValueFloat, "⌈5 ÷ 2⌉")
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
