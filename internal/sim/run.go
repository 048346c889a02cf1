package sim

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/testutil"
)

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
	var allTaken func() bool
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
