package main

import (
	"bytes"
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// syncBuffer is a bytes.Buffer safe for a worker goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestSeparateWorkers runs the multi-process mode's code path: one `worker`
// invocation per pool against an existing server, the `scaler` answering
// KEDA's client for each pool, then `start`.
func TestSeparateWorkers(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	common := []string{"-address", srv.GetFrontendHostPort(), "-namespace", srv.GetDefaultNamespace(),
		"-pipelines", "3", "-rows", "500", "-dataset-mb", "8", "-epochs", "5", "-load-time", "100ms", "-plain"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	codes := map[string]int{}
	var mu sync.Mutex
	outs := map[string]*syncBuffer{}
	for _, pool := range []string{"cpu", "highmem", "gpu"} {
		out := &syncBuffer{}
		outs[pool] = out
		wg.Add(1)
		go func() {
			defer wg.Done()
			var errOut bytes.Buffer
			code := runContext(ctx, append(append([]string{}, common...), "worker", pool), out, &errOut)
			mu.Lock()
			codes[pool] = code
			mu.Unlock()
			if code != 0 {
				t.Errorf("worker %s: exit %d: %s", pool, code, errOut.String())
			}
		}()
	}
	require.Eventually(t, func() bool {
		for _, o := range outs {
			if !bytes.Contains([]byte(o.String()), []byte("worker: polling")) {
				return false
			}
		}
		return true
	}, time.Minute, 50*time.Millisecond, "workers did not start")

	// The scaler command answers KEDA for the three pools.
	scalerOut := &syncBuffer{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var errOut bytes.Buffer
		if code := runContext(ctx, append(append([]string{}, common...), "-listen", "127.0.0.1:0", "scaler"), scalerOut, &errOut); code != 0 {
			t.Errorf("scaler: exit %d: %s", code, errOut.String())
		}
	}()
	addr := regexp.MustCompile(`KEDA external scaler on (\S+) for`)
	require.Eventually(t, func() bool { return addr.MatchString(scalerOut.String()) }, 30*time.Second, 50*time.Millisecond, "scaler did not start")
	conn, err := grpc.NewClient(addr.FindStringSubmatch(scalerOut.String())[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	kd := pb.NewExternalScalerClient(conn)
	for q, least := range map[string]float64{"cpu-standard": 1, "gpu-ml-inference": 0, "high-memory-analytics": 0} {
		m, err := kd.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"taskQueue": q}}})
		require.NoError(t, err, q)
		assert.GreaterOrEqual(t, m.MetricValues[0].MetricValueFloat, least, q)
	}

	var out, errOut bytes.Buffer
	code := runContext(context.Background(), append(append([]string{}, common...), "start"), &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	for _, line := range []string{
		"validate_data          cpu-standard ×3",
		"process_large_dataset  high-memory-analytics ×3",
		"train_model            gpu-ml-inference ×3",
		"generate_embeddings    gpu-ml-inference ×3",
		"store_results          cpu-standard ×3",
	} {
		assert.Contains(t, out.String(), line)
	}
	cancel()
	wg.Wait()
	for pool, c := range codes {
		assert.Zero(t, c, "worker %s stops cleanly with no slot left reserved", pool)
	}
}
