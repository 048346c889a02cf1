package tuner_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// reading is a resources.Source that always reads the same usage; leave
// ControllerOptions.Source nil to read this process's cgroup (or the host).
type reading resources.Usage

func (r reading) Read(context.Context) (resources.Usage, error) { return resources.Usage(r), nil }

// quiet is a logger that writes nothing.
var quiet = log.NewStructuredLogger(slog.New(slog.DiscardHandler))

// poll is what the SDK tells a supplier when a poller asks for a slot.
type poll struct{ issued int }

func (p poll) TaskQueue() string                     { return "cpu-standard" }
func (p poll) TaskQueueKind() enumspb.TaskQueueKind  { return enumspb.TASK_QUEUE_KIND_NORMAL }
func (p poll) WorkerBuildId() string                 { return "" }
func (p poll) WorkerIdentity() string                { return "example" }
func (p poll) NumIssuedSlots() int                   { return p.issued }
func (p poll) NumUsedSlots() int                     { return 0 }
func (p poll) Logger() log.Logger                    { return quiet }
func (p poll) MetricsHandler() client.MetricsHandler { return client.MetricsNopHandler }

// Admission against a memory target: 8 GiB of memory, 25 % of it in use,
// a target of 80 %, so 4.4 GiB of room. A slot declared at 1 GiB is charged
// twice that until the readings confirm what its tasks use, so two fit (the
// rest of the room covers the margin the readings' noise earns) and the
// third is refused for memory.
func Example() {
	t, err := tuner.New(tuner.Options{
		Controller: tuner.ControllerOptions{
			TargetMemory: 0.8,
			Source:       reading{Memory: 0.25, MemoryBytes: 2 << 30, MemoryLimitBytes: 8 << 30, CPUCores: 4},
			Logger:       quiet,
		},
		Activity: tuner.SlotSupplierOptions{
			Name: "activity", MaxSlots: 50, Resources: tuner.Memory,
			Cost: tuner.Cost{MemoryBytes: 1 << 30},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	if err := t.Controller().WaitReady(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	// In a worker: worker.New(c, "cpu-standard", worker.Options{Tuner: t}).
	opts := worker.Options{Tuner: t, WorkerStopTimeout: 10 * time.Second}
	sup := opts.Tuner.GetActivityTaskSlotSupplier()
	var held []*worker.SlotPermit
	for range 3 {
		if p := sup.TryReserveSlot(poll{issued: len(held)}); p != nil {
			held = append(held, p)
		}
	}
	a, _ := t.Stats()
	fmt.Println("admitted:", len(held))
	fmt.Println("refused for memory:", a.Refused[tuner.ReasonMemory])
	// Output:
	// admitted: 2
	// refused for memory: 1
}

// Bad options name the field.
func ExampleNewSlotSupplier_invalid() {
	c, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.8, Source: reading{}, Logger: quiet})
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
