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
// measured_r is the latest reading (working set, per GPU device), plus a
// noise margin: how far readings wander from what the model expects (the
// median second difference of the reading minus the footprint of used slots),
// so that a reading low by chance is not taken for headroom. cost_r is what
// one more slot of this class is expected to use: the declared prior
// (SlotSupplierOptions.Cost), refined online from what readings show per used
// slot, never below SlotSupplierOptions.CostFloor. pending_r is the part of
// issued slots' cost not yet visible: a reserved slot counts its whole cost
// (it can become a task at any moment and cannot be revoked), at its class's
// current cost, so that a cost learned higher also covers slots reserved
// before; once used, its
// share falls linearly to zero over the settle time as its footprint
// appears. Pending is taken at the time of the reading it is added to, never
// later: what appeared since is in neither.
//
// Pending is also floored by the readings: the cost of used slots that the
// reading does not show yet (their cost minus what is in use above the idle
// baseline) stays pending, whatever the settle time says. Work whose
// footprint shows late and all at once (a model load: seconds of imports,
// then gigabytes) is not spread over a settle time it does not follow.
//
// The settle time starts as SlotSupplierOptions.SettleTime and is learned:
// the supplier compares the readings with the footprint its used slots would
// show under candidate settle times (a quarter to eight times the declared
// one), each with three shapes (a footprint that grows from the start, or
// that shows nothing for the first half or three quarters of the settle
// time, as a model load does while it imports), and moves when another fits
// clearly better, lengthening at once and shortening in steps. A load
// declared too short would otherwise stop counting as pending before it
// showed, and admission would overshoot like a reactive tuner's; fitted with
// the wrong shape, its learned cost would come out several times too high
// (Stats.SettleTime, Stats.SettleOnset).
//
// A released slot's footprint stays in the budget until a reading shows it
// gone, unless readings have shown, eight in a row, that this supplier's
// released footprint is gone by the next one (work in a subprocess that has
// exited, say): then releases give it back at once, and a reading that shows
// it still there withdraws that (Stats.PromptRelease). Memory a task freed
// before its slot came back is already room in the latest reading and is
// not credited twice.
//
// Until a few of its slots have been seen in the readings, a supplier probes:
// it keeps at most 1, 2, 4, then 8 slots in flight, so that a prior that is
// too low, or zero, costs a few slots of overshoot at most while learning
// corrects it (SlotSupplierOptions.TrustCost skips this).
//
// Below MinSlots a slot is always admitted; at MaxSlots never; RampThrottle
// spaces admissions. Readings that fail or go stale admit only below MinSlots
// until they recover. On hosts with several GPUs each device has its own
// budget, and a slot is bound to the device with the most headroom; the
// binding travels in permit.UserData and is released with the permit.
//
// # Cost of a decision
//
// The budget is computed once per reading. TryReserveSlot takes one short
// lock and compares the slot's cost with it: no syscall, no clock read unless
// the supplier has a RampThrottle, no walk over pending slots. A reserved,
// unused slot lives only in per-controller sums, so reserving and releasing
// one (an empty poll) store about twenty words between them. Permits are
// never reused (the SDK reads a permit after ReleaseSlot returns and keys a
// map by it), so they are carved from blocks of 170: one allocation per 170
// reservations, the same bytes per reservation as the SDK's fixed-size
// supplier. ReserveSlot waits for a release, a new reading or the ramp
// throttle, never in a polling loop.
package tuner
