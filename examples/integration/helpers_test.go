package integration

import (
	"context"
	"os"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"go.temporal.io/sdk/activity"
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
