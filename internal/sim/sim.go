// Package sim is a simulated worker host for control-quality tests and
// benchmarks: tasks whose footprint grows linearly to its full size over a
// ramp time and holds, pollers that reserve slots like the SDK's, and a
// sampler that scores how well a supplier holds its target. Run it inside a
// testing/synctest bubble so simulated minutes take milliseconds.
package sim

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

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
