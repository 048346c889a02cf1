package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/server/temporaltest"
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
// invocation per pool against an existing server, then `start`.
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
