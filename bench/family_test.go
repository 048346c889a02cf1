package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// The generated workload family: workloads drawn from wide ranges that no
// test or mechanism here was written for. Each runs headroom, the SDK's
// resource-based supplier and the best fixed sizes found for it by search;
// the table reports distributions per slice. See bench/README.md.

// wclass is one class of work in a workload.
type wclass struct {
	kind    string  // "memory", "cpu" or "gpu": the resource it is sized by
	size    float64 // mean full footprint: fraction of host memory, cores, or fraction of a GPU
	jitter  float64 // each task's size is size × U[1−jitter, 1+jitter]
	shape   string
	delay   time.Duration
	ramp    time.Duration
	hold    time.Duration
	linger  time.Duration
	prior   string // exact, half, double, zero
	pollers int
	bursty  bool
	// late: each task's footprint starts up to this much later than its
	// class's shape says (U[0, late]: a program slow to start on a loaded
	// host); release: each task's slot is released up to this much after
	// its memory is freed (the completion's round trip). Per task, so the
	// mean profile by age is not every task's.
	late, release time.Duration
}

type workload struct {
	seed     uint64
	classes  []wclass
	devices  int
	noise    float64
	drift    float64 // other memory usage changes by this much over the run
	duration time.Duration
	real     bool // run with the real clock, not in a synctest bubble
}

var shapes = []string{"linear", "step", "s-curve", "sawtooth", "linger", "freed-early"}
var priors = []string{"exact", "half", "double", "zero"}

// generate draws workload i of the family with seed.
func generate(seed uint64, i int) workload {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	u := func(a, b float64) float64 { return a + (b-a)*rng.Float64() }
	dur := func(a, b time.Duration) time.Duration {
		return time.Duration(u(float64(a), float64(b))).Round(10 * time.Millisecond)
	}
	w := workload{seed: uint64(i)}
	n := 1
	switch x := rng.Float64(); {
	case x < 0.25:
		n = 2
	case x < 0.4:
		n = 3
	}
	if rng.Float64() < 0.35 {
		w.devices = 1 + rng.IntN(8)
	}
	if rng.Float64() < 0.5 {
		w.noise = u(0, 0.04)
	}
	if rng.Float64() < 0.3 {
		w.drift = u(-0.15, 0.15)
	}
	var life time.Duration
	for k := 0; k < n; k++ {
		c := wclass{shape: shapes[rng.IntN(len(shapes))], prior: priors[rng.IntN(len(priors))], pollers: 1 + rng.IntN(16), bursty: rng.Float64() < 0.2}
		switch {
		case w.devices > 0 && (k == 0 || rng.Float64() < 0.5):
			c.kind, c.size = "gpu", u(0.02, 0.30)
		case rng.Float64() < 0.3:
			c.kind, c.size = "cpu", u(0.05, 2)
		default:
			c.kind, c.size = "memory", u(0.005, 0.15)
		}
		if rng.Float64() < 0.4 {
			c.jitter = 0.5
		}
		c.hold = dur(200*time.Millisecond, 20*time.Second)
		c.ramp = dur(0, 12*time.Second)
		switch c.shape {
		case "step":
			c.delay, c.ramp = c.ramp, 0
		case "linger":
			c.linger = dur(0, 3*time.Second)
		}
		if c.kind == "cpu" {
			c.shape, c.delay, c.ramp, c.linger = "at once", 0, 0, 0 // CPU shows at once
		}
		// Drawn apart, so that the draws above are the family's before
		// these were added.
		trng := rand.New(rand.NewPCG(seed, uint64(i)<<8|uint64(k)|1<<40))
		if c.kind != "cpu" && trng.Float64() < 0.3 {
			c.late = time.Duration(trng.Float64() * float64(5*time.Second)).Round(10 * time.Millisecond)
		}
		if trng.Float64() < 0.3 {
			c.release = time.Duration(trng.Float64() * float64(1500*time.Millisecond)).Round(10 * time.Millisecond)
		}
		life = max(life, c.delay+c.late+c.ramp+c.hold)
		w.classes = append(w.classes, c)
	}
	w.duration = min(max(60*time.Second, 6*life), 180*time.Second)
	return w
}

const (
	famCores  = 16
	famMem    = 64 << 30
	famGPU    = 80 << 30
	famBase   = 0.2
	targetMem = 0.8
	targetCPU = 0.8
	targetGPU = 0.85
)

func (w workload) targets() map[string]float64 {
	t := map[string]float64{"memory": targetMem, "cpu": targetCPU}
	if w.devices > 0 {
		t["gpu"] = targetGPU
	}
	return t
}

// task builds task i of class c.
func (c wclass) task(rng *rand.Rand) sim.Task {
	f := 1 + c.jitter*(2*rng.Float64()-1)
	t := sim.Task{Delay: c.delay, Ramp: c.ramp, Hold: c.hold, Linger: c.linger}
	switch c.kind {
	case "memory":
		t.Mem = c.size * f
	case "cpu":
		t.CPU, t.Mem = c.size*f/famCores, 0.002
	case "gpu":
		t.GPU, t.Mem = uint64(c.size*f*famGPU), 0.005
	}
	life := t.Life()
	ramp := c.ramp
	switch c.shape {
	case "s-curve":
		t.Shape = func(a time.Duration) float64 {
			if ramp <= 0 {
				return 1
			}
			x := math.Min(1, float64(a)/float64(ramp))
			return x * x * (3 - 2*x)
		}
	case "sawtooth": // allocate, free half, allocate again, with a 2 s period once grown
		t.Shape = func(a time.Duration) float64 {
			if a < ramp {
				return float64(a) / float64(ramp)
			}
			p := math.Mod(float64(a-ramp), float64(2*time.Second)) / float64(2*time.Second)
			return 1 - 0.5*p
		}
	case "freed-early": // frees its memory for the last 30 % of its hold
		free := life - c.hold*3/10
		t.Shape = func(a time.Duration) float64 {
			if a >= free {
				return 0
			}
			if ramp <= 0 {
				return 1
			}
			return math.Min(1, float64(a)/float64(ramp))
		}
		t.Ahead = func(a time.Duration) float64 {
			if a >= free {
				return 0
			}
			return 1
		}
	}
	if c.late > 0 {
		d := time.Duration(rng.Float64() * float64(c.late))
		t.Delay += d
		if shape, ahead := t.Shape, t.Ahead; shape != nil {
			t.Shape = func(a time.Duration) float64 { return shape(a - d) }
			if ahead != nil {
				t.Ahead = func(a time.Duration) float64 { return ahead(a - d) }
			}
		}
	}
	if c.release > 0 {
		t.ReleaseDelay = time.Duration(rng.Float64() * float64(c.release))
	}
	return t
}

// cost is class c's declared prior.
func (c wclass) cost() tuner.Cost {
	m := map[string]float64{"exact": 1, "half": 0.5, "double": 2, "zero": 0}[c.prior]
	switch c.kind {
	case "memory":
		return tuner.Cost{MemoryBytes: uint64(m * c.size * famMem)}
	case "cpu":
		return tuner.Cost{CPUCores: m * c.size, MemoryBytes: uint64(m * 0.002 * famMem)}
	}
	return tuner.Cost{GPUMemoryBytes: uint64(m * c.size * famGPU), MemoryBytes: uint64(m * 0.005 * famMem)}
}

func (c wclass) resources() tuner.Resource {
	switch c.kind {
	case "cpu":
		return tuner.CPU | tuner.Memory
	case "gpu":
		return tuner.GPUMemory | tuner.Memory
	}
	return tuner.Memory
}

// work is what a task is worth: its full footprint times how long it runs,
// in its class's resource (so that classes of different sizes add up).
func (c wclass) work(t sim.Task) float64 {
	var v float64
	switch c.kind {
	case "memory":
		v = t.Mem
	case "cpu":
		v = t.CPU
	default:
		v = float64(t.GPU) / famGPU
	}
	return v * t.Life().Seconds()
}

func (w workload) host() *sim.Host {
	h := &sim.Host{BaseMem: famBase, BaseCPU: 0.05, MemLimit: famMem, Cores: famCores, Noise: w.noise, Seed: w.seed}
	for d := 0; d < w.devices; d++ {
		h.Devices = append(h.Devices, sim.Device{UUID: fmt.Sprintf("GPU-%d", d), Total: famGPU, Base: famGPU / 50})
	}
	if w.drift != 0 {
		drift, d := w.drift, w.duration
		h.Drift = func(t time.Duration) float64 { return drift * math.Min(1, float64(t)/float64(d)) }
	}
	return h
}

func (w workload) scenario(h *sim.Host) sim.Scenario {
	return sim.Scenario{Host: h, Duration: w.duration, Targets: w.targets(), Resource: "memory", Target: targetMem}
}

func (w workload) loads(sups []worker.SlotSupplier, device func(int, *worker.SlotPermit) string) []sim.Load {
	var out []sim.Load
	for k, c := range w.classes {
		rng := rand.New(rand.NewPCG(w.seed, uint64(k)))
		var mu sync.Mutex
		ld := sim.Load{Sup: sups[k], Pollers: c.pollers, Tasks: 1 << 30, Work: c.work,
			Task: func(int) sim.Task { mu.Lock(); defer mu.Unlock(); return c.task(rng) }}
		if c.bursty {
			every := 4 * (c.delay + c.ramp + c.hold)
			ld.Arrivals = func(d time.Duration) int { return 30 * (1 + int(d/every)) }
		}
		if device != nil {
			ld.Device = func(p *worker.SlotPermit) string { return device(k, p) }
		}
		out = append(out, ld)
	}
	return out
}

type outcome struct {
	res  sim.Result
	work float64
}

func total(r sim.Result) float64 {
	var s float64
	for _, v := range r.PerLoadWork {
		s += v
	}
	return s
}

// run drives workload w inside its own synctest bubble (with the real
// clock if w.real, in a subtest) with the suppliers build makes on a fresh
// host (and the device each permit was charged to, if device is set), and
// scores the work done.
func (w workload) run(t *testing.T, build func(t *testing.T, h *sim.Host) ([]worker.SlotSupplier, func(int, *worker.SlotPermit) string)) outcome {
	var out outcome
	body := func(t *testing.T) {
		h := w.host()
		sups, device := build(t, h)
		out.res = sim.RunMany(w.scenario(h), w.loads(sups, device))
	}
	if w.real {
		t.Run(fmt.Sprintf("workload %d real clock", w.seed), body)
	} else {
		synctest.Test(t, body)
	}
	out.work = total(out.res)
	return out
}

func (w workload) headroom(t *testing.T) outcome {
	return w.run(t, func(t *testing.T, h *sim.Host) ([]worker.SlotSupplier, func(int, *worker.SlotPermit) string) {
		src, g := h.Sources()
		opts := tuner.ControllerOptions{Source: src, SampleInterval: 250 * time.Millisecond, TargetMemory: targetMem, TargetCPU: targetCPU, Logger: testutil.NopLogger}
		if w.devices > 0 {
			opts.GPU, opts.TargetGPUMemory = g, targetGPU
		}
		c, err := tuner.NewController(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.WaitReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		var sups []worker.SlotSupplier
		var ts []*tuner.SlotSupplier
		for k, cl := range w.classes {
			s, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: strconv.Itoa(k), MinSlots: 1, MaxSlots: 1000,
				RampThrottle: 50 * time.Millisecond, Resources: cl.resources(), Cost: cl.cost()})
			if err != nil {
				t.Fatal(err)
			}
			sups, ts = append(sups, s), append(ts, s)
		}
		if famDebug {
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Second):
					}
					for k, s := range ts {
						t.Logf("t %v class %d: %+v", time.Now().Format("04:05"), k, s.Stats())
					}
				}
			}()
			t.Cleanup(func() { close(stop) })
		}
		t.Cleanup(func() { // after the run, before the controller closes
			for k, s := range ts {
				st := s.Stats()
				if famDebug {
					t.Logf("class %d: %+v", k, st)
				}
				if st.Issued != 0 {
					t.Errorf("workload %d class %d: %d slots left reserved", w.seed, k, st.Issued)
				}
			}
		})
		return sups, func(k int, p *worker.SlotPermit) string { d, _ := ts[k].DeviceOf(p); return d }
	})
}

func (w workload) sdk(t *testing.T) outcome {
	return w.run(t, func(t *testing.T, h *sim.Host) ([]worker.SlotSupplier, func(int, *worker.SlotPermit) string) {
		src, _ := h.Sources()
		m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Interval: 250 * time.Millisecond, Logger: testutil.NopLogger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if err := m.WaitReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		o := worker.DefaultResourceControllerOptions()
		o.MemTargetPercent, o.CpuTargetPercent, o.InfoSupplier = targetMem, targetCPU, resources.NewSysInfoProvider(m)
		rc := worker.NewResourceController(o)
		var sups []worker.SlotSupplier
		for range w.classes {
			s, err := worker.NewResourceBasedSlotSupplier(rc, worker.DefaultActivityResourceBasedSlotSupplierOptions())
			if err != nil {
				t.Fatal(err)
			}
			sups = append(sups, s)
		}
		return sups, nil
	})
}

// fixed runs fixed sizes: class k gets max(1, round(scale × share_k)),
// share_k being an even split of its resource's room by its mean size.
func (w workload) fixed(t *testing.T, scale float64) outcome {
	return w.run(t, func(t *testing.T, h *sim.Host) ([]worker.SlotSupplier, func(int, *worker.SlotPermit) string) {
		var sups []worker.SlotSupplier
		for _, c := range w.classes {
			room := targetMem - famBase
			switch c.kind {
			case "cpu":
				room = (targetCPU - 0.05) * famCores
			case "gpu":
				room = float64(w.devices) * (targetGPU - 0.02)
			}
			n := max(1, int(math.Round(scale*room/float64(len(w.classes))/c.size)))
			s, err := worker.NewFixedSizeSlotSupplier(n)
			if err != nil {
				t.Fatal(err)
			}
			sups = append(sups, s)
		}
		return sups, nil
	})
}

// bestFixed searches the scale whose sizes do the most work with every
// resource's peak within target + 0.02: what an operator would find by
// trial and error for this one workload.
func (w workload) bestFixed(t *testing.T) outcome {
	ok := func(o outcome) bool { return o.res.Excess <= 0.02 }
	lo, hi := 0.0, 4.0
	best := w.fixed(t, 0) // sizes of 1
	for range 7 {
		mid := (lo + hi) / 2
		o := w.fixed(t, mid)
		if ok(o) {
			lo = mid
			if o.work > best.work || !ok(best) {
				best = o
			}
		} else {
			hi = mid
		}
	}
	return best
}

type row struct {
	w             workload
	ours, sdk, fx outcome
}

// baselines are the SDK tuner's and the best fixed sizes' results per
// workload, which do not depend on headroom: HEADROOM_FAMILY_CACHE=file keeps
// them between runs, so that a change to the tuner is measured in a fifth of
// the time. Delete the file when the generator or the simulator changes.
type baselines struct {
	path string
	mu   sync.Mutex
	m    map[uint64][2]sim.Result
}

func loadBaselines(path string) *baselines {
	b := &baselines{path: path, m: map[uint64][2]sim.Result{}}
	if data, err := os.ReadFile(path); path != "" && err == nil {
		_ = json.Unmarshal(data, &b.m) // a bad file is recomputed
	}
	return b
}

func (b *baselines) get(w workload) (sdk, fx outcome, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.m[w.seed]
	return outcome{res: r[0], work: total(r[0])}, outcome{res: r[1], work: total(r[1])}, ok && b.path != ""
}

func (b *baselines) put(w workload, sdk, fx outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[w.seed] = [2]sim.Result{sdk.res, fx.res}
}

func (b *baselines) save(t *testing.T) {
	if b.path == "" {
		return
	}
	data, err := json.Marshal(b.m)
	if err == nil {
		err = os.WriteFile(b.path, data, 0o644)
	}
	if err != nil {
		t.Logf("HEADROOM_FAMILY_CACHE: %v", err)
	}
}

// runFamily runs n workloads of seed on all CPUs.
func runFamily(t *testing.T, seed uint64, n int) []row {
	rows := make([]row, n)
	base := loadBaselines(os.Getenv("HEADROOM_FAMILY_CACHE"))
	defer base.save(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			w := generate(seed, i)
			sdk, fx, ok := base.get(w)
			if !ok {
				sdk, fx = w.sdk(t), w.bestFixed(t)
				base.put(w, sdk, fx)
			}
			rows[i] = row{w: w, ours: w.headroom(t), sdk: sdk, fx: fx}
		}()
	}
	wg.Wait()
	return rows
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s)-1)+0.5))]
}

// slices of the family, by name, each a predicate on a workload.
func slicesOf(w workload) []string {
	out := []string{"all"}
	p := map[string]bool{}
	for _, c := range w.classes {
		p["prior "+c.prior] = true
		p["shape "+c.shape] = true
	}
	for k := range p {
		out = append(out, k)
	}
	switch {
	case w.devices == 0:
		out = append(out, "no GPU")
	case w.devices == 1:
		out = append(out, "1 GPU")
	default:
		out = append(out, "2–8 GPUs")
	}
	out = append(out, fmt.Sprintf("%d classes", len(w.classes)))
	if w.noise > 0 {
		out = append(out, "noise 0–4 pts")
	}
	if w.drift != 0 {
		out = append(out, "other usage drifts")
	}
	for _, c := range w.classes {
		if c.late > 0 || c.release > 0 {
			out = append(out, "late starts or releases")
			break
		}
	}
	return out
}

// table prints the family's distributions.
func table(rows []row) string {
	type acc struct {
		n, bad                                              int
		excess, sdkExcess, ratio, sdkRatio, over1, sdkOver1 []float64
	}
	by := map[string]*acc{}
	var order []string
	for _, r := range rows {
		for _, s := range slicesOf(r.w) {
			a := by[s]
			if a == nil {
				a = &acc{}
				by[s] = a
				order = append(order, s)
			}
			a.n++
			a.excess = append(a.excess, r.ours.res.Excess)
			a.sdkExcess = append(a.sdkExcess, r.sdk.res.Excess)
			a.over1 = append(a.over1, r.ours.res.AnyAbove1)
			a.sdkOver1 = append(a.sdkOver1, r.sdk.res.AnyAbove1)
			a.ratio = append(a.ratio, r.ours.work/math.Max(r.fx.work, 1e-9))
			a.sdkRatio = append(a.sdkRatio, r.sdk.work/math.Max(r.fx.work, 1e-9))
			if r.ours.res.BadStarts > 0 {
				a.bad++
			}
		}
	}
	slices.Sort(order)
	var b strings.Builder
	fmt.Fprintln(&b, "| slice | n | headroom peak − target p50 / p99 / max | share > target + 0.02 | time > 100 % (mean) | work ÷ best fixed p10 / p50 | SDK peak − target p50 / max | SDK time > 100 % | SDK work ÷ best fixed p50 | workloads with a bad admission |")
	fmt.Fprintln(&b, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	mean := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	for _, s := range order {
		a := by[s]
		over := 0
		for _, e := range a.excess {
			if e > 0.02 {
				over++
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %+.3f / %+.3f / %+.3f | %.1f %% | %.2f %% | %.2f / %.2f | %+.3f / %+.3f | %.1f %% | %.2f | %d |\n", s, a.n,
			quantile(a.excess, 0.5), quantile(a.excess, 0.99), slices.Max(a.excess), 100*float64(over)/float64(a.n), 100*mean(a.over1),
			quantile(a.ratio, 0.1), quantile(a.ratio, 0.5), quantile(a.sdkExcess, 0.5), slices.Max(a.sdkExcess), 100*mean(a.sdkOver1),
			quantile(a.sdkRatio, 0.5), a.bad)
	}
	return b.String()
}

// TestFamily runs a bounded slice of the family (HEADROOM_FAMILY=N for N
// workloads; bench/README.md's table uses 300) and prints its table. It
// holds what headroom promises today on every workload: nothing left
// reserved, and, over the slice, peaks above target + 0.02 in fewer
// workloads than the SDK's resource-based supplier and a median peak under
// target. HEADROOM_FAMILY_STRICT=1 also holds each workload where other
// usage does not grow to issue 12's bar (within target + 0.05, never above
// 100 %), which the tuner does not meet yet: see bench/README.md.
func TestFamily(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates hours of host time")
	}
	n := 24
	if v, err := strconv.Atoi(os.Getenv("HEADROOM_FAMILY")); err == nil && v > 0 {
		n = v
	}
	if i, err := strconv.Atoi(os.Getenv("HEADROOM_FAMILY_ONE")); err == nil { // one workload, with FAMDEBUG=1 for its stats every 5 s
		w := generate(1, i)
		o, f := w.headroom(t), w.bestFixed(t)
		t.Logf("workload %d: excess %+.3f work %.3g fixed %.3g %v", i, o.res.Excess, o.work, f.work, describe(w))
		return
	}
	strict := os.Getenv("HEADROOM_FAMILY_STRICT") != ""
	rows := runFamily(t, 1, n)
	var ours, sdk int
	var excess []float64
	for _, r := range rows {
		o := r.ours.res
		t.Logf("workload %3d: excess %+.3f above1 %.3f bad %d/%d work %.3g fixed %.3g (%.2f) sdk %+.3f %v", r.w.seed, o.Excess, o.AnyAbove1, o.BadStarts, o.Starts,
			r.ours.work, r.fx.work, r.ours.work/math.Max(r.fx.work, 1e-9), r.sdk.res.Excess, describe(r.w))
		excess = append(excess, o.Excess)
		if o.Excess > 0.02 {
			ours++
		}
		if r.sdk.res.Excess > 0.02 {
			sdk++
		}
		if !strict || r.w.drift > 0 {
			continue
		}
		if o.Excess > 0.05 {
			t.Errorf("workload %d: peak %.3f above target (%v)", r.w.seed, o.Excess, describe(r.w))
		}
		if o.AnyAbove1 > 0 {
			t.Errorf("workload %d: %.1f %% of the time above 100 %% (%v)", r.w.seed, 100*o.AnyAbove1, describe(r.w))
		}
	}
	if ours >= sdk {
		t.Errorf("headroom peaked above target + 0.02 in %d of %d workloads, the SDK's tuner in %d", ours, n, sdk)
	}
	if m := quantile(excess, 0.5); m > 0 {
		t.Errorf("headroom's median peak is %+.3f above target", m)
	}
	t.Logf("\n%s", table(rows))
}

func describe(w workload) string {
	var s []string
	for _, c := range w.classes {
		s = append(s, fmt.Sprintf("%s %.3g±%.0f%% %s d%v r%v h%v l%v late%v rel%v prior %s ×%d pollers%s", c.kind, c.size, 100*c.jitter, c.shape, c.delay, c.ramp, c.hold, c.linger, c.late, c.release, c.prior, c.pollers,
			map[bool]string{true: " bursty"}[c.bursty]))
	}
	return fmt.Sprintf("gpus %d noise %.3f drift %+.2f run %v: %s", w.devices, w.noise, w.drift, w.duration, strings.Join(s, "; "))
}

var famDebug = os.Getenv("FAMDEBUG") != ""

// TestFamilyRealClock runs a slice of the family with the real clock: real
// goroutines, the real Monitor's ticker, time.Sleep for the tasks' lives and
// the scheduling of a 2-core machine, where synctest runs each instant to
// completion before time moves. HEADROOM_FAMILY_REAL=N runs the first N
// workloads of 60 s (N/2 minutes) beside their synctest runs; bench/README.md
// has the numbers.
func TestFamilyRealClock(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("HEADROOM_FAMILY_REAL"))
	if err != nil || n <= 0 {
		t.Skip("HEADROOM_FAMILY_REAL=N runs N workloads of 60 s with the real clock")
	}
	var ws []workload
	for i := 0; len(ws) < n && i < 1000; i++ {
		if w := generate(1, i); w.duration == 60*time.Second {
			ws = append(ws, w)
		}
	}
	type pair struct{ sync, real, fx outcome }
	rows := make([]pair, len(ws))
	base := loadBaselines(os.Getenv("HEADROOM_FAMILY_CACHE"))
	defer base.save(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, fx, ok := base.get(w)
			if !ok {
				sdk := w.sdk(t)
				fx = w.bestFixed(t)
				base.put(w, sdk, fx)
			}
			rw := w
			rw.real = true
			rows[i] = pair{sync: w.headroom(t), real: rw.headroom(t), fx: fx}
		}()
	}
	wg.Wait()
	var ex [2][]float64
	var ratio [2][]float64
	over := [2]int{}
	for i, r := range rows {
		for k, o := range []outcome{r.sync, r.real} {
			ex[k] = append(ex[k], o.res.Excess)
			ratio[k] = append(ratio[k], o.work/math.Max(r.fx.work, 1e-9))
			if o.res.Excess > 0.02 {
				over[k]++
			}
		}
		t.Logf("workload %3d: synctest excess %+.3f work %.3g, real clock excess %+.3f work %.3g, fixed %.3g: %v",
			ws[i].seed, r.sync.res.Excess, r.sync.work, r.real.res.Excess, r.real.work, r.fx.work, describe(ws[i]))
	}
	for k, name := range []string{"synctest", "real clock"} {
		t.Logf("%s: %d workloads; peak − target p50 %+.3f max %+.3f; above target + 0.02: %d; work ÷ best fixed p10 %.2f p50 %.2f",
			name, len(rows), quantile(ex[k], 0.5), slices.Max(ex[k]), over[k], quantile(ratio[k], 0.1), quantile(ratio[k], 0.5))
	}
}
