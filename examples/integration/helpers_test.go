package integration

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/examples/internal/leaks"
)

func TestMain(m *testing.M) {
	if os.Getenv(workerProcessEnv) != "" {
		os.Exit(workerProcess()) // this binary re-run as a worker process (kill_test.go)
	}
	leaks.VerifyTestMain(m)
}

func activityName(n string) activity.RegisterOptions { return activity.RegisterOptions{Name: n} }
func workflowName(n string) workflow.RegisterOptions { return workflow.RegisterOptions{Name: n} }

func historyOf(ctx context.Context, iter client.HistoryEventIterator, n *int) (*historypb.History, error) {
	h := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return nil, err
		}
		h.Events = append(h.Events, ev)
		*n++
	}
	return h, nil
}

// raise sets *p to n if n is larger.
func raise(p *atomic.Int64, n int64) {
	for v := p.Load(); n > v && !p.CompareAndSwap(v, n); v = p.Load() {
	}
}

// startPlain starts a worker on queue "plain", with no tuner, running the
// workflow wf as name (and the activities acts, by their names), stopped
// when the test ends: where the tests' workflows run.
func startPlain(t *testing.T, c client.Client, name string, wf any, acts map[string]any) {
	t.Helper()
	w := worker.New(c, "plain", worker.Options{})
	w.RegisterWorkflowWithOptions(wf, workflowName(name))
	for n, a := range acts {
		w.RegisterActivityWithOptions(a, activityName(n))
	}
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
}
