package tuner_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
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
		Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 3 / 100}, SettleTime: 2 * time.Second,
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

func TestSlowAllocationNoOvershoot(t *testing.T) {
	for _, pollers := range []int{2, 8} {
		t.Run(fmt.Sprintf("pollers=%d", pollers), func(t *testing.T) {
			var ours, sdk sim.Result
			synctest.Test(t, func(t *testing.T) {
				sc := slowAlloc(pollers)
				c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
				defer c.Close()
				sup := slowAllocSupplier(t, c)
				ours = sim.Run(sup, sc)
				t.Logf("learned cost %.6f%%, settle %v, prompt %v", 100*float64(sup.Stats().Cost.MemoryBytes)/float64(64*GiB), sup.Stats().SettleTime, sup.Stats().PromptRelease)
				assert.Zero(t, sup.Stats().Issued, "no slot left reserved")
			})
			synctest.Test(t, func(t *testing.T) {
				// The SDK's resource-based supplier on the same host model, fed the
				// same readings through our SysInfoProvider.
				sc := slowAlloc(pollers)
				src, _ := sc.Host.Sources()
				m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Interval: 100 * time.Millisecond, Logger: testutil.NopLogger})
				require.NoError(t, err)
				defer m.Close()
				require.NoError(t, m.WaitReady(context.Background()))
				ctrlOpts := worker.DefaultResourceControllerOptions()
				ctrlOpts.MemTargetPercent, ctrlOpts.CpuTargetPercent = 0.8, 0.9
				ctrlOpts.InfoSupplier = resources.NewSysInfoProvider(m)
				sup, err := worker.NewResourceBasedSlotSupplier(worker.NewResourceController(ctrlOpts), worker.DefaultActivityResourceBasedSlotSupplierOptions())
				require.NoError(t, err)
				sdk = sim.Run(sup, sc)
			})
			t.Logf("headroom: peak %.3f mean %.3f above-target %.1f%% done %d", ours.Peak, ours.Mean, 100*ours.AboveTarget, ours.Completed)
			t.Logf("sdk:      peak %.3f mean %.3f above-target %.1f%% above-100%% %.1f%% done %d", sdk.Peak, sdk.Mean, 100*sdk.AboveTarget, 100*sdk.Above1, sdk.Completed)
			assert.LessOrEqual(t, ours.Peak, 0.82, "headroom peak")
			// Ceiling for any policy that never overshoots: a task holds its whole
			// cost in the budget for 5 s but uses 80 % of it on average over its
			// life (2 s linear ramp, 3 s hold), so perfect packing gives exactly
			// 0.2 + 0.6×0.8 = 0.68, and only if every ended task is replaced the
			// instant it ends. Prompt release (learned: this host frees a task's
			// memory when it ends) gets there: 0.678–0.681 in 139 of 140 runs
			// under -race, half of them with other packages running, and 0.673
			// in one. Without it (a release waiting for the next reading) this
			// gave 0.661–0.677; pending that does not decay after MarkSlotUsed
			// would give 0.60.
			assert.GreaterOrEqual(t, ours.Mean, 0.67, "headroom mean after warm-up")
			assert.Zero(t, ours.Outstanding)
			assert.Greater(t, sdk.Peak, 0.82, "the SDK's reactive tuner overshoots this workload")
		})
	}
}

// Readings with ±2 points of noise: a reading that is low by chance must not
// be taken for headroom, even at the SDK's default 50 ms ramp.
func TestNoisyReadingsNoOvershoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := slowAlloc(4)
		sc.Host.Noise = 0.02
		c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		sup := slowAllocSupplier(t, c)
		res := sim.Run(sup, sc)
		t.Logf("noisy: peak %.3f mean %.3f", res.Peak, res.Mean)
		assert.LessOrEqual(t, res.Peak, 0.82)
		assert.Zero(t, res.Above1)
		assert.GreaterOrEqual(t, res.Mean, 0.63, "the noise margin costs some utilization, not most of it")
	})
}

// A release gives its footprint back at once only after readings have shown,
// reading after reading, that released footprints are gone by the next one.
// Memory that outlives its task (Linger longer than the sample interval)
// must never earn that: crediting it would admit new work on top of memory
// still in use. Memory freed before the release (the activity's completion
// round trip, ReleaseDelay) earns it, but a reading taken in between already
// gave that room to the budget: crediting it again would put one load too
// many on a device.
func TestPromptReleaseIsLearned(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name          string
		linger, delay time.Duration
		prompt        *bool // nil: either (the readings already show the room)
	}{
		{"freed at release", 0, 0, &yes},
		{"freed a reading before release", 0, 150 * time.Millisecond, nil},
		{"freed three readings before release", 0, 350 * time.Millisecond, nil},
		{"lingers 1 s", time.Second, 0, &no},
		{"lingers 300 ms", 300 * time.Millisecond, 0, &no},
	} {
		t.Run("memory/"+tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sc := slowAlloc(4)
				sc.Task = func(int) sim.Task {
					return sim.Task{Mem: 0.03, Ramp: 2 * time.Second, Hold: 3 * time.Second, Linger: tc.linger, ReleaseDelay: tc.delay}
				}
				c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
				defer c.Close()
				sup := slowAllocSupplier(t, c)
				res := sim.Run(sup, sc)
				st := sup.Stats()
				t.Logf("peak %.3f mean %.3f prompt %v", res.Peak, res.Mean, st.PromptRelease)
				if tc.prompt != nil {
					assert.Equal(t, *tc.prompt, st.PromptRelease&tuner.Memory != 0, "prompt release learned")
				}
				assert.Zero(t, res.AboveTarget, "never above target (crediting lingering memory reaches 0.81)")
				assert.Zero(t, res.Outstanding)
			})
		})
		t.Run("gpu/"+tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * GiB}, {UUID: "GPU-1", Total: 80 * GiB}}}
				res, sup := runGPU(t, h, 0.9, 4, tc.linger, tc.delay)
				st := sup.Stats()
				t.Logf("peak %.3f mean %.3f prompt %v", res.Peak, res.Mean, st.PromptRelease)
				if tc.prompt != nil {
					assert.Equal(t, *tc.prompt, st.PromptRelease&tuner.GPUMemory != 0, "prompt release learned")
				}
				assert.LessOrEqual(t, res.Peak, 0.92, "crediting lingering GPU memory reaches 0.94")
				assert.Zero(t, res.Outstanding)
			})
		})
	}
}

// The declared settle time is a guess; the readings correct it. Declared too
// short, pending would end before the footprint shows and admission would
// turn reactive (6 s loads declared as 2 s peaked at 1.34 before the settle
// time was learned); declared too long, slots count twice and utilization
// drops (0.44 mean). ceiling is the mean of perfect packing under the
// target: base + band × the task's average share of its cost over its life.
func TestSettleTimeIsLearned(t *testing.T) {
	for _, tc := range []struct {
		name           string
		ramp, declared time.Duration
		gpu            bool
	}{
		{"memory: declared 3× too short", 6 * time.Second, 2 * time.Second, false},
		{"memory: declared 3× too long", 2 * time.Second, 6 * time.Second, false},
		{"memory: declared 4× too long", 500 * time.Millisecond, 2 * time.Second, false},
		{"gpu: model load 4× the declared", 12 * time.Second, 3 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const hold = 3 * time.Second
				var res sim.Result
				var st tuner.Stats
				var band, peakMax float64
				if tc.gpu {
					h := &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * GiB}}}
					c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.9, TargetGPUMemory: 0.9})
					defer c.Close()
					sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu", MaxSlots: 100, RampThrottle: 50 * time.Millisecond,
						Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 10 * GiB}, SettleTime: tc.declared})
					require.NoError(t, err)
					res = sim.Run(sup, sim.Scenario{
						Host: h, Tasks: 100000, Pollers: 4, Duration: 150 * time.Second, Warmup: 50 * time.Second, Resource: "gpu", Target: 0.9,
						Task:   func(int) sim.Task { return sim.Task{GPU: 10 * GiB, Ramp: tc.ramp, Hold: hold} },
						Device: func(p *worker.SlotPermit) string { d, _ := sup.DeviceOf(p); return d },
					})
					st = sup.Stats()
					band, peakMax = 0.875, 0.92 // 7 loads of 10 GiB fit under 72 GiB
				} else {
					sc := slowAlloc(4)
					sc.Duration, sc.Warmup = 120*time.Second, 40*time.Second
					sc.Task = func(int) sim.Task { return sim.Task{Mem: 0.03, Ramp: tc.ramp, Hold: hold} }
					c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
					defer c.Close()
					sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "activity", MinSlots: 1, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond,
						Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 3 / 100}, SettleTime: tc.declared})
					require.NoError(t, err)
					res = sim.Run(sup, sc)
					st = sup.Stats()
					band, peakMax = 0.8, 0.82
				}
				life := float64(tc.ramp/2 + hold)
				base := 0.2
				if tc.gpu {
					base = 0
				}
				ceiling := base + (band-base)*life/float64(tc.ramp+hold)
				t.Logf("peak %.3f mean %.3f (ceiling %.3f) settle %v (true %v, declared %v)", res.Peak, res.Mean, ceiling, st.SettleTime, tc.ramp, tc.declared)
				assert.LessOrEqual(t, res.Peak, peakMax, "no overshoot")
				assert.Zero(t, res.Above1)
				assert.InDelta(t, 1, float64(st.SettleTime)/float64(tc.ramp), 0.45, "learned settle time within ±45%% of the true ramp")
				assert.GreaterOrEqual(t, res.Mean, 0.9*ceiling, "utilization after learning")
				assert.Zero(t, res.Outstanding)
			})
		})
	}
}

// The shape a real model load has (seen on an H100: PyTorch's import, then
// 8 GiB in 2 s): nothing for seconds, then all of it. A linear settle time
// spreads the footprint from the start and undercounts until it shows; on
// the H100 eight loads got in where five fitted, with the settle time
// declared right (6 s) or short (1 s). The pending floor (a used slot's cost
// stays pending until the readings show it) holds both.
func TestLateFootprintNoOvershoot(t *testing.T) {
	for _, declared := range []time.Duration{time.Second, 6 * time.Second} {
		t.Run(declared.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * GiB}}}
				const target = 0.55 // five 8 GiB loads fit, six do not
				c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.9, TargetGPUMemory: target})
				defer c.Close()
				sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu", MinSlots: 1, MaxSlots: 20,
					Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 8 * GiB}, SettleTime: declared})
				require.NoError(t, err)
				res := sim.Run(sup, sim.Scenario{
					Host: h, Tasks: 100000, Pollers: 8, Duration: 60 * time.Second, Warmup: 10 * time.Second, Resource: "gpu", Target: target,
					Task: func(int) sim.Task {
						return sim.Task{GPU: 8 * GiB, Delay: 3500 * time.Millisecond, Ramp: 2 * time.Second, Hold: 2 * time.Second}
					},
					Device: func(p *worker.SlotPermit) string { d, _ := sup.DeviceOf(p); return d },
				})
				st := sup.Stats()
				t.Logf("declared %v: peak %.3f mean %.3f, learned settle %v (onset %v) cost %.2f GiB, done %d", declared, res.Peak, res.Mean, st.SettleTime, st.SettleOnset, float64(st.Cost.GPUMemoryBytes)/GiB, res.Completed)
				assert.LessOrEqual(t, res.Peak, target+0.02)
				assert.Greater(t, res.Peak, 0.45, "and fills the device: five loads are 0.50")
				assert.Zero(t, res.Outstanding)
			})
		})
	}
}

// A model load's footprint shows late: nothing while the process imports its
// libraries, then all of it. Learned against the wrong shape (a footprint
// that grows from the start), the cost came out 2.4× the truth and halved
// throughput; the settle fit now also tries footprints that start late.
func TestLateFootprintCostIsLearned(t *testing.T) {
	for _, declared := range []time.Duration{2 * time.Second, 6 * time.Second} {
		t.Run(declared.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &sim.Host{BaseMem: 0.2, MemLimit: 64 * GiB}
				c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8})
				defer c.Close()
				sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "loads", MinSlots: 1, MaxSlots: 100,
					Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 6 / 100}, SettleTime: declared})
				require.NoError(t, err)
				task := sim.Task{Mem: 0.06, Delay: 3500 * time.Millisecond, Ramp: 2 * time.Second, Hold: 2 * time.Second}
				res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 100000, Pollers: 8, Duration: 90 * time.Second, Warmup: 30 * time.Second,
					Resource: "memory", Target: 0.8, Task: func(int) sim.Task { return task }})
				st := sup.Stats()
				cost := float64(st.Cost.MemoryBytes) / float64(64*GiB)
				// Ten 6 % tasks fit; each lasts 7.5 s: 120 in 90 s at best.
				t.Logf("declared %v: peak %.3f mean %.3f, learned cost %.4f settle %v (onset %v), done %d", declared, res.Peak, res.Mean, cost, st.SettleTime, st.SettleOnset, res.Completed)
				assert.LessOrEqual(t, res.Peak, 0.82)
				assert.InDelta(t, 0.06, cost, 0.012, "the cost learned is the task's footprint")
				assert.GreaterOrEqual(t, res.Completed, 90)
				assert.Zero(t, res.Outstanding)
			})
		})
	}
}

// Idle baselines are learned while no slot is used. Usage by something else
// that grows while the worker stays busy is taken for larger tasks: the cost
// learned rises and admission gets more careful, never less (0.2 → 0.35 of
// memory over 30 s: the cost doubled, or tripled for late footprints, and
// throughput fell to 64 % and 40 % of a steady host's).
func TestForeignGrowthWhileBusyNoOvershoot(t *testing.T) {
	for _, late := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", late), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &sim.Host{BaseMem: 0.2, MemLimit: 64 * GiB}
				c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.8})
				defer c.Close()
				sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "m", MinSlots: 1, MaxSlots: 100,
					Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 6 / 100}, SettleTime: 2 * time.Second})
				require.NoError(t, err)
				go func() {
					for i := 1; i <= 30; i++ {
						time.Sleep(time.Second)
						h.SetBaseMem(0.2 + 0.15*float64(i)/30)
					}
				}()
				task := sim.Task{Mem: 0.06, Ramp: 2 * time.Second, Hold: 3 * time.Second}
				if late {
					task = sim.Task{Mem: 0.06, Delay: 3500 * time.Millisecond, Ramp: 2 * time.Second, Hold: 2 * time.Second}
				}
				res := sim.Run(sup, sim.Scenario{Host: h, Tasks: 100000, Pollers: 8, Duration: 120 * time.Second, Warmup: 10 * time.Second,
					Resource: "memory", Target: 0.8, Task: func(int) sim.Task { return task }})
				st := sup.Stats()
				t.Logf("peak %.3f mean %.3f, learned cost %.4f, done %d", res.Peak, res.Mean, float64(st.Cost.MemoryBytes)/float64(64*GiB), res.Completed)
				assert.LessOrEqual(t, res.Peak, 0.82)
				assert.Greater(t, res.Completed, 40, "and keeps working")
				assert.Zero(t, res.Outstanding)
			})
		})
	}
}
