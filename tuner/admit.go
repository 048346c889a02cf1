package tuner

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

// gate is the part of a decision that does not look at resources.
type gate struct {
	issued, min, max int
	sinceLast, ramp  int64 // nanoseconds; sinceLast < 0: nothing issued yet
	fresh            bool  // every governed reading is fresh
}

// check returns (admit without looking at resources, refusal reason). A zero
// reason with admit false means: decide by the budgets.
func (g gate) check() (bypass bool, r Reason) {
	switch {
	case g.issued >= g.max:
		return false, ReasonMax
	case g.issued < g.min:
		return true, ReasonNone
	case !g.fresh:
		return false, ReasonStale
	case g.ramp > 0 && g.sinceLast >= 0 && g.sinceLast < g.ramp:
		return false, ReasonRamp
	}
	return false, ReasonNone
}
