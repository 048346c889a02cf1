package tuner

import "math"

// A supplier's settle time (how long a used slot's footprint takes to show)
// is declared, then learned. It matters both ways: declared too short, a
// slot stops counting as pending before its footprint shows and admission
// turns reactive (a 6 s load declared as 2 s peaks at 134 % of memory);
// declared too long, slots stay pending after their footprint shows, the
// budget counts them twice and utilization drops by a third.
//
// settleFit scores candidate settle times, from a quarter to eight times the
// declared one, by how well each explains the readings: for candidate S the
// supplier's used slots would show Σ min(age/S, 1) slots' worth, and the
// readings should follow that as a straight line (any slope: the cost is
// learned separately; any intercept: usage by others). Each settle time is
// tried with three shapes: a footprint that grows from the start, and one
// that shows nothing for the first half or three quarters of it (a model
// load: seconds of imports, then the allocation). A candidate's score is its
// best shape's. Against the wrong shape, a late footprint is fitted by the
// longest settle time, and the cost learned through that model came out 2.4
// to 5 times the truth. Work at a steady
// state says nothing about S (every candidate sees the same constant), so
// the choice moves only when work starts, stops or changes pace, and only
// when the current settle time fits clearly worse than the best candidate.
// It then takes the longest candidate that fits about as well: a settle time
// too long costs utilization, one too short costs overshoot. For the same
// reason shortening needs more: slots of different sizes early on look like
// faster or slower ramps, so the settle time shortens only after
// settleMinSlots slots, only when the best candidate halves the squared
// error, one step at a time, settleMinReadings readings apart.

const (
	nSettle = 11
	// settleDeclared is the index of the declared settle time.
	settleDeclared = 4
	// settleForget is the weight of the past per reading: about the last
	// 1/(1−settleForget) readings count.
	settleForget = 0.99
	// settleMinReadings is how many readings a fit needs before it may move,
	// and between two steps down.
	settleMinReadings = 20
	// settleMinSlots is how many used slots a fit needs before it may
	// shorten the settle time.
	settleMinSlots = 8
	// settleTolerance: a candidate whose squared error is within this
	// fraction of the best one's (plus 0.1 % of the readings' variance)
	// fits about as well.
	settleTolerance = 0.25
	// nShape is how many footprint shapes each settle time is tried with.
	nShape = 3
)

// settleOnset[j] is shape j's onset: the fraction of the settle time that
// passes before any of the footprint shows; after it, the footprint grows
// linearly until the settle time.
var settleOnset = [nShape]float64{0, 0.5, 0.75}

// settleFactor[k] is candidate k's multiple of the declared settle time:
// 2^((k−settleDeclared)/2).
var settleFactor = func() (f [nSettle]float64) {
	for k := range f {
		f[k] = math.Exp2(float64(k-settleDeclared) / 2)
	}
	return f
}()

// settleFit holds exponentially weighted sums for one line fit per
// candidate: u (the reading) against g[k] (slots showing under candidate k).
type settleFit struct {
	cand        [nSettle]int64 // nanoseconds
	cur         int
	shape       int // index of settleOnset at cur
	n           int // readings
	slots       int // slots used
	lastDown    int // n at the latest step down
	s1, sU, sUU float64
	sG, sGG     [nSettle][nShape]float64
	sUG         [nSettle][nShape]float64
}

// showing is the fraction of a footprint that shows at age (nanoseconds)
// for settle time settle and onset fraction onset.
func showing(age, settle int64, onset float64) float64 {
	start := onset * float64(settle)
	if float64(age) <= start {
		return 0
	}
	return min((float64(age)-start)/(float64(settle)-start), 1)
}

func newSettleFit(declared int64) settleFit {
	f := settleFit{cur: settleDeclared}
	for k := range f.cand {
		f.cand[k] = max(1, int64(float64(declared)*settleFactor[k]))
	}
	return f
}

// shows returns, per candidate, how many slots' worth of footprint slots
// used at usedAt would show at t.
func (f *settleFit) shows(g *[nSettle][nShape]float64, usedAt, t int64) {
	age := t - usedAt
	if age <= 0 {
		return
	}
	for k, s := range f.cand {
		for j, on := range settleOnset {
			g[k][j] += showing(age, s, on)
		}
	}
}

// add records one reading u with the footprint g each candidate predicts.
func (f *settleFit) add(u float64, g *[nSettle][nShape]float64) {
	const l = settleForget
	f.n++
	f.s1 = l*f.s1 + 1
	f.sU = l*f.sU + u
	f.sUU = l*f.sUU + u*u
	for k := range g {
		for j, x := range g[k] {
			f.sG[k][j] = l*f.sG[k][j] + x
			f.sGG[k][j] = l*f.sGG[k][j] + x*x
			f.sUG[k][j] = l*f.sUG[k][j] + u*x
		}
	}
}

// variance is the readings' weighted sum of squares about their mean.
func (f *settleFit) variance() float64 { return f.sUU - f.sU*f.sU/f.s1 }

// sse is candidate k's squared error about its best line with shape j, and
// whether that line rises (a footprint that shrinks as slots are used
// explains nothing).
func (f *settleFit) sse(k, j int) (float64, bool) {
	syy := f.variance()
	sxx := f.sGG[k][j] - f.sG[k][j]*f.sG[k][j]/f.s1
	sxy := f.sUG[k][j] - f.sU*f.sG[k][j]/f.s1
	if !(sxx > 1e-9*f.s1) || !(sxy > 0) {
		return syy, false
	}
	return max(syy-sxy*sxy/sxx, 0), true
}

// bestShape is candidate k's best-fitting shape and its squared error.
func (f *settleFit) bestShape(k int) (j int, sse float64, ok bool) {
	j = -1
	for i := range settleOnset {
		e, fine := f.sse(k, i)
		if fine && (j < 0 || e < sse) {
			j, sse = i, e
		}
	}
	return j, sse, j >= 0
}

// choose moves cur if the readings call for it and reports whether it did.
// Nothing moves before settleMinReadings readings and probeSlots slots (a
// supplier's first slots are few and probing keeps them so).
func (f *settleFit) choose() bool {
	if f.n < settleMinReadings || f.slots < probeSlots {
		return false
	}
	var sse [nSettle]float64
	var ok [nSettle]bool
	var shape [nSettle]int
	best := -1
	for k := range f.cand {
		shape[k], sse[k], ok[k] = f.bestShape(k)
		if ok[k] && (best < 0 || sse[k] < sse[best]) {
			best = k
		}
	}
	if best < 0 {
		return false
	}
	slack := 1e-3 * f.variance()
	near := sse[best]*(1+settleTolerance) + slack
	if ok[f.cur] && sse[f.cur] <= near {
		// The settle time fits: keep its shape while that fits about as well
		// as the best shape for it. Like the settle time, the shape moves to
		// a later onset (more pending) on that alone, to an earlier one only
		// on the stronger evidence that shortening needs.
		e, fine := f.sse(f.cur, f.shape)
		switch {
		case fine && e <= sse[f.cur]*(1+settleTolerance)+slack:
			return false
		case shape[f.cur] > f.shape,
			f.slots >= settleMinSlots && (!fine || e > 2*sse[f.cur]+slack):
			f.shape = shape[f.cur]
			return true
		}
		return false
	}
	longest := best
	for k := nSettle - 1; k > best; k-- {
		if ok[k] && sse[k] <= near {
			longest = k
			break
		}
	}
	switch {
	case longest > f.cur:
		f.cur = longest
	case f.slots >= settleMinSlots && f.n-f.lastDown >= settleMinReadings && f.cur > 0 &&
		(!ok[f.cur] || sse[f.cur] > 2*sse[best]+slack):
		f.cur--
		f.lastDown = f.n
	default:
		return false
	}
	f.shape = max(shape[f.cur], 0)
	return true
}
