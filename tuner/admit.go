package tuner

import "time"

// Reason says why a slot was refused.
type Reason uint8

// Refusal reasons, as they appear in the headroom.slots.refused metric.
const (
	ReasonNone Reason = iota
	ReasonMax
	ReasonRamp
	ReasonStale
	ReasonCPU
	ReasonMemory
	ReasonGPU
	// ReasonProbe: the supplier's cost is not confirmed by readings yet, and
	// as many of its slots as the probe window allows are already in flight.
	ReasonProbe
	numReasons
)

var reasonNames = [numReasons]string{"none", "max", "ramp", "stale", "cpu", "memory", "gpu", "probe"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// gate is the part of a decision that does not look at resources. A
// supplier keeps its own, updated in place, so that the hot path checks it
// without building or copying anything.
type gate struct {
	issued, min, max int
	ramp             int64 // nanoseconds; 0: no throttle
	lastIssue        int64 // when the last slot was issued; < 0: never
}

// check decides at now (read only with a ramp) whether a slot may be issued
// without looking at resources (bypass), must be refused (r, and for
// ReasonRamp how long until the throttle allows one), or is decided by the
// budgets (bypass false, r ReasonNone). fresh reports whether every governed
// reading is usable.
func (g *gate) check(now int64, fresh bool) (bypass bool, r Reason, wait time.Duration) {
	switch {
	case g.issued >= g.max:
		return false, ReasonMax, 0
	case g.issued < g.min:
		return true, ReasonNone, 0
	case !fresh:
		return false, ReasonStale, 0
	case g.ramp > 0 && g.lastIssue >= 0 && now-g.lastIssue < g.ramp:
		return false, ReasonRamp, time.Duration(g.ramp - (now - g.lastIssue))
	}
	return false, ReasonNone, 0
}
