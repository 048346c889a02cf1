package tuner

import "math"

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

// reclaimProbe is how many readings in a row must confirm that a
// supplier's released footprint was gone before releases are credited at
// once.
const reclaimProbe = 4

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

// released judges a new residual e (reading minus model, as a fraction of
// capacity, the model no longer holding slots released since the previous
// reading) against rel, the footprint those slots had in that reading. If
// the memory was freed, e is at its usual level; if not, it is above it by
// rel. The usual level is the median of recent residuals, so that a task
// freeing its memory a reading or two before its slot is released (low
// residuals until the release takes it out of the model) does not count
// against it. A footprint within twice the noise margin cannot be told apart
// from noise.
func (z *noise) released(e, rel float64) verdict {
	if rel <= 0 || z.n < 2 || rel <= 2*z.margin {
		return unknown
	}
	if e-z.level < rel/2 {
		return freed
	}
	return kept
}

// deficit is how far a reading sits below what the model expects (bytes):
// the idle baseline plus the footprint of used slots. Most often that is
// memory a task freed before its slot was released (the activity's
// completion round trip): the reading already gives that room to the budget,
// so a prompt release must not credit it again. Measured against the learned
// baseline rather than recent readings, because when every task frees a
// little before its release, recent readings are all low. Without a baseline
// yet, nothing may be credited.
func deficit(base float64, baseKnown bool, footprint, reading float64) float64 {
	if !baseKnown {
		return math.Inf(1)
	}
	return max(0, base+footprint-reading)
}
