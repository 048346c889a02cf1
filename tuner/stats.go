package tuner

import "time"

// Stats is a point-in-time view of a supplier, for displays and tests.
type Stats struct {
	Issued, Used int
	MaxSlots     int
	// Fit is how many more slots fit now under the targets (within
	// MaxSlots): the capacity left for this class, for autoscalers.
	// Utilization is Used ÷ (Used + Fit).
	Fit     int
	Granted uint64
	Refused map[Reason]uint64
	// Cost is what one slot is charged now: the declared cost times two
	// until the readings confirm it, then what they show (see
	// SlotSupplierOptions.Cost).
	Cost Cost
	// Confirmed is the resources whose cost the readings have confirmed.
	Confirmed Resource
	// SettleTime is how long after MarkSlotUsed a slot's footprint has
	// grown, as the readings show it (0: not identified yet).
	SettleTime time.Duration
}

// Stats returns the supplier's counters. It allocates; not for hot paths.
func (s *SlotSupplier) Stats() Stats {
	st := Stats{MaxSlots: s.max, Refused: make(map[Reason]uint64)}
	s.c.mu.Lock()
	k := s.k
	s.c.apply(s.c.monitor.Snapshot())
	st.Issued, st.Used, st.Granted, st.Fit = k.issued, k.used, k.perm.carved, s.c.fit(k)
	st.Cost, st.Confirmed, st.SettleTime = k.charge.cost(), k.confirmed&k.need, k.settle
	for r := Reason(1); r < numReasons; r++ {
		if n := k.refused[r]; n > 0 {
			st.Refused[r] = n
		}
	}
	s.c.mu.Unlock()
	return st
}
