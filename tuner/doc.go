// Package tuner hands out Temporal worker slots against CPU, memory and GPU
// memory targets.
//
// A [Controller] (one per process) owns the readings and the budgets. A
// [SlotSupplier] (one per slot kind or task-queue class) implements
// worker.SlotSupplier on top of it, and [New] builds a worker.WorkerTuner for
// workflow, activity, local-activity, nexus and session slots:
//
//	t, err := tuner.New(tuner.Options{Controller: tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.9}})
//	...
//	w := worker.New(c, "cpu-standard", worker.Options{Tuner: t})
//
// # Admission
//
// The SDK's resource tuner is reactive: it looks at usage now, so work that
// allocates slowly (model loading, dataset reads) shows up seconds after its
// slot was issued and the tuner overshoots. A headroom supplier admits against
// a budget instead. For every resource r it governs:
//
//	measured_r + pending_r + cost_r ≤ target_r
//
// measured_r is the latest reading (working set, per GPU device). cost_r is
// what one more slot of this class is expected to use: the declared prior
// (SlotSupplierOptions.Cost), raised online when readings show more per used
// slot, never below SlotSupplierOptions.CostFloor. pending_r is the part of
// issued slots' cost not yet visible: a reserved slot counts its whole cost
// (it can become a task at any moment and cannot be revoked); once used, its
// share falls linearly to zero over SettleTime as its footprint appears.
//
// Below MinSlots a slot is always admitted; at MaxSlots never; RampThrottle
// spaces admissions. Readings that fail or go stale admit only below MinSlots
// until they recover. On hosts with several GPUs each device has its own
// budget, and a slot is bound to the device with the most headroom; the
// binding travels in permit.UserData and is released with the permit.
//
// TryReserveSlot takes one short lock, reads an already published snapshot,
// makes no syscall and allocates only the 24-byte permit (the SDK reads a
// permit after ReleaseSlot returns, so permits cannot be pooled). ReserveSlot waits for a release, a
// new snapshot or the ramp throttle, never in a polling loop.
package tuner
