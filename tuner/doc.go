// Package tuner hands out Temporal worker slots against CPU, memory and GPU
// memory targets.
//
// A [Controller] (one per process) owns the readings and the budget. A
// [SlotSupplier] (one per slot kind or task-queue class) implements
// worker.SlotSupplier on top of it, and [New] builds a worker.WorkerTuner:
//
//	t, err := tuner.New(tuner.Options{Controller: tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.9}})
//	...
//	w := worker.New(c, "cpu-standard", worker.Options{Tuner: t})
//
// Do not also set worker.Options.MaxConcurrent*ExecutionSize (the SDK
// panics on both).
//
// A slot is admitted if, for every resource its class consumes (per device
// for GPU memory),
//
//	max(reading + what used slots have still to show,
//	    other usage + every used slot's charge) + reserved slots' charges + margin + its charge ≤ target
//
// What you declare: SlotSupplierOptions.Cost, what one task uses at most.
// What is learned from the readings: how much each class's slots show by
// age since MarkSlotUsed, hence the cost; what everything else uses; how far
// readings wander from that model (the margin). Until the readings confirm a
// declared cost a slot is charged twice it; a class with no declared cost
// probes with a few slots first. Readings that fail or go stale admit only
// below MinSlots. Below MinSlots a slot is always admitted, at MaxSlots
// never; RampThrottle spaces admissions. Waiters are served in order across
// a controller's suppliers.
//
// GPU memory is budgeted per device, so each activity must run on the device
// its slot was charged to: add [Tuner.Interceptor] first to the worker's
// interceptors (pool.NewWorker does) and start GPU work on the device that
// gpu.LeaseFromContext returns.
//
// The design, the mechanism table and measurements are in docs/design.md
// and bench/README.md.
package tuner
