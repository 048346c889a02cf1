package tuner

import (
	"math"
	"slices"
)

// A released slot's footprint is in the latest reading and stays in the
// budget until a reading shows it gone: the safe default, since memory can
// outlive its task (a caching allocator, a process that exits late). Where
// it does not (work in a subprocess that has exited by the time the activity
// returns, the usual shape of GPU work driven from Go), waiting for the next
// reading idles about half a sample interval per task. So a supplier learns
// it: once reclaimProbe readings in a row showed its released footprint gone,
// its releases are credited at once; one reading that shows it still there
// withdraws the credit. What a reading already shows as gone (memory freed
// before the slot came back) is room in that reading's budget and is not
// credited again (deficit).

// released is a used slot's footprint in the latest reading when it was
// released (bytes), waiting for the first reading taken after the release to
// judge it. A reading taken just before a release but published just after
// it still shows the memory; judged by that one, memory freed at release
// would look kept.
type released struct {
	sup      *SlotSupplier
	at       int64 // controller clock
	mem, gpu float64
	dev      int
}

// noteReleased records a used slot's release for judging and returns the
// footprint the slot had in the latest reading (bytes of memory, and of GPU
// memory on its device). Only here does a release read the clock: at the
// end of a task, never on the reservation hot path. Called with c.mu held,
// before the slot's contribution is cleared.
func (c *Controller) noteReleased(sl *slot) (mem, gpu float64) {
	mem = max(0, sl.cost.mem-sl.cMem)
	if sl.device >= 0 {
		gpu = max(0, sl.cost.gpu-sl.cGPU)
	}
	if mem > 0 || gpu > 0 {
		c.rels = append(c.rels, released{sup: sl.sup, at: c.nanos(), mem: mem, gpu: gpu, dev: sl.device})
	}
	return mem, gpu
}

// takeReleased sums, and takes out, the footprint released before t: on
// device dev (GPU memory), or memory if dev < 0. It marks the suppliers
// whose releases it took. Called with c.mu held.
func (c *Controller) takeReleased(t int64, dev int) float64 {
	var sum float64
	for i := range c.rels {
		r := &c.rels[i]
		if r.at >= t {
			continue
		}
		if dev < 0 && r.mem > 0 {
			sum += r.mem
			r.mem = 0
			r.sup.relMem = true
		}
		if dev >= 0 && r.dev == dev && r.gpu > 0 {
			sum += r.gpu
			r.gpu = 0
			r.sup.relGPU = true
		}
	}
	c.compactReleased()
	return sum
}

// lateReleased is the footprint of slots released at or after t (on device
// dev, or memory if dev < 0): a reading taken at t still shows it, though
// the model no longer holds those slots. Called with c.mu held.
func (c *Controller) lateReleased(t int64, dev int) float64 {
	var sum float64
	for _, r := range c.rels {
		if r.at < t {
			continue
		}
		if dev < 0 {
			sum += r.mem
		} else if r.dev == dev {
			sum += r.gpu
		}
	}
	return sum
}

// dropReleased forgets the memory or GPU parts of pending releases, when a
// reading was unusable and the next cannot tell what they freed. Called with
// c.mu held.
func (c *Controller) dropReleased(mem, gpu bool) {
	if !mem && !gpu {
		return
	}
	for i := range c.rels {
		if mem {
			c.rels[i].mem = 0
		}
		if gpu {
			c.rels[i].gpu = 0
		}
	}
	c.compactReleased()
}

// expireReleased forgets the GPU parts of releases before t that no device
// reading took (the device was missing from the reading). Called with c.mu
// held.
func (c *Controller) expireReleased(t int64) {
	for i := range c.rels {
		if c.rels[i].at < t {
			c.rels[i].gpu = 0
		}
	}
	c.compactReleased()
}

func (c *Controller) compactReleased() {
	c.rels = slices.DeleteFunc(c.rels, func(r released) bool { return r.mem <= 0 && r.gpu <= 0 })
}

// reclaimProbe is how many readings in a row must confirm that a
// supplier's released footprint was gone before releases are credited at
// once.
const reclaimProbe = 8

// verdict is what one reading says about the footprint released before it.
type verdict uint8

const (
	unknown verdict = iota // nothing released, or too little to tell from noise
	freed                  // the footprint is gone from the reading
	kept                   // the reading still shows it
)

// and combines verdicts from several devices: kept anywhere wins.
func (v verdict) and(w verdict) verdict { return max(v, w) }

// reclaim is a supplier's record of how promptly the readings show its
// released footprint gone, for one resource.
type reclaim struct{ confirmed int }

func (r *reclaim) judge(v verdict) {
	switch v {
	case freed:
		r.confirmed++
	case kept:
		r.confirmed = 0
	}
}

// prompt reports whether releases are credited at once.
func (r *reclaim) prompt() bool { return r.confirmed >= reclaimProbe }

// unmodeled is what a reading shows beyond what the model expects (bytes):
// the reading minus the idle baseline and the footprint of used slots. NaN
// while no baseline has been learned.
func unmodeled(base float64, baseKnown bool, footprint, reading float64) float64 {
	if !baseKnown {
		return math.NaN()
	}
	return reading - base - footprint
}

// releaseVerdict judges a reading taken after slots were released whose
// footprint in the previous reading was rel, the model no longer holding
// them: surplus is what the reading shows beyond the model (fractions of
// capacity). Memory that outlived its task shows as surplus; memory freed at
// or before the release does not. Surplus is measured from the learned idle
// baseline, not from recent readings: when released memory always lingers a
// while, recent readings are all high, and each release is offset by an
// older one expiring. A footprint within twice the noise margin cannot be
// told apart from noise.
func releaseVerdict(surplus, rel, margin float64) verdict {
	if rel <= 0 || rel <= 2*margin || math.IsNaN(surplus) {
		return unknown
	}
	if surplus < rel/2 {
		return freed
	}
	return kept
}

// jumpVerdict judges the same reading by its residual e (reading minus
// model, fraction of capacity) against the two before it: freed memory
// leaves e where it was, memory still held raises it by rel. The larger of
// the two is the reference, so that memory freed one reading before the
// release (one low residual) is not held against it.
//
// Neither test is enough alone. The surplus test is fooled when learning has
// folded lingering memory into the cost per slot (the model then explains
// it); the jump test is fooled when an older release's memory expires in the
// same interval. A reading counts as freed only if both say so.
func (z *noise) jumpVerdict(e, rel float64) verdict {
	if rel <= 0 || z.n < 2 || rel <= 2*z.margin {
		return unknown
	}
	if e-max(z.prev, z.prev2) < rel/2 {
		return freed
	}
	return kept
}

// deficit is how far a reading sits below the model (bytes, from
// unmodeled's surplus). Most often that is memory a task freed before its
// slot was released (the activity's completion round trip): the reading
// already gives that room to the budget, so a prompt release must not
// credit it again. Without a baseline yet, nothing may be credited.
func deficit(surplus float64) float64 {
	if math.IsNaN(surplus) {
		return math.Inf(1)
	}
	return max(0, -surplus)
}
