// Package sim is a simulated worker host for control-quality tests and
// benchmarks: tasks whose footprint grows linearly to its full size over a
// ramp time and holds, pollers that reserve slots like the SDK's, and a
// sampler that scores how well a supplier holds its target. Run it inside a
// testing/synctest bubble so simulated minutes take milliseconds.
package sim

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
)

// Task is one unit of work's footprint.
type Task struct {
	Mem  float64       // fraction of host memory at full footprint
	CPU  float64       // fraction of host CPU while running
	GPU  uint64        // GPU bytes at full footprint
	Ramp time.Duration // time to reach the full footprint
	// Delay is how long the footprint stays at zero before it ramps (a
	// process importing its libraries before it allocates); the task lasts
	// Delay + Ramp + Hold.
	Delay time.Duration
	Hold  time.Duration // time at full footprint before finishing
	// Linger is how long the task's memory (host and GPU) outlives it: a
	// caching allocator, a process that exits after the activity returned.
	Linger time.Duration
	// ReleaseDelay is how long after the task ends (its memory freed, unless
	// it lingers) its slot is released: the activity's completion round trip.
	ReleaseDelay time.Duration
	// Shape, if set, is the fraction of the full footprint shown at each age
	// (0..1), in place of Delay then a linear Ramp; the task still lasts
	// Delay + Ramp + Hold. CPU is used whole while the task runs.
	Shape func(age time.Duration) float64
	// Ahead, with Shape, is the most the footprint will show from age on
	// (nil: its full footprint), for Committed.
	Ahead func(age time.Duration) float64
}

// Life is how long the task runs.
func (t Task) Life() time.Duration { return t.Delay + t.Ramp + t.Hold }

// Device is a simulated GPU.
type Device struct {
	UUID  string
	Total uint64
	Base  uint64
}

// Host models a machine's usage.
type Host struct {
	BaseMem, BaseCPU float64
	MemLimit         uint64
	Cores            float64
	Devices          []Device
	Noise            float64 // ± uniform noise on memory, CPU and GPU readings
	// Drift, if set, is added to BaseMem at each elapsed time since the
	// host's first use: other processes growing or shrinking.
	Drift func(time.Duration) float64
	Seed  uint64
	rng   *rand.Rand
	born  time.Time

	mu      sync.Mutex
	running map[int]running
	nextID  int
}

type running struct {
	t      Task
	start  time.Time
	device string
	end    time.Time // when the task finished; zero while it runs
}

func (h *Host) init() {
	if h.running == nil {
		h.running = make(map[int]running)
		h.rng = rand.New(rand.NewPCG(1, 2+h.Seed))
		h.born = time.Now()
		if h.MemLimit == 0 {
			h.MemLimit = 64 << 30
		}
		if h.Cores == 0 {
			h.Cores = 16
		}
	}
}

func frac(t Task, start, now time.Time) float64 {
	if t.Shape != nil {
		return math.Min(1, math.Max(0, t.Shape(now.Sub(start))))
	}
	age := now.Sub(start) - t.Delay
	if age < 0 {
		return 0
	}
	if t.Ramp <= 0 {
		return 1
	}
	return math.Min(1, float64(age)/float64(t.Ramp))
}

// Start begins a task on a device ("" for none) and returns its id.
func (h *Host) Start(t Task, device string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	h.nextID++
	h.running[h.nextID] = running{t: t, start: time.Now(), device: device}
	return h.nextID
}

// Stop ends a task.
func (h *Host) Stop(id int) {
	h.mu.Lock()
	if r := h.running[id]; r.t.Linger > 0 {
		r.end = time.Now()
		h.running[id] = r
	} else {
		delete(h.running, id)
	}
	h.mu.Unlock()
}

// True returns noiseless memory and CPU fractions, and GPU fractions per device.
func (h *Host) True() (mem, cpu float64, gpus map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	now := time.Now()
	mem, cpu = h.BaseMem, h.BaseCPU
	if h.Drift != nil {
		mem += h.Drift(now.Sub(h.born))
	}
	used := make(map[string]uint64, len(h.Devices))
	for _, d := range h.Devices {
		used[d.UUID] = d.Base
	}
	for id, r := range h.running {
		f := frac(r.t, r.start, now)
		if !r.end.IsZero() {
			if !now.Before(r.end.Add(r.t.Linger)) {
				delete(h.running, id)
				continue
			}
			f = frac(r.t, r.start, r.end) // lingering: no CPU, no more growth
		} else {
			cpu += r.t.CPU
		}
		mem += r.t.Mem * f
		if r.device != "" {
			used[r.device] += uint64(float64(r.t.GPU) * f)
		}
	}
	gpus = make(map[string]float64, len(h.Devices))
	for _, d := range h.Devices {
		gpus[d.UUID] = float64(used[d.UUID]) / float64(d.Total)
	}
	return mem, cpu, gpus
}

// Committed returns, per resource, what is in use plus what running tasks
// have still to grow to their full footprint: what admission must keep under
// target ("memory", "cpu", and each GPU device by UUID).
func (h *Host) Committed() map[string]float64 {
	mem, cpu, gpus := h.True()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]float64{"memory": mem, "cpu": cpu}
	for u, f := range gpus {
		out[u] = f
	}
	now := time.Now()
	total := map[string]float64{}
	for _, d := range h.Devices {
		total[d.UUID] = float64(d.Total)
	}
	for _, r := range h.running {
		if !r.end.IsZero() {
			continue
		}
		ahead := 1.0
		if r.t.Ahead != nil {
			ahead = r.t.Ahead(now.Sub(r.start))
		}
		rest := max(0, ahead-frac(r.t, r.start, now))
		out["memory"] += r.t.Mem * rest
		if r.device != "" {
			out[r.device] += float64(r.t.GPU) * rest / total[r.device]
		}
	}
	return out
}

// Usage is the host's reading, with noise; a resources.Source reads it.
func (h *Host) Usage() resources.Usage {
	mem, cpu, _ := h.True()
	h.mu.Lock()
	if h.Noise > 0 {
		mem += (h.rng.Float64()*2 - 1) * h.Noise
		cpu += (h.rng.Float64()*2 - 1) * h.Noise
	}
	limit, cores := h.MemLimit, h.Cores
	h.mu.Unlock()
	mem = math.Max(0, mem)
	cpu = math.Min(1, math.Max(0, cpu))
	return resources.Usage{CPU: cpu, CPUCores: cores, Memory: mem, MemoryBytes: uint64(mem * float64(limit)), MemoryLimitBytes: limit}
}

// GPUs is the host's GPU reading; a gpu.Source reads it.
func (h *Host) GPUs() []gpu.Device {
	_, _, fr := h.True()
	out := make([]gpu.Device, 0, len(h.Devices))
	h.mu.Lock()
	for i, d := range h.Devices {
		f := fr[d.UUID]
		if h.Noise > 0 {
			f = math.Max(0, f+(h.rng.Float64()*2-1)*h.Noise)
		}
		out = append(out, gpu.Device{UUID: d.UUID, Index: i, Name: "sim", UsedBytes: uint64(f * float64(d.Total)), TotalBytes: d.Total})
	}
	h.mu.Unlock()
	return out
}

// Sources returns fake sources wired to the host.
func (h *Host) Sources() (*testutil.Source, *testutil.GPU) {
	s := testutil.NewSource(resources.Usage{})
	s.SetFunc(h.Usage)
	g := testutil.NewGPU()
	g.SetFunc(h.GPUs)
	return s, g
}

// Scenario is a workload.
type Scenario struct {
	Host     *Host
	Task     func(i int) Task
	Tasks    int                             // backlog size (all available at start unless Arrivals is set)
	Arrivals func(time.Duration) int         // cumulative tasks available by elapsed time; nil: all at 0
	Pollers  int                             // concurrent reservers, like the SDK's pollers
	Duration time.Duration                   // how long to run
	Warmup   time.Duration                   // stats ignore the start
	Device   func(*worker.SlotPermit) string // which GPU a task runs on; nil: least used
	Resource string                          // "memory", "cpu" or "gpu": what stats score
	Target   float64
	// Targets, if set, are the targets by resource ("memory", "cpu", "gpu")
	// that Result.Excess and Result.BadStarts judge.
	Targets map[string]float64
}

// Result scores a run.
type Result struct {
	Peak, Mean          float64 // of the scored resource (max over devices for gpu)
	AboveTarget, Above1 float64 // fraction of samples
	Completed           int
	Outstanding         int64 // slots issued and never released: must be 0
	PerDevicePeak       map[string]float64
	// With Scenario.Targets: the largest peak − target over the resources
	// (each GPU device judged against "gpu"), the share of samples where
	// any resource was above 1, and the tasks started while what was in use
	// plus what running tasks had still to grow plus their own footprint
	// was above target + 0.02 (see Host.Committed), of Started.
	Excess            float64
	AnyAbove1         float64
	BadStarts, Starts int
	PerLoad           []int // tasks completed per load
	PerLoadWork       []float64
}

// Load is one class of work on a host: its supplier, tasks and pollers.
type Load struct {
	Sup      worker.SlotSupplier
	Task     func(i int) Task
	Tasks    int
	Arrivals func(time.Duration) int
	Pollers  int
	Device   func(*worker.SlotPermit) string
	// Work weighs a completed task (its resource-seconds, say); nil: 1.
	Work func(Task) float64
}

// Run drives sup through the scenario. Call it inside a synctest bubble.
func Run(sup worker.SlotSupplier, sc Scenario) Result {
	return RunMany(sc, []Load{{Sup: sup, Task: sc.Task, Tasks: sc.Tasks, Arrivals: sc.Arrivals, Pollers: sc.Pollers, Device: sc.Device}})
}

// RunMany drives several loads on one host at once (sc's Task, Tasks,
// Arrivals, Pollers and Device are ignored). Call it inside a synctest
// bubble.
func RunMany(sc Scenario, loads []Load) Result {
	h := sc.Host
	h.mu.Lock()
	h.init()
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), sc.Duration)
	defer cancel()
	start := time.Now()
	var issued atomic.Int64
	var wg, tasks sync.WaitGroup
	var mu sync.Mutex
	var res Result
	res.PerDevicePeak = map[string]float64{}
	res.PerLoad = make([]int, len(loads))
	res.PerLoadWork = make([]float64, len(loads))
	var allTaken, allAvail func() bool
	takens := make([]*atomic.Int64, len(loads))
	for li, ld := range loads {
		li, ld := li, ld
		var taken atomic.Int64
		takens[li] = &taken
		available := func() int64 {
			if ld.Arrivals == nil {
				return int64(ld.Tasks)
			}
			return int64(min(ld.Tasks, ld.Arrivals(time.Since(start))))
		}
		info := &testutil.ReservationInfo{Queue: "sim", Kind: enumspb.TASK_QUEUE_KIND_NORMAL, Issued: &issued}
		for p := 0; p < ld.Pollers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					permit, err := ld.Sup.ReserveSlot(ctx, info)
					if err != nil {
						return
					}
					issued.Add(1)
					i := taken.Add(1) - 1
					if i >= available() {
						taken.Add(-1)
						// Empty long poll: hold the permit, then release it unused.
						select {
						case <-ctx.Done():
						case <-time.After(200 * time.Millisecond):
						}
						issued.Add(-1)
						ld.Sup.ReleaseSlot(testutil.ReleaseInfo{P: permit})
						continue
					}
					ld.Sup.MarkSlotUsed(testutil.MarkUsedInfo{P: permit})
					t := ld.Task(int(i))
					dev := ""
					if t.GPU > 0 {
						if ld.Device != nil {
							dev = ld.Device(permit)
						}
						if dev == "" {
							dev = leastUsed(h)
						}
					}
					if sc.Targets != nil {
						bad := false
						com := h.Committed()
						if t.Mem > 0 && com["memory"]+t.Mem > sc.Targets["memory"]+0.02 {
							bad = true
						}
						if dev != "" {
							var total uint64
							for _, d := range h.Devices {
								if d.UUID == dev {
									total = d.Total
								}
							}
							if com[dev]+float64(t.GPU)/float64(total) > sc.Targets["gpu"]+0.02 {
								bad = true
							}
						}
						mu.Lock()
						res.Starts++
						if bad {
							res.BadStarts++
						}
						mu.Unlock()
					}
					id := h.Start(t, dev)
					tasks.Add(1)
					go func() {
						defer tasks.Done()
						time.Sleep(t.Life())
						h.Stop(id)
						if t.ReleaseDelay > 0 {
							time.Sleep(t.ReleaseDelay)
						}
						w := 1.0
						if ld.Work != nil {
							w = ld.Work(t)
						}
						mu.Lock()
						res.Completed++
						res.PerLoad[li]++
						res.PerLoadWork[li] += w
						mu.Unlock()
						issued.Add(-1)
						ld.Sup.ReleaseSlot(testutil.ReleaseInfo{P: permit})
					}()
				}
			}()
		}
	}
	allTaken = func() bool {
		for li, ld := range loads {
			if ld.Arrivals != nil || takens[li].Load() < int64(ld.Tasks) {
				return false
			}
		}
		return true
	}
	_ = allAvail
	var n, above, above1, anyAbove1 int
	var sum float64
	res.Excess = math.Inf(-1)
	tick := time.NewTicker(50 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			mem, cpu, gpus := h.True()
			v := mem
			switch sc.Resource {
			case "cpu":
				v = cpu
			case "gpu":
				v = 0
				for _, f := range gpus {
					v = math.Max(v, f)
				}
			}
			for u, f := range gpus {
				res.PerDevicePeak[u] = math.Max(res.PerDevicePeak[u], f)
			}
			res.Peak = math.Max(res.Peak, v)
			if sc.Targets != nil {
				worst, over1 := math.Inf(-1), false
				for r, tg := range sc.Targets {
					switch r {
					case "memory":
						worst, over1 = math.Max(worst, mem-tg), over1 || mem > 1
					case "cpu":
						worst, over1 = math.Max(worst, cpu-tg), over1 || cpu > 1
					case "gpu":
						for _, f := range gpus {
							worst, over1 = math.Max(worst, f-tg), over1 || f > 1
						}
					}
				}
				res.Excess = math.Max(res.Excess, worst)
				if over1 {
					anyAbove1++
				}
			}
			if time.Since(start) < sc.Warmup || allTaken() {
				continue
			}
			n++
			sum += v
			if v > sc.Target+1e-9 {
				above++
			}
			if v > 1 {
				above1++
			}
		}
	}
	tick.Stop()
	wg.Wait()
	tasks.Wait()
	if n > 0 {
		res.Mean = sum / float64(n)
		res.AboveTarget = float64(above) / float64(n)
		res.Above1 = float64(above1) / float64(n)
	}
	if samples := int(sc.Duration / (50 * time.Millisecond)); samples > 0 {
		res.AnyAbove1 = float64(anyAbove1) / float64(samples)
	}
	res.Outstanding = issued.Load()
	return res
}

func leastUsed(h *Host) string {
	_, _, fr := h.True()
	best, bv := "", 2.0
	for _, d := range h.Devices {
		if fr[d.UUID] < bv {
			best, bv = d.UUID, fr[d.UUID]
		}
	}
	return best
}

// SetBaseMem changes what the host uses besides its tasks (another process
// growing or shrinking) while tasks run.
func (h *Host) SetBaseMem(v float64) {
	h.mu.Lock()
	h.BaseMem = v
	h.mu.Unlock()
}
