package pipeline

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
)

// Queue of each pool.
var (
	CPUQueue     = queues.CPUStandard
	GPUQueue     = queues.GPUMLInference
	HighMemQueue = queues.HighMemoryAnalytics
)

// Routes returns the route table of the pipeline's activities. The GPU
// stages fall back to CPU when no GPU worker starts them within gpuWait.
func Routes(reg *queues.Registry, a *Activities, gpuWait time.Duration) (*routing.Table, error) {
	tb := routing.NewTable(reg)
	cpu := CPUQueue
	for _, r := range []struct {
		act   any
		route routing.Route
	}{
		{a.ValidateData, routing.Route{Queue: CPUQueue}},
		{a.ProcessLargeDataset, routing.Route{Queue: HighMemQueue, Options: workflow.ActivityOptions{HeartbeatTimeout: 30 * time.Second}}},
		{a.TrainModel, routing.Route{Queue: GPUQueue, Fallback: &cpu, ScheduleToStart: gpuWait}},
		{a.GenerateEmbeddings, routing.Route{Queue: GPUQueue, Fallback: &cpu, ScheduleToStart: gpuWait}},
		{a.StoreResults, routing.Route{Queue: CPUQueue}},
	} {
		if err := tb.Add(r.act, r.route); err != nil {
			return nil, err
		}
	}
	return tb, nil
}

// WorkflowName is the pipeline workflow's registered name.
const WorkflowName = "MLPipeline"

// Workflow runs the five stages in order and returns where each ran. Bad
// input fails it at once, before any stage is scheduled (see Input.Validate).
func Workflow(tb *routing.Table, a *Activities) func(workflow.Context, Input) ([]Stage, error) {
	return func(ctx workflow.Context, in Input) ([]Stage, error) {
		if err := in.Validate(); err != nil {
			return nil, err
		}
		var stages []Stage
		for _, act := range []any{a.ValidateData, a.ProcessLargeDataset, a.TrainModel, a.GenerateEmbeddings} {
			var s Stage
			if err := tb.Execute(ctx, act, in).Get(ctx, &s); err != nil {
				return stages, err
			}
			stages = append(stages, s)
		}
		var s Stage
		if err := tb.Execute(ctx, a.StoreResults, in, stages).Get(ctx, &s); err != nil {
			return stages, err
		}
		return append(stages, s), nil
	}
}
