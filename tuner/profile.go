package tuner

import "time"

// ageEdges are the upper edges of the age bins a class's footprint is
// learned in: how much of its slots' footprint the readings show, by time
// since MarkSlotUsed. Narrow where footprints change fastest (a CPU task
// shows in its first reading, a model load over seconds), wide where they
// hold. The last bin is open.
var ageEdges = [...]time.Duration{
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond,
	2 * time.Second, 3 * time.Second, 4 * time.Second, 6 * time.Second, 8 * time.Second,
	11 * time.Second, 15 * time.Second, 20 * time.Second, 28 * time.Second, 40 * time.Second,
}

const nBins = len(ageEdges) + 1

// binOf returns the age bin of a slot of age a (nanoseconds).
func binOf(a int64) int {
	for i, e := range ageEdges {
		if a < int64(e) {
			return i
		}
	}
	return nBins - 1
}

// profile is what a class's used slots show in the readings by age: shown[b]
// is the mean footprint of a slot whose age is in bin b, where the readings
// have identified it (known[b]). Once growth has been seen to stop (grown),
// a slot of an age not identified yet is taken to show what the oldest
// identified younger age showed; before, nothing.
type profile struct {
	shown [nBins]float64
	known [nBins]bool
	grown bool
}

// at is what a slot of age a (nanoseconds) shows, on average.
func (p *profile) at(a int64) float64 {
	if a < 0 {
		return 0
	}
	return p.bin(binOf(a))
}

// least is the least a slot of age a can be counted on to show: the smaller
// of its bin's and the bin before's (0 in the first). A bin's value is a mean
// over its ages; where the footprint grows within the bin (a step, a ramp)
// a slot early in it shows less, and counting it at the mean would let as
// many slots too many in as start together.
func (p *profile) least(a int64) float64 {
	if a < 0 {
		return 0
	}
	b := binOf(a)
	if b == 0 {
		return 0
	}
	return min(p.bin(b), p.bin(b-1))
}

func (p *profile) bin(b int) float64 {
	if p.known[b] {
		return p.shown[b]
	}
	if p.grown {
		for b--; b >= 0; b-- {
			if p.known[b] {
				return p.shown[b]
			}
		}
	}
	return 0
}

// remaining is what a used slot of age a charged c may still add to the
// readings: c less the least it shows.
func (p *profile) remaining(c float64, a int64) float64 { return max(0, c-p.least(a)) }

// oldest is the oldest identified age bin (-1: none).
func (p *profile) oldest() int {
	for b := nBins - 1; b >= 0; b-- {
		if p.known[b] {
			return b
		}
	}
	return -1
}
