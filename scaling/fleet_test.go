package scaling_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	workerpb "go.temporal.io/api/worker/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/headroomhq/headroom/scaling"
)

// fleet is a server's worker registry: ListWorkers in pages of two, with
// the full heartbeats inline (today's servers) or only keys (servers that
// stop filling the deprecated field; then DescribeWorker).
type fleet struct {
	workflowservice.WorkflowServiceClient
	beats  []*workerpb.WorkerHeartbeat
	inline bool
	query  string
	fail   error
}

type fleetClient struct {
	client.Client
	f *fleet
}

func (c fleetClient) WorkflowService() workflowservice.WorkflowServiceClient { return c.f }

func (f *fleet) ListWorkers(_ context.Context, r *workflowservice.ListWorkersRequest, _ ...grpc.CallOption) (*workflowservice.ListWorkersResponse, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	f.query = r.GetQuery()
	start := 0
	if len(r.GetNextPageToken()) > 0 {
		start = int(r.GetNextPageToken()[0])
	}
	end := min(start+2, len(f.beats))
	resp := &workflowservice.ListWorkersResponse{}
	for _, hb := range f.beats[start:end] {
		if f.inline {
			//lint:ignore SA1019 today's servers answer with it; FleetReader reads it
			resp.WorkersInfo = append(resp.WorkersInfo, &workerpb.WorkerInfo{WorkerHeartbeat: hb})
		}
		resp.Workers = append(resp.Workers, &workerpb.WorkerListInfo{WorkerInstanceKey: hb.GetWorkerInstanceKey(), TaskQueue: hb.GetTaskQueue()})
	}
	if end < len(f.beats) {
		resp.NextPageToken = []byte{byte(end)}
	}
	return resp, nil
}

func (f *fleet) DescribeWorker(_ context.Context, r *workflowservice.DescribeWorkerRequest, _ ...grpc.CallOption) (*workflowservice.DescribeWorkerResponse, error) {
	for _, hb := range f.beats {
		if hb.GetWorkerInstanceKey() == r.GetWorkerInstanceKey() {
			return &workflowservice.DescribeWorkerResponse{WorkerInfo: &workerpb.WorkerInfo{WorkerHeartbeat: hb}}, nil
		}
	}
	return nil, errors.New("not found")
}

func beat(key string, used int32, status enumspb.WorkerStatus, age time.Duration) *workerpb.WorkerHeartbeat {
	return &workerpb.WorkerHeartbeat{WorkerInstanceKey: key, TaskQueue: "gpu", Status: status, HostInfo: &workerpb.WorkerHostInfo{HostName: "h", ProcessId: key},
		HeartbeatTime:         timestamppb.New(time.Now().Add(-age)),
		ActivityTaskSlotsInfo: &workerpb.WorkerSlotsInfo{CurrentUsedSlots: used}}
}

// Replicas from the server's worker heartbeats: running workers with a
// recent heartbeat are counted, with their activity slots in use; one
// shutting down or silent for three heartbeat intervals is not. Both ways
// the server may answer give the same count, over pages.
func TestFleetReaderCountsHeartbeats(t *testing.T) {
	run := enumspb.WORKER_STATUS_RUNNING
	beats := []*workerpb.WorkerHeartbeat{
		beat("a", 3, run, time.Second),
		beat("b", 0, run, 2*time.Second),
		beat("c", 1, run, 5*time.Second),
		beat("d", 4, enumspb.WORKER_STATUS_SHUTTING_DOWN, time.Second),
		beat("e", 2, run, 40*time.Second), // silent: gone without a goodbye
	}
	for _, inline := range []bool{true, false} {
		f := &fleet{beats: beats, inline: inline}
		r, err := scaling.NewFleetReader(fleetClient{f: f}, "ns", "gpu", time.Hour, 10*time.Second)
		require.NoError(t, err)
		got, err := r.Read(context.Background())
		require.NoError(t, err)
		assert.Equal(t, scaling.Replicas{Running: 3, Busy: 2, InUse: 4, At: got.At,
			Workers: []scaling.Worker{{Host: "h", ProcessID: "a", InUse: 3}, {Host: "h", ProcessID: "b"}, {Host: "h", ProcessID: "c", InUse: 1}}}, got, "inline %v", inline)
		assert.Equal(t, "TaskQueue = 'gpu'", f.query)
		f.beats = nil
		again, err := r.Read(context.Background())
		require.NoError(t, err)
		assert.Equal(t, got, again, "within the interval the last read is returned")
	}

	f := &fleet{fail: errors.New("unavailable")}
	r, err := scaling.NewFleetReader(fleetClient{f: f}, "ns", "gpu", time.Hour, 0)
	require.NoError(t, err)
	_, err = r.Read(context.Background())
	assert.ErrorContains(t, err, "listing the workers of gpu: unavailable")
	_, err = scaling.NewFleetReader(nil, "ns", "gpu", 0, 0)
	assert.Error(t, err)
}
