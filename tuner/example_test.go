package tuner_test

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// The call site users write: a tuner in worker.Options. Here it reads a fake
// source; leave Source nil to read this process's cgroup (or the host).
func Example() {
	t, err := tuner.New(tuner.Options{
		Controller: tuner.ControllerOptions{
			TargetCPU: 0.9, TargetMemory: 0.8,
			Source: testutil.NewSource(resources.Usage{CPU: 0.2, Memory: 0.3, MemoryLimitBytes: 8 << 30, CPUCores: 4}),
			Logger: testutil.NopLogger,
		},
		Activity: tuner.SlotSupplierOptions{
			Name: "activity", MinSlots: 1, MaxSlots: 50, RampThrottle: 10 * time.Millisecond,
			Cost: tuner.Cost{MemoryBytes: 512 << 20, CPUCores: 0.5},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	opts := worker.Options{Tuner: t, WorkerStopTimeout: 10 * time.Second}
	fmt.Println("activity slots at most:", opts.Tuner.GetActivityTaskSlotSupplier().MaxSlots())
	fmt.Println("workflow slots at most:", opts.Tuner.GetWorkflowTaskSlotSupplier().MaxSlots())
	// Output:
	// activity slots at most: 50
	// workflow slots at most: 1000
}

// Bad options name the field.
func ExampleNewSlotSupplier_invalid() {
	c, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.8, Source: testutil.NewSource(resources.Usage{}), Logger: testutil.NopLogger})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	_, err = tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MinSlots: 5, MaxSlots: 2})
	fmt.Println(err)
	// Output:
	// tuner: invalid options: MinSlots: 5 is above MaxSlots 2
}
