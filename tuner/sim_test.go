package tuner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/tuner"
)

const GiB = 1 << 30

// slowAlloc is the workload the SDK's reactive tuner overshoots on: each task
// reaches 3 % of memory over 2 s and holds it 3 s; the backlog exceeds what
// fits under the target.
func slowAlloc(pollers int) sim.Scenario {
	return sim.Scenario{
		Host:     &sim.Host{BaseMem: 0.2, BaseCPU: 0.05, MemLimit: 64 * GiB},
		Task:     func(int) sim.Task { return sim.Task{Mem: 0.03, Ramp: 2 * time.Second, Hold: 3 * time.Second} },
		Tasks:    100000,
		Pollers:  pollers,
		Duration: 60 * time.Second,
		Warmup:   10 * time.Second,
		Resource: "memory",
		Target:   0.8,
	}
}

// slowAllocSupplier is an activity supplier priced for slowAlloc's tasks (3 %
// of 64 GiB, footprint settled after 2 s) with the SDK's 50 ms ramp.
func slowAllocSupplier(t *testing.T, c *tuner.Controller) *tuner.SlotSupplier {
	t.Helper()
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{
		Name: "activity", MinSlots: 1, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond,
		Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 3 / 100},
	})
	require.NoError(t, err)
	return sup
}

func newController(t *testing.T, h *sim.Host, opts tuner.ControllerOptions) *tuner.Controller {
	t.Helper()
	src, g := h.Sources()
	opts.Source = src
	if opts.TargetGPUMemory > 0 {
		opts.GPU = g
	}
	if opts.SampleInterval == 0 {
		opts.SampleInterval = 100 * time.Millisecond
	}
	opts.Logger = testutil.NopLogger
	c, err := tuner.NewController(opts)
	require.NoError(t, err)
	require.NoError(t, c.WaitReady(context.Background()))
	return c
}

// The reactive tuner's failure, and the budget's answer: slow allocations
// under a backlog stay within target, and use most of what fits (the best
// fixed size's mean is 0.68; headroom's is 0.54–0.66 over runs, which differ
// in goroutine order).
func TestSlowAllocationNoOvershoot(t *testing.T) {
	for _, pollers := range []int{2, 8} {
		t.Run(fmt.Sprintf("pollers=%d", pollers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sc := slowAlloc(pollers)
				c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
				defer c.Close()
				sup := slowAllocSupplier(t, c)
				res := sim.Run(sup, sc)
				st := sup.Stats()
				t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, st)
				assert.LessOrEqual(t, res.Peak, 0.82)
				assert.GreaterOrEqual(t, res.Mean, 0.5)
				assert.Zero(t, st.Issued, "no slot left reserved")
			})
		})
	}
}

// A cost declared at half the truth, for work that shows nothing for its
// first seconds (imports, then allocation): charged twice the declaration
// until the readings confirm a cost, it does not overshoot; and once they
// do, the cost is learned within 15 % of the truth.
func TestHalfPriorOfLateWorkNoOvershoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &sim.Host{BaseMem: 0.2, MemLimit: 64 * GiB}
		c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "late", MinSlots: 1, MaxSlots: 100,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 3 / 100}})
		require.NoError(t, err)
		res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 8, Duration: 90 * time.Second, Resource: "memory", Target: 0.8,
			Task: func(int) sim.Task {
				return sim.Task{Mem: 0.06, Delay: 3 * time.Second, Hold: 4 * time.Second}
			}})
		st := sup.Stats()
		t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, st)
		assert.LessOrEqual(t, res.Peak, 0.82)
		assert.InDelta(t, 0.06, float64(st.Cost.MemoryBytes)/(64*GiB), 0.06*0.15, "learned cost")
		assert.Equal(t, tuner.Memory, st.Confirmed)
	})
}

// A cost declared at half the truth, for GPU loads that ramp up over 8 s
// and differ ±50 % in size, on five devices, started in a wave: the slots'
// ages move through each age bin together, and a bin seen only at its young
// end holds about what the bin before it held. Growth counts as stopped only
// on bins the readings have seen slots live past; taken from a bin seen
// partway, the cost was confirmed a few seconds into the ramp at a fraction
// of the footprint, and devices went 0.1–0.4 above target.
func TestHalfPriorOfARampNoOvershoot(t *testing.T) {
	// Single runs of a spread of sizes vary (the spread is learned low: see
	// docs/design.md), so the bar is on the median of five orders of sizes:
	// 0.857 with the rule, 0.94–1.3 without it (and at one σ of memory margin).
	peaks := overOrders(t, func(t *testing.T, order int) float64 {
		h, c := gpuHost(t, 5)
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "ramp", MinSlots: 1, MaxSlots: 1000,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 27 * GiB / 10}})
		require.NoError(t, err)
		res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 12, Duration: 40 * time.Second, Resource: "gpu", Target: 0.85,
			Task: func(i int) sim.Task {
				return sim.Task{GPU: spreadSize(i, order, 5.4*GiB), Ramp: 8 * time.Second, Hold: 19 * time.Second}
			},
			Device: func(p *worker.SlotPermit) string { d, _ := sup.DeviceOf(p); return d },
		})
		t.Logf("order %d: peak %.3f per device %v done %d; %+v", order, res.Peak, res.PerDevicePeak, res.Completed, sup.Stats())
		return res.Peak
	})
	assert.LessOrEqual(t, peaks[len(peaks)/2], 0.90, "median peak of %v", peaks)
}

// Loads that differ ±50 % in size are charged at least their mean. Fitted
// on slot counts alone, the spread is learned low (admission takes more
// slots where the tasks happen to be small: 4.1–5.3 GiB for loads of a
// 5.4 GiB mean); the readings' drops when settled slots are released
// (drops.go) are not biased that way, and the charge is never below their
// mean.
func TestSpreadOfSizesIsChargedItsMean(t *testing.T) {
	costs := overOrders(t, func(t *testing.T, order int) float64 {
		h, c := gpuHost(t, 4)
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "spread", MinSlots: 1, MaxSlots: 1000,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 54 * GiB / 10}})
		require.NoError(t, err)
		var cost float64
		res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 12, Duration: 150 * time.Second, Resource: "gpu", Target: 0.85,
			Task: func(i int) sim.Task {
				if i%40 == 0 { // what it is charged while it runs, not once it drains
					cost = float64(sup.Stats().Cost.GPUMemoryBytes) / GiB
				}
				return sim.Task{GPU: spreadSize(i, order, 5.4*GiB), Ramp: 4 * time.Second, Hold: 8 * time.Second}
			},
			Device: func(p *worker.SlotPermit) string { d, _ := sup.DeviceOf(p); return d },
		})
		t.Logf("order %d: peak %.3f done %d charged %.2f GiB", order, res.Peak, res.Completed, cost)
		return cost
	})
	assert.GreaterOrEqual(t, costs[len(costs)/2], 5.4*0.95, "median charge of %v (GiB)", costs)
	assert.LessOrEqual(t, costs[len(costs)/2], 5.4*1.15, "median charge of %v (GiB)", costs)
}

// A cost declared at twice the truth is learned down: within 15 % of the
// truth, and the supplier then runs about as many tasks as fit.
func TestDoublePriorIsLearnedDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := slowAlloc(4)
		sc.Duration = 120 * time.Second
		c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "double", MinSlots: 1, MaxSlots: 100,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 6 / 100}})
		require.NoError(t, err)
		res := sim.Run(sup, sc)
		st := sup.Stats()
		t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, st)
		assert.LessOrEqual(t, res.Peak, 0.82)
		assert.InDelta(t, 0.03, float64(st.Cost.MemoryBytes)/(64*GiB), 0.03*0.15, "learned cost")
		assert.Greater(t, res.Mean, 0.55, "runs what fits once learned")
	})
}

// A cost declared twice the truth for long CPU tasks (1.5 cores for 18 s):
// charged four times the truth until confirmed, only the MinSlots slot runs,
// from the first reading on, so the count of used slots never changes and
// the readings tell its footprint from the rest of the host only by the
// reading taken before it started. When that reading went unused (any slot
// use discarded the readings before it, and WaitReady returned before the
// controller had taken it), the cost was never identified and one task ran
// at a time for the whole run (0.12 of the best fixed size, family workload
// 12, in most goroutine orders; this test's orders were spared). Three
// orders are run.
func TestOneSlotInUseFromTheStartIsLearned(t *testing.T) {
	for range 3 {
		synctest.Test(t, oneSlotInUseFromTheStart)
	}
}

func oneSlotInUseFromTheStart(t *testing.T) {
	h := &sim.Host{BaseMem: 0.2, BaseCPU: 0.05, MemLimit: 64 * GiB, Cores: 16}
	src, _ := h.Sources()
	c, err := tuner.NewController(tuner.ControllerOptions{Source: src, TargetCPU: 0.8, SampleInterval: 250 * time.Millisecond, Logger: testutil.NopLogger})
	require.NoError(t, err)
	defer c.Close()
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "double", MinSlots: 1, MaxSlots: 100,
		RampThrottle: 50 * time.Millisecond, Resources: tuner.CPU, Cost: tuner.Cost{CPUCores: 3}})
	require.NoError(t, err)
	require.NoError(t, c.WaitReady(context.Background()))
	res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 7, Duration: 150 * time.Second, Warmup: 60 * time.Second,
		Resource: "cpu", Target: 0.8, Task: func(int) sim.Task { return sim.Task{CPU: 1.5 / 16, Hold: 18 * time.Second} }})
	st := sup.Stats()
	t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, st)
	assert.LessOrEqual(t, res.Peak, 0.82)
	assert.InDelta(t, 1.5, st.Cost.CPUCores, 1.5*0.15, "learned cost")
	assert.Greater(t, res.Mean, 0.5, "runs what fits once learned (best fixed: 8 tasks, 0.80)")
}

// With no cost declared, a supplier probes: a few slots until the readings
// show what they use. Tasks of 8 % that ramp over 2 s never overshoot,
// where admitting on a zero cost would fill MaxSlots at once.
func TestZeroPriorProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := slowAlloc(8)
		sc.Task = func(int) sim.Task { return sim.Task{Mem: 0.08, Ramp: 2 * time.Second, Hold: 3 * time.Second} }
		c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "zero", MinSlots: 1, MaxSlots: 100,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory})
		require.NoError(t, err)
		res := sim.Run(sup, sc)
		st := sup.Stats()
		t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, st)
		assert.LessOrEqual(t, res.Peak, 0.85)
		assert.Greater(t, st.Refused[tuner.ReasonProbe], uint64(0), "it probed")
		assert.Greater(t, res.Mean, 0.5)
	})
}

// Memory that outlives its task by a second (a process exiting after the
// activity returned) is learned as what released slots still show, not as
// other usage: a reading taken then does not make costs look smaller.
func TestLingeringMemoryNoOvershoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := slowAlloc(4)
		sc.Task = func(int) sim.Task {
			return sim.Task{Mem: 0.04, Ramp: 2 * time.Second, Hold: 2 * time.Second, Linger: 1500 * time.Millisecond}
		}
		c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "linger", MinSlots: 1, MaxSlots: 100,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 4 / 100}})
		require.NoError(t, err)
		res := sim.Run(sup, sc)
		t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, sup.Stats())
		assert.LessOrEqual(t, res.Peak, 0.82)
		// The cost is learned well above 4 % (about 10 %: the lingering
		// memory is hard to tell apart from young slots' footprint, since a
		// task starts as another's memory lingers), which costs throughput.
		assert.Greater(t, res.Mean, 0.45)
	})
}

// A fresh worker with a declared cost runs its configured pollers at once:
// nothing throttles reservations that fit.
func TestFreshWorkerRunsItsPollers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &sim.Host{BaseMem: 0.2, MemLimit: 64 * GiB}
		c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "fresh", MinSlots: 1, MaxSlots: 100,
			Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: GiB}})
		require.NoError(t, err)
		var ps []*worker.SlotPermit
		start := time.Now()
		for range 8 {
			p, err := sup.ReserveSlot(context.Background(), info)
			require.NoError(t, err)
			ps = append(ps, p)
		}
		assert.Equal(t, time.Duration(0), time.Since(start), "eight pollers reserved without waiting")
		for _, p := range ps {
			sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
		}
	})
}

// Short CPU tasks (50 ms, too short to be seen by age) beside a memory
// class whose tasks use a core it does not govern: the short class's cost
// is the readings' lower bound, and that bound is what holds it. Left to
// the readings alone (charged nothing between them) it filled MaxSlots at
// once: 2.45 of the host's CPU.
func TestShortTasksBesideUngovernedCPU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &sim.Host{BaseMem: 0.2, BaseCPU: 0.05, MemLimit: 64 * GiB, Cores: 2}
		c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.8})
		defer c.Close()
		heavy, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "heavy", MinSlots: 1, MaxSlots: 1,
			Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 5 / 100}})
		require.NoError(t, err)
		quick, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "quick", MinSlots: 1, MaxSlots: 100, Resources: tuner.CPU})
		require.NoError(t, err)
		res := sim.RunMany(sim.Scenario{Host: h, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "cpu", Target: 0.8}, []sim.Load{
			{Sup: heavy, Tasks: 1 << 20, Pollers: 2, Task: func(int) sim.Task {
				return sim.Task{Mem: 0.05, CPU: 0.4, Ramp: 500 * time.Millisecond, Hold: 2 * time.Second}
			}},
			{Sup: quick, Tasks: 1 << 20, Pollers: 16, Task: func(int) sim.Task {
				return sim.Task{CPU: 0.02, Hold: 50 * time.Millisecond}
			}},
		})
		t.Logf("peak %.3f mean %.3f done %v; quick %+v", res.Peak, res.Mean, res.PerLoad, quick.Stats())
		assert.LessOrEqual(t, res.Peak, 0.82)
		// One slot at a time does at most 50 s ÷ 50 ms = 1,000 tasks; the
		// room left by the heavy task (0.8 − 0.45 of the host) fits several.
		// Runs are bimodal: 3,500–3,650 tasks, or 1,200 when the heavy
		// task's core (it starts with the quick ones and does not govern
		// CPU, so the readings cannot tell whose it is) is read as the
		// quick class's and its lower bound locks at 0.4–0.8 cores. Measured
		// on the code before and after session 7 (4 and 1–3 runs in 8 low):
		// a known limit (docs/design.md); the bar is more than one slot.
		assert.Greater(t, res.PerLoad[1], 1000)
	})
}

// gpuHost is a host with n devices of 80 GiB (2 % used by others) and a
// controller for it: GPU memory target 0.85, read every 250 ms.
func gpuHost(t *testing.T, n int) (*sim.Host, *tuner.Controller) {
	var devs []sim.Device
	for d := range n {
		devs = append(devs, sim.Device{UUID: fmt.Sprintf("GPU-%d", d), Total: 80 * GiB, Base: 80 * GiB / 50})
	}
	h := &sim.Host{BaseMem: 0.2, MemLimit: 64 * GiB, Devices: devs}
	return h, newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8, TargetGPUMemory: 0.85, SampleInterval: 250 * time.Millisecond})
}

// overOrders runs one scenario in a synctest bubble for each of five orders
// of task sizes and returns what each run measured, sorted: single runs of
// a spread of sizes vary, so these tests hold the median.
func overOrders(t *testing.T, run func(t *testing.T, order int) float64) []float64 {
	var v []float64
	for order := range 5 {
		synctest.Test(t, func(t *testing.T) { v = append(v, run(t, order)) })
	}
	slices.Sort(v)
	return v
}

// spreadSize is task i's size in the given order of sizes: 0.5–1.5 × mean,
// evenly spread, in no order.
func spreadSize(i, order int, mean float64) uint64 {
	return uint64((0.5 + float64((i*7919+order*31)%101)/100) * mean)
}

// A footprint learned from zero through noisy readings (±3.7 points of
// memory): 10 % tasks that ramp over 9 s. Young age bins are fitted from a
// few readings and come out near the peak by chance; growth counts as
// stopped only on bins at the peak beyond their standard error. Taken at
// face value, a footprint was confirmed 3 s into the ramp at half its size
// and eleven slots went in at once (family workload 173: +0.47).
func TestNoisyRampIsNotConfirmedEarly(t *testing.T) {
	for seed := range uint64(3) {
		synctest.Test(t, func(t *testing.T) {
			h := &sim.Host{BaseMem: 0.2, BaseCPU: 0.05, MemLimit: 64 * GiB, Noise: 0.037, Seed: 173 + seed}
			c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8, SampleInterval: 250 * time.Millisecond})
			defer c.Close()
			sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "zero", MinSlots: 1, MaxSlots: 100,
				RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory})
			require.NoError(t, err)
			res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 1, Duration: 90 * time.Second, Resource: "memory", Target: 0.8,
				Task: func(int) sim.Task { return sim.Task{Mem: 0.10, Ramp: 9 * time.Second, Hold: 9 * time.Second} }})
			t.Logf("seed %d: peak %.3f mean %.3f done %d; %+v", seed, res.Peak, res.Mean, res.Completed, sup.Stats())
			assert.LessOrEqual(t, res.Peak, 0.82)
		})
	}
}

// Tasks of sizes ±50 % around 12 % that ramp over 5 s, declared at twice
// their mean, on a host whose other memory falls by 11 points over the run.
// While the count of used slots barely moves, the fit cannot tell the fall
// from smaller footprints and learns the cost down with it (to 5 GiB of an
// 8 GiB mean); the release drops hold it up. A backlog starts a new slot in
// each released one's place at once, so drops are read across those starts
// (the new slot counted as showing nothing, which can only read a drop
// low); skipping them, as when drops were added, left the class with none
// and the run peaked at 0.94 (family workload 21, whose draw of sizes this
// is).
func TestFallingOtherUsageIsNotTakenForSmallerTasks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &sim.Host{BaseMem: 0.2, BaseCPU: 0.05, MemLimit: 64 * GiB, Cores: 16,
			Drift: func(d time.Duration) float64 { return -0.11 * min(1, d.Seconds()/108) }}
		c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.8, SampleInterval: 250 * time.Millisecond})
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "double", MinSlots: 1, MaxSlots: 1000,
			RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: 64 * GiB * 246 / 1000}})
		require.NoError(t, err)
		rng := rand.New(rand.NewPCG(21, 0))
		var mu sync.Mutex
		res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 8, Duration: 108 * time.Second, Resource: "memory", Target: 0.8,
			Task: func(int) sim.Task {
				mu.Lock()
				defer mu.Unlock()
				return sim.Task{Mem: 0.123 * (1 + 0.5*(2*rng.Float64()-1)), Ramp: 5290 * time.Millisecond, Hold: 12750 * time.Millisecond}
			}})
		t.Logf("peak %.3f mean %.3f done %d; %+v", res.Peak, res.Mean, res.Completed, sup.Stats())
		assert.LessOrEqual(t, res.Peak, 0.82)
	})
}

// Programs that start late by a varying amount (a process slow to start on
// a loaded host: its footprint appears 1.5–6.5 s after MarkSlotUsed, then
// holds 3 s) and free their memory before the slot is released (the
// completion's round trip, up to 1.5 s), over two sizes, an empty host and
// one a fifth used, and six draws each. The profile is the mean footprint
// by age, so a slot later than the mean made the usage of everything else
// look smaller by its whole footprint; with that estimate free to fall
// below the fit's intercept, 2 of the 24 runs peaked at 0.84 and 0.95 (the
// latter the shape of TestRealAllocationsInACgroup's 0.964 in CI).
func TestLateStartsNoOvershoot(t *testing.T) {
	var peaks []float64
	for _, size := range []float64{0.05, 0.19} {
		for _, base := range []float64{0.001, 0.2} {
			for seed := range 6 {
				synctest.Test(t, func(t *testing.T) {
					h := &sim.Host{BaseMem: base, Noise: 0.005, MemLimit: 64 * GiB, Seed: uint64(seed)}
					rng := rand.New(rand.NewPCG(uint64(seed), 9))
					var mu sync.Mutex
					c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8, SampleInterval: 250 * time.Millisecond})
					defer c.Close()
					sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "late", MinSlots: 1, MaxSlots: 100, RampThrottle: 50 * time.Millisecond,
						Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(size * 64 * GiB)}})
					require.NoError(t, err)
					res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 1 << 20, Pollers: 4, Duration: 90 * time.Second, Resource: "memory", Target: 0.8,
						Task: func(int) sim.Task {
							mu.Lock()
							defer mu.Unlock()
							return sim.Task{Mem: size, Delay: 1500*time.Millisecond + time.Duration(rng.Float64()*float64(5*time.Second)),
								Ramp: 200 * time.Millisecond, Hold: 3 * time.Second, ReleaseDelay: time.Duration(rng.Float64() * float64(1500*time.Millisecond))}
						}})
					peaks = append(peaks, res.Peak)
					t.Logf("size %.2f, other usage %.3f, draw %d: peak %.3f mean %.3f done %d", size, base, seed, res.Peak, res.Mean, res.Completed)
				})
			}
		}
	}
	assert.LessOrEqual(t, slices.Max(peaks), 0.82, "the highest peak of %v", peaks)
}

// Workflow tasks (30 ms, under the first age bin) on the same memory line as
// programs that allocate 196 MiB after 1.5 s and hold it 3 s, on a 1 GiB
// host: the programs get as much done beside them as alone. The short
// class's releases come at the rate it runs, so the counts in its release
// bins hardly change between readings; fitted, they stood in for the usage
// of everything else, the programs' cost was confirmed lives later (charged
// twice the declaration until then), and four draws did 120–123 programs
// beside the workflow tasks against 133 alone (132 with the rule).
func TestShortTasksBesideDoNotSlowLearning(t *testing.T) {
	run := func(beside bool) (done int) {
		for seed := range 4 {
			synctest.Test(t, func(t *testing.T) {
				h := &sim.Host{BaseMem: 0.001, Noise: 0.002, MemLimit: GiB, Seed: uint64(seed)}
				c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8, SampleInterval: 250 * time.Millisecond})
				defer c.Close()
				sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "programs", MinSlots: 1, MaxSlots: 32,
					RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: 200 << 20}})
				require.NoError(t, err)
				wf, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "workflow", MinSlots: 2, MaxSlots: 10, Resources: tuner.Memory})
				require.NoError(t, err)
				rng := rand.New(rand.NewPCG(uint64(seed), 9))
				var mu sync.Mutex
				loads := []sim.Load{{Sup: sup, Tasks: 1 << 20, Pollers: 4, Task: func(int) sim.Task {
					mu.Lock()
					defer mu.Unlock()
					return sim.Task{Mem: 196.0 / 1024, Delay: 1500*time.Millisecond + time.Duration(rng.Float64()*float64(300*time.Millisecond)),
						Ramp: 100 * time.Millisecond, Hold: 3 * time.Second, ReleaseDelay: time.Duration(rng.Float64() * float64(100*time.Millisecond))}
				}}}
				if beside {
					loads = append(loads, sim.Load{Sup: wf, Tasks: 1 << 20, Pollers: 2,
						Arrivals: func(d time.Duration) int { return int(d / (700 * time.Millisecond)) },
						Task:     func(int) sim.Task { return sim.Task{Mem: 0.002, Hold: 30 * time.Millisecond} }})
				}
				res := sim.RunMany(sim.Scenario{Host: h, Duration: 60 * time.Second, Resource: "memory", Target: 0.8}, loads)
				t.Logf("workflow tasks beside %v, draw %d: peak %.3f, done %v", beside, seed, res.Peak, res.PerLoad)
				assert.LessOrEqual(t, res.Peak, 0.82)
				done += res.PerLoad[0]
			})
		}
		return done
	}
	alone, beside := run(false), run(true)
	assert.GreaterOrEqual(t, float64(beside), 0.95*float64(alone), "programs done beside workflow tasks (%d) and alone (%d)", beside, alone)
}
