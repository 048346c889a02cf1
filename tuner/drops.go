package tuner

import (
	"math"
	"time"
)

// Release drops: an estimate of a class's settled footprint that admission
// cannot bias.
//
// The fit of readings on slot counts (learn.go) is biased low where tasks
// differ in size: admission depends on the readings, so a line whose slots
// happen to be small takes more of them, the count of used slots is
// correlated with the footprints' error, and least squares reads that as a
// smaller footprint (±50 % GPU loads of 5.4 GiB were learned as 4.5–5.2 GiB,
// within 1 % when equal). When a settled slot is released, the readings
// drop by its footprint; when a task ends does not depend on its size, so
// the mean of those drops is not biased by admission. A drop is read off two
// consecutive readings of a line between which only slots of one class were
// released, all past the age their footprint grows by, less what the model
// says everything else on the line changed by (slots that aged, started or
// linger; a slot started in between at an age not identified yet counts as
// showing nothing). It is a lower bound on the class's peak (a slot that
// frees memory before it is released drops less, a slot that shows at once
// makes a drop read low): the learned cost is never below the mean drop plus
// its standard error.

// maxDropGap is the longest time between two readings that a drop is read
// across: everything else on the line has to stay put in between.
const maxDropGap = 2 * time.Second

// drops is a forgetting mean of the drops seen (in learning units).
type drops struct{ w, sum, sq float64 }

func (d *drops) decay(f float64) { d.w, d.sum, d.sq = d.w*f, d.sum*f, d.sq*f }

func (d *drops) add(v, w float64) { d.w, d.sum, d.sq = d.w+w, d.sum+w*v, d.sq+w*v*v }

// mean returns the mean drop and its standard error; ok is false before
// confirmLives drops have been seen.
func (d *drops) mean() (m, se float64, ok bool) {
	if d.w < confirmLives {
		return 0, 0, false
	}
	m = d.sum / d.w
	return m, math.Sqrt(max(d.sq/d.w-m*m, 0) / d.w), true
}

// drop reads a drop off line's row y of r (in learning units) and the row
// before it, and keeps y for the next row.
func (l *learner) drop(s *sample, r res, line int, y float64) {
	t1 := s.at[r]
	t0, y0 := l.prevAt[r][line], l.prevY[r][line]
	l.prevAt[r][line], l.prevY[r][line] = t1, y
	if t0 == 0 || t1-t0 > int64(maxDropGap) {
		return
	}
	// The released slots, their class and the modelled change of the rest.
	cls, m, change := -1, 0, 0.0
	for _, rl := range s.released {
		if !s.onLine(r, line, rl.cls, rl.dev) || rl.at > t1 {
			continue
		}
		// A release at a reading's own time came after it: a row is read
		// only if every release before it is older (copySample).
		if rl.at >= t0 && rl.usedAt < t0 {
			// Released in between: what it showed at t0 is what is measured.
			if cls >= 0 && cls != rl.cls || !l.est[rl.cls].prof[r].grown || t0-rl.usedAt < int64(l.est[rl.cls].settle[r]) {
				return
			}
			cls = rl.cls
			m++
			change += l.linger(r, rl.cls, t1-rl.at)
			continue
		}
		change += l.linger(r, rl.cls, t1-rl.at)
		if rl.at < t0 {
			change -= l.linger(r, rl.cls, t0-rl.at)
		}
	}
	if m == 0 {
		return
	}
	for _, sl := range s.slots {
		if !s.onLine(r, line, sl.cls, sl.dev) || sl.usedAt >= t1 {
			continue
		}
		p := &l.est[sl.cls].prof[r]
		if sl.usedAt >= t0 && !l.told(sl.cls, r, t1-sl.usedAt) {
			// Started in between, at an age not identified yet: it showed
			// nothing at t0 and no less than nothing at t1, so leaving it
			// out reads the drop low, the side a lower bound may err on.
			// A pollers' backlog starts a slot in most releases' place at
			// once; skipping those events left a class with no drops.
			continue
		}
		if !l.told(sl.cls, r, t1-sl.usedAt) || sl.usedAt < t0 && !l.told(sl.cls, r, t0-sl.usedAt) {
			return // the model cannot say what this slot changed by
		}
		change += p.at(t1-sl.usedAt) / scale[r]
		if sl.usedAt < t0 {
			change -= p.at(t0-sl.usedAt) / scale[r]
		}
	}
	// y − y0 = change − Σ footprints of the released at t0.
	l.drops[cls][r].add((change-(y-y0))/float64(m), float64(m))
}

// linger is what the fit says a slot of class k released a ago still shows
// on r, in learning units: where it is not identified, nothing (the drop
// then reads low, which is the side a lower bound may err on).
func (l *learner) linger(r res, k int, a int64) float64 {
	if b := lingerBin(a); b >= 0 && a >= 0 {
		return l.est[k].linger[r][b]
	}
	return 0
}

// told reports whether class k's profile of r says what a slot of age a
// shows: its bin is identified, or it is past the age growth stopped by.
func (l *learner) told(k int, r res, a int64) bool {
	e := &l.est[k]
	return e.prof[r].known[binOf(a)] || e.prof[r].grown && a >= int64(e.settle[r])
}
