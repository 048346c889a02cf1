package scaling_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/scaling"
)

// The pod's deletion cost follows its slots in use: patched when the
// count changes and only then, as a merge patch of the annotation with the
// token; a refused patch is logged once and retried until it goes through.
func TestDeletionCostFollowsSlotsInUse(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var refuse atomic.Bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPatch, r.Method)
		assert.Equal(t, "/api/v1/namespaces/ml/pods/gpu-7f9c", r.URL.Path)
		assert.Equal(t, "application/merge-patch+json", r.Header.Get("Content-Type"))
		assert.Equal(t, "Bearer s3cret", r.Header.Get("Authorization"))
		if refuse.Load() {
			http.Error(w, `pods "gpu-7f9c" is forbidden`, http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer api.Close()
	var inUse atomic.Int64
	logs := &testutil.RecordingLogger{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	refuse.Store(true)
	go func() {
		done <- scaling.RunDeletionCost(ctx, scaling.DeletionCostOptions{InUse: func() int { return int(inUse.Load()) },
			Interval: 5 * time.Millisecond, Pod: "gpu-7f9c", Namespace: "ml", APIServer: api.URL, Token: "s3cret", Logger: logs})
	}()
	patched := func(n int) bool { mu.Lock(); defer mu.Unlock(); return len(bodies) >= n }
	time.Sleep(30 * time.Millisecond)
	assert.Equal(t, 1, logs.Count("cannot set the pod's deletion cost"), "refusals are logged once: %v", logs.Lines())
	refuse.Store(false)
	require.Eventually(t, func() bool { return patched(1) }, 5*time.Second, time.Millisecond, "retried until it goes through")
	inUse.Store(3)
	require.Eventually(t, func() bool { return patched(2) }, 5*time.Second, time.Millisecond)
	time.Sleep(30 * time.Millisecond) // unchanged: no patch
	inUse.Store(0)
	require.Eventually(t, func() bool { return patched(3) }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	a := `{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"`
	assert.Equal(t, []string{a + `0"}}}`, a + `3"}}}`, a + `0"}}}`}, bodies)
}

func TestDeletionCostNeedsAPod(t *testing.T) {
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	in := func() int { return 0 }
	for _, tc := range []struct {
		opts scaling.DeletionCostOptions
		msg  string
	}{
		{scaling.DeletionCostOptions{}, "InUse is nil"},
		{scaling.DeletionCostOptions{InUse: in}, "Pod and .Namespace are unknown"},
		{scaling.DeletionCostOptions{InUse: in, Pod: "p", Namespace: "n"}, "not in a Kubernetes pod"},
	} {
		assert.ErrorContains(t, scaling.RunDeletionCost(context.Background(), tc.opts), tc.msg)
	}
}
