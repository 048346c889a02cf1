package tuner

import "time"

// unconfirmedFactor is how much more than its declared cost a slot is
// charged until the readings have confirmed the cost: a declared prior is
// trusted to within this factor, so that one declared half the truth does
// not overshoot while the first slots show what they use.
const unconfirmedFactor = 2

// trustLives is how many slots seen whole it takes for a confirmed cost
// learned below the declared one to be charged in full; until then the
// declared cost holds in proportion to the lives not yet seen.
const trustLives = 16

// probeBase is how many slots a class whose cost is neither declared nor
// confirmed may have in flight until the readings have identified its
// footprint at every age its slots live to; from then each slot seen whole
// (released after use) lets two more in.
const probeBase = 2

// class is one supplier's record: its limits, its counts and what the
// readings have taught about its slots. The controller owns it (guarded by
// Controller.mu); the supplier only holds a pointer to pass back.
type class struct {
	id       int // index in Controller.classes
	name     string
	need     Resource
	min      int
	max      int
	ramp     int64 // nanoseconds; 0: none
	trust    bool
	prior    vec  // declared cost; 0: learn
	floor    vec  // learned costs never go below
	onDevice bool // charged to a device: consumes GPU memory or an encoder
	closed   bool
	// Encoder sessions and engine percent one slot holds on its device
	// (declared, never learned; 0 unless need has Encoder).
	sessions, load float64
	sdk            sdkTags // for the SDK-named series (ControllerOptions.SDKSeries)

	// What the readings have taught (published by the controller after each
	// reading from the learner's estimate).
	charge    vec // what one slot of this class holds in the budget now
	prof      [numRes]profile
	learned   vec      // peak footprint where identified (see known)
	known     Resource // resources whose peak has been identified
	confirmed Resource // resources whose footprint has been seen to stop growing
	lower     vec      // lower bound on the peak from readings
	settle    time.Duration

	// Counts.
	issued, used    int
	sticky, unknown int // issued per workflow task queue kind; the rest normal
	sawSticky       bool
	lastIssue       int64 // when the last slot above MinSlots was issued; < 0: never
	seen            int   // used slots released: lives the readings saw whole
	life            int64 // how long used slots last, on average (nanoseconds)
	usedOn          [maxDevices]int32
	unusedOn        [maxDevices]int32
	refused         [numReasons]uint64
	perm            permits
	free, done      []*slot // used slots no activity has taken, and those whose activity returned (lease.go)
	oom             vec     // charge after the latest out-of-memory (oom.go); gives way over trustLives
	oomSeen         int     // seen at that out-of-memory
	probe           bool    // probing(), as of the latest price
	covered         bool    // the footprint is identified at every age slots live to
	shown           bool    // every resource probed has a charge above zero
}

func newClass(opts SlotSupplierOptions, need Resource) *class {
	k := &class{
		name: opts.Name, need: need, min: opts.MinSlots, max: opts.MaxSlots,
		ramp: int64(opts.RampThrottle), trust: opts.TrustCost,
		prior: vecOf(opts.Cost), floor: vecOf(opts.CostFloor), onDevice: need&(GPUMemory|Encoder) != 0, lastIssue: -1,
	}
	if need&Encoder != 0 {
		k.sessions, k.load = float64(opts.Cost.EncoderSessions), opts.Cost.EncoderLoad
	}
	k.price()
	return k
}

// price sets what a slot of this class is charged: a confirmed cost as
// learned (never below the readings' lower bound); otherwise the most of the declared cost times unconfirmedFactor,
// the peak identified so far and the readings' lower bound. Never below the
// floor, nor, after an out-of-memory, below the charge it raised (oom.go).
func (k *class) price() {
	for r := res(0); r < numRes; r++ {
		if !k.need.has(r) {
			k.charge[r] = 0
			continue
		}
		c := k.floor[r]
		switch {
		case k.confirmed.has(r):
			// A declared cost gives way to the readings as lives are seen.
			keep := k.prior[r] * max(0, 1-float64(k.seen)/trustLives)
			c = max(c, k.learned[r], k.lower[r], keep)
		default:
			c = max(c, unconfirmedFactor*k.prior[r], k.lower[r])
			if k.known.has(r) {
				c = max(c, k.learned[r])
			}
		}
		k.charge[r] = max(c, k.oomHold(r))
	}
	k.probe = k.probing()
	k.covered, k.shown = k.coversLife(), true
	for r := res(0); r < numRes; r++ {
		if k.unpriced(r) && k.charge[r] <= 0 {
			k.shown = false
		}
	}
}

// oomHold is what the latest out-of-memory still holds the charge of r at:
// the charge it raised, giving way over trustLives lives seen since (0:
// none).
func (k *class) oomHold(r res) float64 {
	return k.oom[r] * max(0, 1-float64(k.seen-k.oomSeen)/trustLives)
}

// unpriced reports whether k consumes r with neither a declared nor a
// confirmed cost: what probing is for.
func (k *class) unpriced(r res) bool {
	return k.need.has(r) && k.prior[r] == 0 && k.floor[r] == 0 && !k.confirmed.has(r)
}

// coversLife reports whether, for every resource k is probing, the readings
// have identified the footprint of slots as old as the bin before the one
// their mean life ends in (the confirmation rule's test, before its lives
// are counted). Until then a slot seen whole may have shown nothing yet of
// what it holds late in its life (a step after seconds of imports), and
// more slots would be let in blind.
func (k *class) coversLife() bool {
	if k.life <= 0 {
		return false
	}
	last := binOf(k.life) - 1
	for r := res(0); r < numRes; r++ {
		if k.unpriced(r) && k.prof[r].oldest() < last {
			return false
		}
	}
	return true
}

// probing reports whether the class's in-flight slots are capped: some
// resource it consumes has neither a declared nor a confirmed cost.
func (k *class) probing() bool {
	if k.trust {
		return false
	}
	for r := res(0); r < numRes; r++ {
		if k.unpriced(r) {
			return true
		}
	}
	return false
}

// probeWindow is how many slots a probing class may have issued.
func (k *class) probeWindow() int {
	switch {
	case k.covered:
		return probeBase + 2*k.seen
	case k.shown:
		return probeBase + k.seen
	}
	return probeBase
}

// normal is how many issued slots were reserved for the normal workflow task
// queue (or for activities).
func (k *class) normal() int { return k.issued - k.sticky - k.unknown }
