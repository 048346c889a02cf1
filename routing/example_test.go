package routing_test

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
)

// The call site workflow code writes: the class defaults for a queue, with
// one field overridden.
func ExampleOptions() {
	o := routing.Options(queues.GPUMLInference, workflow.ActivityOptions{StartToCloseTimeout: 3 * time.Hour})
	fmt.Println(o.TaskQueue, o.StartToCloseTimeout, o.HeartbeatTimeout, o.RetryPolicy.MaximumAttempts)
	// Output: gpu-ml-inference 3h0m0s 30s 5
}

// A table routes by activity; workflows call Execute(ctx, TrainModel, …).
func ExampleTable() {
	tb := routing.NewTable(queues.Default())
	cpu := queues.CPUStandard
	err := tb.Add("TrainModel", routing.Route{Queue: queues.GPUMLInference, Fallback: &cpu, ScheduleToStart: time.Minute})
	fmt.Println(err)
	r, _ := tb.Lookup("TrainModel")
	fmt.Println(r.Queue, "falls back to", r.Fallback)
	_, err = tb.Lookup("TrainModle")
	fmt.Println(err)
	// Output:
	// <nil>
	// gpu-ml-inference falls back to cpu-standard
	// routing: activity has no route: TrainModle
}
