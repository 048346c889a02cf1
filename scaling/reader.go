package scaling

import (
	"context"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// QueueStats is what the server says of a task queue's activity tasks.
type QueueStats struct {
	Backlog      int64         // approximate count of tasks waiting
	BacklogAge   time.Duration // how long the oldest has waited
	AddRate      float64       // tasks added per second
	DispatchRate float64       // tasks dispatched per second
	At           time.Time     // when it was read
}

// Reader reads one task queue's statistics, no more often than its
// interval: a Read within the interval of the last returns that one.
type Reader struct {
	c         client.Client
	namespace string
	queue     string
	every     time.Duration

	mu   sync.Mutex
	last QueueStats
	err  error
}

// NewReader returns a reader of queue's activity-task statistics in
// namespace, reading at most once per every (zero: 5 s).
func NewReader(c client.Client, namespace, queue string, every time.Duration) (*Reader, error) {
	if c == nil || queue == "" {
		return nil, fmt.Errorf("scaling: NewReader needs a client and a queue name")
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	return &Reader{c: c, namespace: namespace, queue: queue, every: every}, nil
}

// Read returns the queue's statistics.
func (r *Reader) Read(ctx context.Context) (QueueStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.At.IsZero() && time.Since(r.last.At) < r.every {
		return r.last, r.err
	}
	resp, err := r.c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
		Namespace:     r.namespace,
		TaskQueue:     &taskqueuepb.TaskQueue{Name: r.queue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
		TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
		ReportStats:   true,
	})
	r.last, r.err = QueueStats{At: time.Now()}, nil
	if err != nil {
		r.err = fmt.Errorf("scaling: describing %s: %w", r.queue, err)
		return r.last, r.err
	}
	st := resp.GetStats()
	r.last.Backlog = st.GetApproximateBacklogCount()
	r.last.BacklogAge = st.GetApproximateBacklogAge().AsDuration()
	r.last.AddRate, r.last.DispatchRate = float64(st.GetTasksAddRate()), float64(st.GetTasksDispatchRate())
	return r.last, nil
}
