package tuner

import "math"

// What the learner reads off its fit after each reading: per class, the
// profile, the peak and whether it is confirmed; per line, the usage of
// everything else; and the readings' lower bound on each cost.

// everythingElse updates the usage of everything but the slots on each
// line of r: the reading less what the used slots show now by their
// classes' profiles (at an age not identified yet, what the latest
// identified younger age showed),
// smoothed over baseSmooth so that a reading low by chance is not taken for
// room (admission takes the larger of this, floored at the fit's intercept,
// plus every used slot's charge, and the reading plus what the slots have
// still to show: see line).
func (l *learner) everythingElse(s *sample, r res) {
	lines := len(l.base[r])
	a := 1.0
	if l.seenBase[r] {
		a = 1 - math.Exp(-float64(s.at[r]-l.baseAt[r])/float64(baseSmooth))
	}
	l.seenBase[r], l.baseAt[r] = true, s.at[r]
	for line := 0; line < lines; line++ {
		read, _ := s.readOf(r, line)
		if math.IsNaN(read) {
			continue
		}
		shown := 0.0
		for _, sl := range s.slots {
			if !s.onLine(r, line, sl.cls, sl.dev) || sl.usedAt >= s.at[r] {
				continue
			}
			shown += l.est[sl.cls].prof[r].at(s.at[r] - sl.usedAt)
		}
		g := l.reg[r]
		for _, rl := range s.released {
			if !s.onLine(r, line, rl.cls, rl.dev) || rl.at > s.at[r] || !s.lingers(rl.cls) {
				continue
			}
			if b := lingerBin(s.at[r] - rl.at); b >= 0 {
				shown += max(g.beta[lines+rl.cls*classCols+nBins+b], 0) * scale[r]
			}
		}
		l.base[r][line] += a * (read - shown - l.base[r][line])
		// Admission's is never below the fit's own usage of everything
		// else. The profile is the mean footprint by age, so a slot that
		// grows later than the mean (a program slow to start on a loaded
		// host) pulls read − shown down by its whole footprint, and base +
		// expect, which is to hold such slots, would let one in that does
		// not fit. The intercept is fitted jointly with the profile over
		// every reading (forgetting over 60 s); one slot's timing hardly
		// moves it. The lower bound keeps the smoothed estimate: there a
		// base too high reads as costs too low, and the intercept lags
		// other usage that falls.
		l.admit[r][line] = max(l.base[r][line], l.base0[r][line]+g.beta[line]*scale[r])
	}
}

// derive reads class k's bins of resource r off the fit: which are known,
// the peak among them, and whether growth was seen to stop.
func (l *learner) derive(k int, r res, g *regression, off int, sigma2, tol float64, seen int, life int64) {
	e := &l.est[k]
	for b := range nLinger {
		e.linger[r][b] = 0
		if h, _, ok := identified(g, off+nBins+b, sigma2, tol); ok {
			e.linger[r][b] = max(h, 0)
		}
	}
	var p profile
	var binSE [nBins]float64
	peak, peakSE, have := 0.0, 0.0, false
	for b := 0; b < nBins; b++ {
		if h, se, ok := identified(g, off+b, sigma2, tol); ok {
			p.known[b], p.shown[b], binSE[b] = true, h*scale[r], se*scale[r]
			if !have || h*scale[r] > peak {
				peakSE = se * scale[r]
			}
			peak, have = max(peak, h*scale[r]), true
		}
	}
	bit := Resource(1) << r
	e.known &^= bit
	e.confirmed &^= bit
	if !have {
		e.prof[r] = profile{}
		// Tasks shorter than the first age bin seldom overlap a reading, so
		// their footprint cannot be told by age: once several have been seen
		// whole, the readings' lower bound (and the declared cost, fading
		// over trustLives) govern them; without the bound nothing would hold
		// them between readings.
		if seen >= confirmLives && life > 0 && life < int64(ageEdges[0]) {
			e.known |= bit
			e.confirmed |= bit
			e.learned[r], e.lower[r] = 0, l.lower[k][r]
		}
		return
	}
	grown, plateau, oldest := -1, 0, -1
	for b := 0; b < nBins; b++ {
		if !p.known[b] {
			continue
		}
		oldest = b
		p.shown[b] = min(max(p.shown[b], 0), peak)
		// A bin counts towards the plateau only once slots have been seen
		// through it and through the next: a bin seen only at its young end
		// holds the mean of those ages, close to the bin before's on any
		// growth, and a bin seen just through is fitted from the few
		// readings in which a wave of slots crossed it (a ramp read 3.1 s
		// into a [3 s, 4 s) bin looked like a plateau and confirmed a third
		// of the footprint: TestHalfPriorOfARampNoOvershoot).
		if p.shown[b] < 0.8*peak {
			continue
		}
		if grown < 0 {
			grown = b
		}
		// Nor does a bin that reaches 80 % of the peak only by its noise:
		// with readings ±4 points and few slots, young bins of a ramp came
		// out at the peak by chance, and a footprint confirmed at 3 s into
		// a 9 s ramp let 11 slots in at half their size (family workload
		// 173: +0.47).
		if p.shown[b]-2*binSE[b] < 0.8*peak {
			continue
		}
		if b < nBins-2 && l.aged[k] >= int64(ageEdges[b+1]) {
			plateau++
		}
	}
	e.known |= bit
	// Charged at the upper end of what the readings allow: the peak plus
	// twice its standard error, which shrinks as data comes in.
	e.learned[r] = peak + 2*peakSE
	// Confirmed: growth was seen to stop (two identified ages at the peak,
	// and a peak clear of the noise), or slots were seen through whole
	// lives and the ages they reach are identified.
	if plateau >= 2 && peak > 3*tol*scale[r] || seen >= confirmLives && life > 0 && oldest >= binOf(life)-1 {
		e.confirmed |= bit
		p.grown = true
	}
	e.prof[r] = p
	e.settle[r] = ageEdges[min(grown, len(ageEdges)-1)]
	if dm, dse, ok := l.drops[k][r].mean(); ok && p.grown {
		e.learned[r] = max(e.learned[r], (dm+dse)*scale[r])
	}
	e.lower[r] = l.lower[k][r]
}

// identified returns unknown j of fit g, its standard error, and whether it
// is known: seen in enough data, and its standard error at most relTol of
// its value or tol.
func identified(g *regression, j int, sigma2, tol float64) (h, se float64, ok bool) {
	if g.weight(j) < minWeight {
		return 0, 0, false
	}
	h, se = g.beta[j], math.Sqrt(sigma2*g.varDiag[j])
	return h, se, se <= max(relTol*math.Abs(h), tol)
}

// bound updates each class's lower bound on its peak from one line's usage
// above everything else: no slot uses more than its peak, so what the
// class's n slots show, less what the other classes' slots are charged,
// is at most n × its peak. The median of three readings keeps one odd
// reading out; the bound fades over lowerForget (see fit).
func (l *learner) bound(s *sample, r res, above, capacity float64) {
	others := 0.0
	for k, n := range l.n {
		others += float64(n) * s.charge[k][r]
	}
	for k, n := range l.n {
		if n == 0 {
			continue
		}
		v := min((above-(others-float64(n)*s.charge[k][r]))/float64(n), capacity)
		l.lower[k][r] = max(l.lower[k][r], l.med[k][r].add(v))
		l.est[k].lower[r] = l.lower[k][r]
	}
}

// median3 is the median of the last three values added (of fewer, the
// latest).
type median3 struct {
	v [3]float64
	n int
}

func (m *median3) add(x float64) float64 {
	m.v[m.n%3] = x
	m.n++
	if m.n < 3 {
		return x
	}
	a, b, c := m.v[0], m.v[1], m.v[2]
	return max(min(a, b), min(max(a, b), c))
}
