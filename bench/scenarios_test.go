package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

const gib = 1 << 30

type scenario struct {
	name   string
	build  func() sim.Scenario
	cost   tuner.Cost
	floor  tuner.Cost // CostFloor; zero: the prior
	settle time.Duration
	gpu    bool
}

func memTask(mem float64, ramp, hold time.Duration) func(int) sim.Task {
	return func(int) sim.Task { return sim.Task{Mem: mem, Ramp: ramp, Hold: hold} }
}

// mixedSizes: tasks of 1, 3 and 6 % of memory in turn.
func mixedSizes() sim.Scenario {
	sizes := []float64{0.01, 0.03, 0.06}
	return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib},
		Task:  func(i int) sim.Task { return sim.Task{Mem: sizes[i%3], Ramp: 2 * time.Second, Hold: 3 * time.Second} },
		Tasks: 1 << 30, Pollers: 4, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "memory", Target: 0.8}
}

var scenarios = []scenario{
	{name: "fast tasks", settle: 200 * time.Millisecond, cost: tuner.Cost{MemoryBytes: 64 * gib / 100},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib}, Task: memTask(0.01, 100*time.Millisecond, 400*time.Millisecond),
				Tasks: 1 << 30, Pollers: 8, Duration: 40 * time.Second, Warmup: 5 * time.Second, Resource: "memory", Target: 0.8}
		}},
	{name: "slow allocation", settle: 2 * time.Second, cost: tuner.Cost{MemoryBytes: 64 * gib * 3 / 100},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib}, Task: memTask(0.03, 2*time.Second, 3*time.Second),
				Tasks: 1 << 30, Pollers: 4, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "memory", Target: 0.8}
		}},
	{name: "slow allocation, cost learned (prior 0)", settle: 2 * time.Second,
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib}, Task: memTask(0.03, 2*time.Second, 3*time.Second),
				Tasks: 1 << 30, Pollers: 4, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "memory", Target: 0.8}
		}},
	{name: "mixed sizes (prior = largest)", settle: 2 * time.Second, cost: tuner.Cost{MemoryBytes: 64 * gib * 6 / 100},
		build: mixedSizes},
	{name: "mixed sizes (prior = largest, floor = smallest)", settle: 2 * time.Second,
		cost: tuner.Cost{MemoryBytes: 64 * gib * 6 / 100}, floor: tuner.Cost{MemoryBytes: 64 * gib / 100},
		build: mixedSizes},
	{name: "model loads (nothing for 3.5 s, then 6 % over 2 s)", settle: 2 * time.Second, cost: tuner.Cost{MemoryBytes: 64 * gib * 6 / 100},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib},
				Task: func(int) sim.Task {
					return sim.Task{Mem: 0.06, Delay: 3500 * time.Millisecond, Ramp: 2 * time.Second, Hold: 2 * time.Second}
				},
				Tasks: 1 << 30, Pollers: 8, Duration: 90 * time.Second, Warmup: 30 * time.Second, Resource: "memory", Target: 0.8}
		}},
	{name: "noisy readings (±2 pts)", settle: 2 * time.Second, cost: tuner.Cost{MemoryBytes: 64 * gib * 3 / 100},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib, Noise: 0.02}, Task: memTask(0.03, 2*time.Second, 3*time.Second),
				Tasks: 1 << 30, Pollers: 4, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "memory", Target: 0.8}
		}},
	{name: "bursty arrivals", settle: 2 * time.Second, cost: tuner.Cost{MemoryBytes: 64 * gib * 3 / 100},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.2, MemLimit: 64 * gib}, Task: memTask(0.03, 2*time.Second, 3*time.Second),
				Tasks: 1 << 30, Arrivals: func(d time.Duration) int { return 40 * (1 + int(d/(15*time.Second))) },
				Pollers: 4, Duration: 60 * time.Second, Warmup: 5 * time.Second, Resource: "memory", Target: 0.8}
		}},
	{name: "GPU, one 80 GiB device", settle: 3 * time.Second, gpu: true, cost: tuner.Cost{GPUMemoryBytes: 10 * gib},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * gib}}},
				Task: func(int) sim.Task { return sim.Task{GPU: 10 * gib, Ramp: 3 * time.Second, Hold: 5 * time.Second} }, Tasks: 1 << 30,
				Pollers: 2, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "gpu", Target: 0.9}
		}},
	{name: "GPU, two 80 GiB devices", settle: 3 * time.Second, gpu: true, cost: tuner.Cost{GPUMemoryBytes: 10 * gib},
		build: func() sim.Scenario {
			return sim.Scenario{Host: &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * gib}, {UUID: "GPU-1", Total: 80 * gib}}},
				Task: func(int) sim.Task { return sim.Task{GPU: 10 * gib, Ramp: 3 * time.Second, Hold: 5 * time.Second} }, Tasks: 1 << 30,
				Pollers: 4, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "gpu", Target: 0.9}
		}},
}

func runHeadroom(t *testing.T, sc scenario) (res sim.Result) {
	synctest.Test(t, func(t *testing.T) {
		s := sc.build()
		src, g := s.Host.Sources()
		opts := tuner.ControllerOptions{Source: src, SampleInterval: sampleInterval, Logger: testutil.NopLogger}
		res := tuner.Memory
		if sc.gpu {
			opts.TargetGPUMemory, opts.GPU, res = s.Target, g, tuner.GPUMemory
		} else {
			opts.TargetMemory = s.Target
		}
		c, err := tuner.NewController(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.WaitReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "activity", MinSlots: 1, MaxSlots: 1000,
			RampThrottle: headroomRamp, Resources: res, Cost: sc.cost, CostFloor: sc.floor})
		if err != nil {
			t.Fatal(err)
		}
		if sc.gpu {
			s.Device = func(p *worker.SlotPermit) string { d, _ := sup.DeviceOf(p); return d }
		}
		resOut := sim.Run(sup, s)
		if st := sup.Stats(); st.Issued != 0 {
			t.Errorf("%s: %d slots left reserved", sc.name, st.Issued)
		}
		resultSink = resOut
	})
	return resultSink
}

var resultSink sim.Result

func runSDK(t *testing.T, sc scenario) sim.Result {
	synctest.Test(t, func(t *testing.T) {
		s := sc.build()
		src, _ := s.Host.Sources()
		m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Interval: sampleInterval, Logger: testutil.NopLogger})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.WaitReady(context.Background()); err != nil {
			t.Fatal(err)
		}
		o := worker.DefaultResourceControllerOptions()
		o.MemTargetPercent, o.CpuTargetPercent, o.InfoSupplier = 0.8, 0.9, resources.NewSysInfoProvider(m)
		if sc.gpu {
			o.MemTargetPercent = 0.9 // the SDK tuner cannot see GPU memory: host memory is all it governs
		}
		sup, err := worker.NewResourceBasedSlotSupplier(worker.NewResourceController(o), worker.DefaultActivityResourceBasedSlotSupplierOptions())
		if err != nil {
			t.Fatal(err)
		}
		resultSink = sim.Run(sup, s)
	})
	return resultSink
}

func runFixed(t *testing.T, sc scenario, n int) sim.Result {
	synctest.Test(t, func(t *testing.T) {
		sup, err := worker.NewFixedSizeSlotSupplier(n)
		if err != nil {
			t.Fatal(err)
		}
		resultSink = sim.Run(sup, sc.build())
	})
	return resultSink
}

// bestFixed is the largest fixed size whose peak stays within target + 0.02:
// what an operator would find by trial and error for this one workload.
func bestFixed(t *testing.T, sc scenario) (int, sim.Result) {
	target := sc.build().Target
	best, bestRes := 1, runFixed(t, sc, 1)
	for n := 2; n <= 100; n++ {
		r := runFixed(t, sc, n)
		if r.Peak > target+0.02 {
			break
		}
		best, bestRes = n, r
	}
	return best, bestRes
}

// TestScenarios prints the control-quality table (go test -run TestScenarios
// -v ./bench/) and holds headroom to its promise in every scenario: peak at
// most target + 0.02 (+ 0.05 where no cost is declared) and never above 100 %.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates ~20 minutes of host time")
	}
	var b strings.Builder
	fmt.Fprintln(&b, "| scenario | tuner | peak / target | mean (backlog) | time > target | time > 100 % | tasks done |")
	fmt.Fprintln(&b, "| --- | --- | --- | --- | --- | --- | --- |")
	for _, sc := range scenarios {
		target := sc.build().Target
		ours := runHeadroom(t, sc)
		sdk := runSDK(t, sc)
		n, fixed := bestFixed(t, sc)
		for _, row := range []struct {
			name string
			r    sim.Result
		}{{"headroom", ours}, {"SDK resource-based", sdk}, {fmt.Sprintf("best fixed (%d)", n), fixed}} {
			fmt.Fprintf(&b, "| %s | %s | %.3f / %.2f | %.3f | %.1f %% | %.1f %% | %d |\n", sc.name, row.name, row.r.Peak, target, row.r.Mean,
				100*row.r.AboveTarget, 100*row.r.Above1, row.r.Completed)
		}
		// A cost left to be learned is held to issue 12's bar for low and
		// zero priors, target + 0.05; a declared one to target + 0.02.
		bar := 0.02
		if sc.cost == (tuner.Cost{}) {
			bar = 0.05
		}
		if ours.Peak > target+bar {
			t.Errorf("%s: headroom peak %.3f above target %.2f + %.2f", sc.name, ours.Peak, target, bar)
		}
		if ours.Above1 > 0 {
			t.Errorf("%s: headroom spent %.1f %% of the time above 100 %%", sc.name, 100*ours.Above1)
		}
	}
	t.Logf("\n%s", b.String())
}

// sampleInterval is the readings' interval for both tuners: 99 ms rather
// than 100, so that simulated task ends (whole tenths of a second) do not
// fall on the very instant of a reading, which a real clock never does. At a
// tie the simulation may read before or after a task frees its memory, and
// headroom rightly learns nothing from such a reading.
const sampleInterval = 99 * time.Millisecond

// headroomRamp: with declared costs the budget, not the ramp, prevents
// overshoot, so headroom runs with a short ramp (the SDK keeps its 50 ms).
var headroomRamp = 5 * time.Millisecond
