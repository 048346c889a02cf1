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
}

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
	Noise            float64 // ± uniform noise on memory and CPU readings
	rng              *rand.Rand

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
		h.rng = rand.New(rand.NewPCG(1, 2))
		if h.MemLimit == 0 {
			h.MemLimit = 64 << 30
		}
		if h.Cores == 0 {
			h.Cores = 16
		}
	}
}

func frac(t Task, start, now time.Time) float64 {
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
	for i, d := range h.Devices {
		out = append(out, gpu.Device{UUID: d.UUID, Index: i, Name: "sim", UsedBytes: uint64(fr[d.UUID] * float64(d.Total)), TotalBytes: d.Total})
	}
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
}

// Result scores a run.
type Result struct {
	Peak, Mean          float64 // of the scored resource (max over devices for gpu)
	AboveTarget, Above1 float64 // fraction of samples
	Completed           int
	Outstanding         int64 // slots issued and never released: must be 0
	PerDevicePeak       map[string]float64
}

// Run drives sup through the scenario. Call it inside a synctest bubble.
func Run(sup worker.SlotSupplier, sc Scenario) Result {
	h := sc.Host
	ctx, cancel := context.WithTimeout(context.Background(), sc.Duration)
	defer cancel()
	start := time.Now()
	var issued atomic.Int64
	var taken, completed atomic.Int64
	available := func() int64 {
		if sc.Arrivals == nil {
			return int64(sc.Tasks)
		}
		return int64(min(sc.Tasks, sc.Arrivals(time.Since(start))))
	}
	info := &testutil.ReservationInfo{Queue: "sim", Kind: enumspb.TASK_QUEUE_KIND_NORMAL, Issued: &issued}
	var wg sync.WaitGroup
	var tasks sync.WaitGroup
	for p := 0; p < sc.Pollers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				permit, err := sup.ReserveSlot(ctx, info)
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
					sup.ReleaseSlot(testutil.ReleaseInfo{P: permit})
					continue
				}
				sup.MarkSlotUsed(testutil.MarkUsedInfo{P: permit})
				t := sc.Task(int(i))
				dev := ""
				if t.GPU > 0 {
					if sc.Device != nil {
						dev = sc.Device(permit)
					}
					if dev == "" {
						dev = leastUsed(h)
					}
				}
				id := h.Start(t, dev)
				tasks.Add(1)
				go func() {
					defer tasks.Done()
					time.Sleep(t.Delay + t.Ramp + t.Hold)
					h.Stop(id)
					if t.ReleaseDelay > 0 {
						time.Sleep(t.ReleaseDelay)
					}
					completed.Add(1)
					issued.Add(-1)
					sup.ReleaseSlot(testutil.ReleaseInfo{P: permit})
				}()
			}
		}()
	}
	var res Result
	res.PerDevicePeak = map[string]float64{}
	var n, above, above1 int
	var sum float64
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
				for u, f := range gpus {
					v = math.Max(v, f)
					res.PerDevicePeak[u] = math.Max(res.PerDevicePeak[u], f)
				}
			}
			res.Peak = math.Max(res.Peak, v)
			if time.Since(start) < sc.Warmup || taken.Load() >= available() && sc.Arrivals == nil && taken.Load() >= int64(sc.Tasks) {
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
	res.Completed = int(completed.Load())
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
