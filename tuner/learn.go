package tuner

import (
	"math"
	"time"
)

// Learning constants. Each is a statistical choice, not a fit to a
// scenario; docs/design.md gives the reasons.
const (
	// forget is the time constant over which old readings lose weight.
	forget = 60 * time.Second
	// relTol and absTol decide when a bin is known: its standard error is
	// at most relTol of its value or absTol of capacity.
	relTol = 0.2
	absTol = 0.003
	// minWeight is the least data (Σ slots² over readings) a known bin has.
	minWeight = 4
	// confirmLives is how many slots seen whole confirm a peak whose end of
	// growth was not seen separately (tasks that end as they peak), once
	// the ages they live to are identified.
	confirmLives = 4
	// lowerForget is the time constant over which the readings' lower
	// bound on a cost fades, so that one noisy reading does not hold it up.
	lowerForget = 30 * time.Second
	// keepBase is how many readings' worth the usage of everything else
	// carries over when the fit starts over.
	keepBase = 4
	// baseSmooth is the time constant the usage of everything else is
	// smoothed over.
	baseSmooth = time.Second
)

// marginSigmas is, per resource, how many residual standard deviations of
// the fit the budget keeps free (line.margin). Memory and GPU memory: two.
// Footprints there grow after admission and differ from task to task, and
// going over means an OOM kill; at one, GPU loads of sizes ±50 % peaked
// above target + 0.05 (TestHalfPriorOfARampNoOvershoot). CPU: one. CPU
// shows at once, so the next reading holds what every running slot really
// uses; its residual is mostly usage no class governs (an in-process server,
// a memory class's cores), which a wider margin cannot tell from a slot's
// spread; and going over means throttling. At two, the example's CPU pool
// stalled behind the other pools' CPU (its end-to-end test 60 s → 160 s
// under -race, past 8 minutes in CI) and TestShortTasksBesideUngovernedCPU
// ran half its tasks.
var marginSigmas = [numRes]float64{resCPU: 1, resMem: 2, resGPU: 2}

// scale is the unit learning works in: cores, GiB.
var scale = [numRes]float64{1, 1 << 30, 1 << 30}

// sample is what the learner gets from one reading, copied under the lock.
type sample struct {
	epoch  uint64 // Controller.classEpoch
	at     [numRes]int64
	new    [numRes]bool // a new, usable reading of this resource
	read   [2]float64   // CPU cores, memory bytes in use
	cap    [2]float64   // CPU cores, memory bytes of capacity (0: unknown)
	gpu    []float64    // bytes in use per device index (NaN: not read)
	gpuCap []float64
	slots  []slotSample
	// released are used slots released in the last lingerMax (usedAt holds
	// the release time, as at).
	released []releaseSample
	need     []Resource
	charge   []vec
	seen     []int
	life     []int64 // mean life of released used slots per class (0: none yet)
}

// lingerEdges are the upper edges of the bins of time since release in
// which what released slots still show is learned (memory a process or a
// caching allocator keeps for a while): without them it would look like
// other usage growing, or like costs lower than they are.
var lingerEdges = [...]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}

const (
	nLinger   = len(lingerEdges)
	classCols = nBins + nLinger
	// lingerMax is how long a release is remembered.
	lingerMax = 4 * time.Second
)

func lingerBin(a int64) int {
	for i, e := range lingerEdges {
		if a < int64(e) {
			return i
		}
	}
	return -1
}

type slotSample struct {
	cls, dev int
	usedAt   int64
}

type releaseSample struct {
	cls, dev int
	usedAt   int64
	at       int64
}

// estimate is what the learner has made of one class.
type estimate struct {
	learned   vec
	known     Resource
	confirmed Resource
	lower     vec
	prof      [numRes]profile
	settle    [numRes]time.Duration // age by which the footprint has grown
	// linger is what a released slot still shows by time since release,
	// where the fit identifies it (0 elsewhere), in learning units.
	linger [numRes][nLinger]float64
}

// learner fits, per resource, each class's footprint by slot age (one
// unknown per class and age bin) and the usage of everything else (one per
// device) to the readings. It runs on the controller's sampling goroutine,
// off the lock; only its output is published.
type learner struct {
	epoch    uint64
	ndev     int
	nclass   int
	reg      [numRes]*regression
	lastAt   [numRes]int64
	base0    [numRes][]float64 // first reading per line; NaN: none yet
	base     [numRes][]float64
	admit    [numRes][]float64 // base as admission takes it (everythingElse)
	sigma    [numRes]float64   // residual standard deviation of the fit, in units
	baseAt   [numRes]int64
	seenBase [numRes]bool
	lower    [][numRes]float64
	med      [][numRes]median3
	drops    [][numRes]drops
	prevAt   [numRes][]int64 // per line, the time of the previous row (0: none)
	prevY    [numRes][]float64
	x        []float64
	nz       []int
	n        []int // used slots per class on the line being fitted
	// aged is, per class, the age of its oldest used slot seen in a reading
	// since the fit started: the bins up to it have been seen through.
	aged []int64
	est  []estimate
}

// reset starts the fit over for a new set of classes or devices. What the
// readings said about everything else's usage is kept, as keepBase rows'
// worth of evidence: idle readings are what tells it apart from the
// classes' footprints, and the new classes have not changed it.
func (l *learner) reset(s *sample) {
	old := *l
	*l = learner{epoch: s.epoch, ndev: len(s.gpu), nclass: len(s.need)}
	for r := res(0); r < numRes; r++ {
		lines := 1
		if r == resGPU {
			lines = l.ndev
		}
		g := newRegression(lines + l.nclass*classCols)
		l.reg[r] = g
		l.base0[r] = make([]float64, lines)
		l.prevAt[r], l.prevY[r] = make([]int64, lines), make([]float64, lines)
		l.base[r], l.admit[r] = make([]float64, lines), make([]float64, lines)
		x := make([]float64, g.p)
		for i := range l.base0[r] {
			l.base0[r][i] = math.NaN()
			if i < len(old.base0[r]) && !math.IsNaN(old.base0[r][i]) {
				l.base0[r][i], l.base[r][i], l.admit[r][i] = old.base0[r][i], old.base[r][i], old.admit[r][i]
				x[i] = 1
				for range keepBase {
					g.add(x, []int{i}, (old.base[r][i]-old.base0[r][i])/scale[r])
				}
				x[i] = 0
			}
		}
		l.lastAt[r], l.baseAt[r], l.seenBase[r] = old.lastAt[r], old.baseAt[r], old.seenBase[r]
	}
	l.lower = make([][numRes]float64, l.nclass)
	l.med = make([][numRes]median3, l.nclass)
	l.drops = make([][numRes]drops, l.nclass)
	l.n = make([]int, l.nclass)
	l.aged = make([]int64, l.nclass)
	l.est = make([]estimate, l.nclass)
}

// step adds one reading and returns the estimates (one per class, in the
// controller's order) and the usage of everything else per line.
func (l *learner) step(s *sample) ([]estimate, [numRes][]float64, [numRes]float64) {
	if s.epoch != l.epoch || len(s.gpu) != l.ndev || len(s.need) != l.nclass || l.reg[0] == nil {
		l.reset(s)
	}
	if s.new[resCPU] {
		l.fit(s, resCPU)
	}
	if s.new[resMem] {
		l.fit(s, resMem)
	}
	if s.new[resGPU] && l.ndev > 0 {
		l.fit(s, resGPU)
	}
	return l.est, l.admit, l.sigma
}

// fit adds the reading of resource r (one row per line: per device for GPU
// memory) and refits r.
func (l *learner) fit(s *sample, r res) {
	g := l.reg[r]
	lines := len(l.base0[r])
	if l.lastAt[r] != 0 {
		dt := float64(s.at[r] - l.lastAt[r])
		fd := math.Exp(-dt / float64(forget))
		g.decay(fd)
		for k := range l.drops {
			l.drops[k][r].decay(fd)
		}
		f := math.Exp(-dt / float64(lowerForget))
		for k := range l.lower {
			l.lower[k][r] *= f
		}
	}
	l.lastAt[r] = s.at[r]
	if len(l.x) < g.p {
		l.x = make([]float64, g.p)
	}
	x := l.x[:g.p]
	var capacity float64
	for line := 0; line < lines; line++ {
		read, cp := s.readOf(r, line)
		if math.IsNaN(read) {
			l.prevAt[r][line] = 0
			continue
		}
		capacity = max(capacity, cp)
		first := math.IsNaN(l.base0[r][line])
		if first {
			l.base0[r][line] = read
		}
		clear(x)
		l.nz = append(l.nz[:0], line)
		x[line] = 1
		clear(l.n)
		for _, sl := range s.slots {
			if !s.onLine(r, line, sl.cls, sl.dev) || sl.usedAt >= s.at[r] {
				continue
			}
			l.n[sl.cls]++
			l.aged[sl.cls] = max(l.aged[sl.cls], s.at[r]-sl.usedAt)
			j := lines + sl.cls*classCols + binOf(s.at[r]-sl.usedAt)
			if x[j] == 0 {
				l.nz = append(l.nz, j)
			}
			x[j]++
		}
		for _, rl := range s.released {
			if !s.onLine(r, line, rl.cls, rl.dev) || rl.at > s.at[r] || !s.lingers(rl.cls) {
				continue
			}
			b := lingerBin(s.at[r] - rl.at)
			if b < 0 {
				continue
			}
			j := lines + rl.cls*classCols + nBins + b
			if x[j] == 0 {
				l.nz = append(l.nz, j)
			}
			x[j]++
		}
		y := (read - l.base0[r][line]) / scale[r]
		g.add(x, l.nz, y)
		if first && len(l.nz) == 1 {
			// The host before any slot, as much evidence as a reset keeps
			// of it: whether the first reading came before or after the
			// classes were added does not change what it tells.
			for range keepBase - 1 {
				g.add(x, l.nz, y)
			}
		}
		l.drop(s, r, line, y)
		l.bound(s, r, read-l.base[r][line], cp)
	}
	tol := absTol * capacity / scale[r]
	sigma2, ok := g.solve(1e-3, tol, 4)
	if !ok {
		return
	}
	l.sigma[r] = math.Sqrt(sigma2) * scale[r]
	for k := 0; k < l.nclass; k++ {
		if !s.need[k].has(r) {
			continue
		}
		l.derive(k, r, g, lines+k*classCols, sigma2, tol, s.seen[k], s.life[k])
	}
	l.everythingElse(s, r)
}

// onLine reports whether a slot of class cls on device dev counts on line
// of resource r: its class consumes r and, for GPU memory, the line is its
// device.
func (s *sample) onLine(r res, line, cls, dev int) bool {
	return s.need[cls].has(r) && (r != resGPU || dev == line)
}

// readOf returns line's reading and capacity of resource r (NaN: none).
func (s *sample) readOf(r res, line int) (float64, float64) {
	if r == resGPU {
		return s.gpu[line], s.gpuCap[line]
	}
	return s.read[r], s.cap[r]
}

// lingers reports whether what class cls's released slots still show is
// fitted: not for a class whose tasks are shorter than the first age bin.
// Those seldom overlap a reading, so their releases come at the rate they
// run, and the counts in their release bins hardly change from reading to
// reading: fitted, they are near copies of the usage of everything else and
// blur every other class's bins (workflow tasks beside 196 MiB programs:
// standard errors tenfold, the programs' cost confirmed lives later). What
// they leave behind is read as other usage, as their footprint is.
func (s *sample) lingers(cls int) bool {
	return !(s.life[cls] > 0 && s.life[cls] < int64(ageEdges[0]))
}
