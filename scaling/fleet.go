package scaling

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workerpb "go.temporal.io/api/worker/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// Replicas is what the server's worker heartbeats say of a pool's
// workers: each heartbeat carries the worker's activity slots in use, as
// the SDK counts them (MarkSlotUsed to ReleaseSlot), so the sum over
// replicas needs no aggregator of its own.
type Replicas struct {
	Running int // workers of the queue whose latest heartbeat is running and recent
	Busy    int // of those, with an activity slot in use
	InUse   int // activity slots in use over them
	Workers []Worker
	At      time.Time
}

// Worker is one running replica, as its heartbeat names it: a process on a
// host, with its activity slots in use. A scaler removing replicas removes
// those with the fewest first (see RunDeletionCost).
type Worker struct {
	Host, ProcessID string
	InUse           int
}

// FleetReader reads a pool's replicas from the server (ListWorkers), at
// most once per interval. Workers send heartbeats every
// client.Options.WorkerHeartbeatInterval (default 60 s; set a few seconds
// for scaling, and the same on every replica); one whose latest heartbeat
// is older than three intervals is not counted.
type FleetReader struct {
	c         client.Client
	namespace string
	queue     string
	every     time.Duration
	beat      time.Duration

	mu   sync.Mutex
	last Replicas
	err  error
}

// NewFleetReader returns a reader of queue's workers in namespace, reading
// at most once per every (zero: 5 s), for workers that heartbeat every beat
// (zero: 60 s, the SDK's default).
func NewFleetReader(c client.Client, namespace, queue string, every, beat time.Duration) (*FleetReader, error) {
	if c == nil || queue == "" {
		return nil, fmt.Errorf("scaling: NewFleetReader needs a client and a queue name")
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	if beat <= 0 {
		beat = 60 * time.Second
	}
	return &FleetReader{c: c, namespace: namespace, queue: queue, every: every, beat: beat}, nil
}

// Read returns the pool's replicas.
func (r *FleetReader) Read(ctx context.Context) (Replicas, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.At.IsZero() && time.Since(r.last.At) < r.every {
		return r.last, r.err
	}
	now := time.Now()
	r.last, r.err = Replicas{At: now}, nil
	var token []byte
	for {
		resp, err := r.c.WorkflowService().ListWorkers(ctx, &workflowservice.ListWorkersRequest{
			Namespace: r.namespace, PageSize: 1000, NextPageToken: token,
			Query: "TaskQueue = '" + strings.ReplaceAll(r.queue, "'", "''") + "'",
		})
		if err != nil {
			r.err = fmt.Errorf("scaling: listing the workers of %s: %w", r.queue, err)
			return r.last, r.err
		}
		// The full heartbeats (slots included) come in WorkersInfo, which the
		// API deprecates for Workers (no slots): use it while servers fill
		// it, else describe each worker listed.
		//lint:ignore SA1019 the only field with slots in one call; DescribeWorker below when it goes
		infos := resp.GetWorkersInfo()
		if len(infos) == 0 {
			for _, w := range resp.GetWorkers() {
				d, err := r.c.WorkflowService().DescribeWorker(ctx, &workflowservice.DescribeWorkerRequest{Namespace: r.namespace, WorkerInstanceKey: w.GetWorkerInstanceKey()})
				if err != nil {
					r.err = fmt.Errorf("scaling: describing worker %s of %s: %w", w.GetWorkerInstanceKey(), r.queue, err)
					return r.last, r.err
				}
				infos = append(infos, d.GetWorkerInfo())
			}
		}
		for _, w := range infos {
			r.count(w.GetWorkerHeartbeat(), now)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return r.last, nil
		}
	}
}

func (r *FleetReader) count(hb *workerpb.WorkerHeartbeat, now time.Time) {
	if hb.GetStatus() != enumspb.WORKER_STATUS_RUNNING || now.Sub(hb.GetHeartbeatTime().AsTime()) > 3*r.beat {
		return
	}
	r.last.Running++
	n := int(hb.GetActivityTaskSlotsInfo().GetCurrentUsedSlots())
	r.last.Workers = append(r.last.Workers, Worker{Host: hb.GetHostInfo().GetHostName(), ProcessID: hb.GetHostInfo().GetProcessId(), InUse: n})
	if n > 0 {
		r.last.Busy++
		r.last.InUse += n
	}
}

// Source reads a pool's Signal: the backlog from q, the slots in use and
// busy replicas from f (nil: none counted, the backlog alone). The
// per-replica capacity is left to the Policy's.
func Source(q *Reader, f *FleetReader) func(context.Context) (Signal, error) {
	return func(ctx context.Context) (Signal, error) {
		st, err := q.Read(ctx)
		if err != nil {
			return Signal{}, err
		}
		s := Signal{Backlog: st.Backlog}
		if f != nil {
			rep, err := f.Read(ctx)
			if err != nil {
				return Signal{}, err
			}
			s.InUse, s.BusyReplicas = rep.InUse, rep.Busy
		}
		return s, nil
	}
}
