package tuner_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
	"go.uber.org/goleak"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var info = &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_NORMAL}

func fixedController(t *testing.T, u resources.Usage, opts tuner.ControllerOptions) (*tuner.Controller, *testutil.Source) {
	t.Helper()
	src := testutil.NewSource(u)
	opts.Source, opts.Logger = src, testutil.NopLogger
	if opts.SampleInterval == 0 {
		opts.SampleInterval = 10 * time.Millisecond
	}
	c, err := tuner.NewController(opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.WaitReady(context.Background()))
	return c, src
}

func TestOptionsValidation(t *testing.T) {
	_, err := tuner.NewController(tuner.ControllerOptions{})
	require.ErrorIs(t, err, tuner.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "TargetCPU")
	for _, bad := range []tuner.ControllerOptions{{TargetMemory: 1.5}, {TargetMemory: -0.1}, {TargetCPU: 0.5, SampleInterval: -1}} {
		_, err := tuner.NewController(bad)
		assert.ErrorIs(t, err, tuner.ErrInvalidOptions, "%+v", bad)
	}
	t.Setenv("CUDA_VISIBLE_DEVICES", "") // no GPU visible, even on a GPU host
	_, err = tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.8, TargetGPUMemory: 0.9, Source: testutil.NewSource(resources.Usage{})})
	require.ErrorIs(t, err, tuner.ErrInvalidOptions, "no GPU visible")
	assert.ErrorIs(t, err, gpu.ErrNoGPU)
	assert.Contains(t, err.Error(), "TargetGPUMemory")

	c, _ := fixedController(t, resources.Usage{}, tuner.ControllerOptions{TargetMemory: 0.8})
	for _, tt := range []struct {
		opts  tuner.SlotSupplierOptions
		field string
	}{
		{tuner.SlotSupplierOptions{MaxSlots: 0}, "MaxSlots"},
		{tuner.SlotSupplierOptions{MaxSlots: 2, MinSlots: 3}, "MinSlots"},
		{tuner.SlotSupplierOptions{MaxSlots: 2, MinSlots: -1}, "MinSlots"},
		{tuner.SlotSupplierOptions{MaxSlots: 2, RampThrottle: -1}, "RampThrottle"},
		{tuner.SlotSupplierOptions{MaxSlots: 2, Cost: tuner.Cost{CPUCores: -1}}, "Cost.CPUCores"},
		{tuner.SlotSupplierOptions{MaxSlots: 2, Resources: tuner.GPUMemory}, "Resources"},
	} {
		_, err := tuner.NewSlotSupplier(c, tt.opts)
		require.ErrorIs(t, err, tuner.ErrInvalidOptions, tt.field)
		assert.Contains(t, err.Error(), tt.field)
	}
	_, err = tuner.NewSlotSupplier(nil, tuner.SlotSupplierOptions{MaxSlots: 1})
	assert.ErrorIs(t, err, tuner.ErrInvalidOptions)
	_, err = tuner.New(tuner.Options{Shared: c, Activity: tuner.SlotSupplierOptions{MinSlots: 1}})
	require.ErrorIs(t, err, tuner.ErrInvalidOptions)
	assert.Contains(t, err.Error(), "Activity: ")
	assert.Contains(t, err.Error(), "MaxSlots")
}

func TestMinMaxAndAccounting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Memory already over target: only MinSlots are admitted.
		c, src := fixedController(t, resources.Usage{Memory: 0.95, MemoryLimitBytes: GiB, CPUCores: 4}, tuner.ControllerOptions{TargetMemory: 0.8})
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MinSlots: 2, MaxSlots: 3, Resources: tuner.Memory})
		require.NoError(t, err)
		assert.Equal(t, 3, sup.MaxSlots())
		p1, p2 := sup.TryReserveSlot(info), sup.TryReserveSlot(info)
		require.NotNil(t, p1)
		require.NotNil(t, p2)
		assert.Nil(t, sup.TryReserveSlot(info), "over target: nothing above MinSlots")
		assert.Equal(t, uint64(1), sup.Stats().Refused[tuner.ReasonMemory])

		src.Set(resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB, CPUCores: 4})
		time.Sleep(5 * time.Second) // the usage of everything else is smoothed over a second
		p3 := sup.TryReserveSlot(info)
		require.NotNil(t, p3)
		assert.Nil(t, sup.TryReserveSlot(info), "never above MaxSlots")
		assert.Equal(t, uint64(1), sup.Stats().Refused[tuner.ReasonMax])

		sup.MarkSlotUsed(testutil.MarkUsedInfo{P: p1})
		assert.Equal(t, 1, sup.Stats().Used)
		for _, p := range []*worker.SlotPermit{p1, p2, p3} {
			sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
		}
		sup.ReleaseSlot(testutil.ReleaseInfo{P: p1}) // twice: logged, not counted
		sup.ReleaseSlot(testutil.ReleaseInfo{P: &worker.SlotPermit{}})
		st := sup.Stats()
		assert.Zero(t, st.Issued)
		assert.Zero(t, st.Used)
	})
}

func TestRampThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := fixedController(t, resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8})
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: 10, RampThrottle: time.Second, Resources: tuner.Memory})
		require.NoError(t, err)
		require.NotNil(t, sup.TryReserveSlot(info))
		assert.Nil(t, sup.TryReserveSlot(info), "throttled")
		start := time.Now()
		p, err := sup.ReserveSlot(context.Background(), info)
		require.NoError(t, err)
		require.NotNil(t, p)
		assert.Equal(t, time.Second, time.Since(start), "ReserveSlot waits out the throttle exactly")
	})
}

func TestFailClosedOnSensorFailureAndRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, src := fixedController(t, resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8})
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MinSlots: 1, MaxSlots: 10, Resources: tuner.Memory})
		require.NoError(t, err)
		src.Fail(errors.New("cgroup gone"))
		time.Sleep(20 * time.Millisecond)
		p := sup.TryReserveSlot(info)
		require.NotNil(t, p, "MinSlots still admitted")
		assert.Nil(t, sup.TryReserveSlot(info), "failing sensor: closed above MinSlots")
		assert.Equal(t, uint64(1), sup.Stats().Refused[tuner.ReasonStale])

		got := make(chan *worker.SlotPermit)
		go func() {
			p, _ := sup.ReserveSlot(context.Background(), info)
			got <- p
		}()
		time.Sleep(time.Second)
		src.Set(resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB})
		select {
		case p2 := <-got:
			require.NotNil(t, p2, "recovers by itself when readings return")
			sup.ReleaseSlot(testutil.ReleaseInfo{P: p2})
		case <-time.After(time.Second):
			t.Fatal("reservation did not resume after recovery")
		}
		sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
	})
}

func TestStaleSnapshotFailsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A source that hangs: no new snapshot is ever published.
		block := make(chan struct{})
		src := hangingSource{testutil.NewSource(resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB}), block, &atomic.Bool{}}
		c, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.8, Source: src, SampleInterval: 10 * time.Millisecond, StaleAfter: 100 * time.Millisecond, Logger: testutil.NopLogger})
		require.NoError(t, err)
		require.NoError(t, c.WaitReady(context.Background()))
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: 10, Resources: tuner.Memory})
		require.NoError(t, err)
		p := sup.TryReserveSlot(info)
		require.NotNil(t, p)
		src.hang.Store(true)
		time.Sleep(200 * time.Millisecond)
		assert.Nil(t, sup.TryReserveSlot(info), "stale reading admits nothing above MinSlots")
		sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
		close(block)
		require.NoError(t, c.Close())
	})
}

type hangingSource struct {
	*testutil.Source
	block chan struct{}
	hang  *atomic.Bool
}

func (h hangingSource) Read(ctx context.Context) (resources.Usage, error) {
	if h.hang.Load() {
		select {
		case <-h.block:
		case <-ctx.Done():
			return resources.Usage{}, ctx.Err()
		}
	}
	return h.Source.Read(ctx)
}

func TestReserveSlotCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := fixedController(t, resources.Usage{Memory: 0.9, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8})
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: 10, Resources: tuner.Memory})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := sup.ReserveSlot(ctx, info)
			errc <- err
		}()
		time.Sleep(5 * time.Second)
		cancel()
		synctest.Wait()
		assert.ErrorIs(t, <-errc, context.Canceled)
		assert.Zero(t, sup.Stats().Issued)
	})
}

// oneSlotHeld returns a one-slot supplier whose slot is held, on a controller
// that publishes no new snapshot for an hour: only a release can wake a
// reserver.
func oneSlotHeld(t *testing.T) (*tuner.SlotSupplier, *worker.SlotPermit) {
	t.Helper()
	c, _ := fixedController(t, resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8, SampleInterval: time.Hour, StaleAfter: 100 * time.Hour})
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: 1, Resources: tuner.Memory})
	require.NoError(t, err)
	p := sup.TryReserveSlot(info)
	require.NotNil(t, p)
	return sup, p
}

func TestReserveWakesOnRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup, p := oneSlotHeld(t)
		got := make(chan time.Time)
		go func() {
			_, _ = sup.ReserveSlot(context.Background(), info)
			got <- time.Now()
		}()
		time.Sleep(3 * time.Second)
		released := time.Now()
		sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
		assert.Equal(t, released, <-got, "woken by the release, with no new snapshot (interval 1 h)")
	})
}

// A release that lands between a reserver's refusal and its wait must still
// wake it: with no new snapshot for an hour, a missed wake-up shows as the
// fake clock moving.
func TestReleaseRacingARefusalWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sup, p := oneSlotHeld(t)
		start := time.Now()
		for range 2000 {
			got := make(chan *worker.SlotPermit)
			go func() {
				q, _ := sup.ReserveSlot(context.Background(), info)
				got <- q
			}()
			go sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
			p = <-got
			require.NotNil(t, p)
			require.Equal(t, start, time.Now(), "a reserver slept through a release")
		}
		sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
		assert.Zero(t, sup.Stats().Issued)
	})
}

func TestWorkflowPollersNeverStarve(t *testing.T) {
	c, _ := fixedController(t, resources.Usage{Memory: 0.95, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8})
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MinSlots: 1, MaxSlots: 4, Resources: tuner.Memory})
	require.NoError(t, err)
	sticky := &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_STICKY}
	normal := &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_NORMAL}
	p1 := sup.TryReserveSlot(sticky)
	require.NotNil(t, p1, "MinSlots")
	assert.Nil(t, sup.TryReserveSlot(sticky), "over target")
	p2 := sup.TryReserveSlot(normal)
	require.NotNil(t, p2, "the normal queue's first slot is admitted even over target")
	assert.Nil(t, sup.TryReserveSlot(normal))
	sup.ReleaseSlot(testutil.ReleaseInfo{P: p1})
	sup.ReleaseSlot(testutil.ReleaseInfo{P: p2})
}

// A worker's guaranteed slots (MinSlots, a workflow poller's first of each
// queue kind) are admitted even while another supplier's ReserveSlot waits
// for the same resource: the example's workflow pollers once waited behind a
// CPU activity that waited for room, and every pipeline stalled.
func TestWaitersDoNotHoldBackGuaranteedSlots(t *testing.T) {
	c, _ := fixedController(t, resources.Usage{CPU: 0.5, CPUCores: 2}, tuner.ControllerOptions{TargetCPU: 0.9})
	act, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "activity", TrustCost: true, MaxSlots: 4, Resources: tuner.CPU, Cost: tuner.Cost{CPUCores: 1.5}})
	require.NoError(t, err)
	wf, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "workflow", MinSlots: 1, MaxSlots: 10, Resources: tuner.CPU})
	require.NoError(t, err)
	local, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "local", MinSlots: 2, MaxSlots: 10, Resources: tuner.CPU})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error)
	go func() {
		_, err := act.ReserveSlot(ctx, info) // 1 of 2 cores in use: 1.5 more does not fit under 1.8
		waited <- err
	}()
	require.Eventually(t, func() bool { return act.Stats().Refused[tuner.ReasonCPU] > 0 }, 5*time.Second, time.Millisecond)

	sticky := &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_STICKY}
	type grant struct {
		s *tuner.SlotSupplier
		p *worker.SlotPermit
	}
	var held []grant
	for i, r := range []struct {
		s  *tuner.SlotSupplier
		in *testutil.ReservationInfo
	}{{wf, sticky}, {wf, info}, {local, info}, {local, info}} { // MinSlots, the normal poller's first, MinSlots ×2
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		p, err := r.s.ReserveSlot(rctx, r.in)
		rcancel()
		require.NoError(t, err, "guaranteed slot %d waited behind the activity", i)
		held = append(held, grant{r.s, p})
	}
	assert.Nil(t, local.TryReserveSlot(info), "above MinSlots the waiter comes first")
	assert.Nil(t, act.TryReserveSlot(info), "the waiter keeps its place for the activity")
	cancel()
	assert.ErrorIs(t, <-waited, context.Canceled)
	for _, g := range held {
		g.s.ReleaseSlot(testutil.ReleaseInfo{P: g.p})
	}
	assert.Zero(t, wf.Stats().Issued+local.Stats().Issued)
}

// runGPU runs 10 GiB model loads (3 s ramp, 5 s hold) on h's devices through
// a GPU supplier with the matching prior; tasks run on the device their
// permit was bound to.
func runGPU(t *testing.T, h *sim.Host, target float64, pollers int, linger, releaseDelay time.Duration) (sim.Result, *tuner.SlotSupplier) {
	c := newController(t, h, tuner.ControllerOptions{TargetMemory: 0.9, TargetGPUMemory: target})
	defer c.Close()
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu", MaxSlots: 100, RampThrottle: 50 * time.Millisecond,
		Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 10 * GiB}})
	require.NoError(t, err)
	res := sim.Run(sup, sim.Scenario{
		Host: h, Tasks: 100000, Pollers: pollers, Duration: 40 * time.Second, Warmup: 8 * time.Second, Resource: "gpu", Target: target,
		Task: func(int) sim.Task {
			return sim.Task{GPU: 10 * GiB, Ramp: 3 * time.Second, Hold: 5 * time.Second, Linger: linger, ReleaseDelay: releaseDelay}
		},
		Device: func(p *worker.SlotPermit) string { d, _ := sup.DeviceOf(p); return d },
	})
	return res, sup
}

func TestGPUTwoDevicesFillBoth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * GiB}, {UUID: "GPU-1", Total: 80 * GiB}}}
		res, sup := runGPU(t, h, 0.9, 4, 0, 0)
		t.Logf("gpu: peak %.3f per device %v mean %.3f done %d", res.Peak, res.PerDevicePeak, res.Mean, res.Completed)
		assert.LessOrEqual(t, res.Peak, 0.92)
		for _, d := range []string{"GPU-0", "GPU-1"} {
			// 7 loads fit under 0.9; the margin (the fit's residual, here the
			// loads' ramps within age bins) sometimes leaves room for 6.
			assert.GreaterOrEqual(t, res.PerDevicePeak[d], 0.74, "both devices are filled: %s", d)
		}
		assert.Zero(t, res.Outstanding)
		assert.Zero(t, sup.Stats().Issued)
	})
}

func TestGPUSingleDeviceSlowLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &sim.Host{BaseMem: 0.1, Devices: []sim.Device{{UUID: "GPU-0", Total: 80 * GiB}}}
		res, sup := runGPU(t, h, 0.9, 2, 0, 0)
		t.Logf("gpu: peak %.3f mean %.3f done %d %+v", res.Peak, res.Mean, res.Completed, sup.Stats())
		assert.LessOrEqual(t, res.Peak, 0.92)
		assert.GreaterOrEqual(t, res.Peak, 0.74, "fills the device to within one load")
	})
}

func TestSensorFailureMidRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := slowAlloc(2)
		sc.Duration = 30 * time.Second
		src, _ := sc.Host.Sources()
		c, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.8, Source: src, SampleInterval: 100 * time.Millisecond, Logger: testutil.NopLogger})
		require.NoError(t, err)
		defer c.Close()
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MinSlots: 2, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: uint64(64*GiB) * 3 / 100}})
		require.NoError(t, err)
		go func() {
			time.Sleep(10 * time.Second)
			src.Fail(errors.New("sensor gone"))
			time.Sleep(10 * time.Second)
			src.SetFunc(sc.Host.Usage)
		}()
		var issuedDuringFailure, grantedAtRecovery, grantedAtEnd atomic.Int64
		go func() {
			time.Sleep(17 * time.Second) // failing for 7 s: every pre-failure task has finished
			issuedDuringFailure.Store(int64(sup.Stats().Issued))
			time.Sleep(3 * time.Second)
			grantedAtRecovery.Store(int64(sup.Stats().Granted))
			time.Sleep(9 * time.Second)
			grantedAtEnd.Store(int64(sup.Stats().Granted))
		}()
		res := sim.Run(sup, sc)
		assert.LessOrEqual(t, issuedDuringFailure.Load(), int64(2), "only MinSlots while the sensor fails")
		assert.LessOrEqual(t, res.Peak, 0.82)
		// Healthy rate: ~20 slots per 5 s task life, ~36 in 9 s.
		assert.Greater(t, grantedAtEnd.Load()-grantedAtRecovery.Load(), int64(25), "admission resumes at full rate after recovery")
	})
}

func TestManyGoroutinesExactAccounting(t *testing.T) {
	c, _ := fixedController(t, resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8})
	const max = 50
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: max, Resources: tuner.Memory})
	require.NoError(t, err)
	var inFlight, peak atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 10000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := sup.ReserveSlot(ctx, info)
			if err != nil {
				t.Error(err)
				return
			}
			n := inFlight.Add(1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			if i%2 == 0 {
				sup.MarkSlotUsed(testutil.MarkUsedInfo{P: p})
			}
			inFlight.Add(-1)
			sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
		}()
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int64(max), "issued ≤ MaxSlots at every instant")
	st := sup.Stats()
	assert.Zero(t, st.Issued, "nothing left reserved")
	assert.Zero(t, st.Used)
	assert.Equal(t, uint64(10000), st.Granted)
}

func TestTunerDefaults(t *testing.T) {
	tu, err := tuner.New(tuner.Options{Controller: tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.9, Source: testutil.NewSource(resources.Usage{}), Logger: testutil.NopLogger}})
	require.NoError(t, err)
	defer tu.Close()
	var wt worker.WorkerTuner = tu
	assert.Equal(t, 1000, wt.GetWorkflowTaskSlotSupplier().MaxSlots())
	assert.Equal(t, 1000, wt.GetActivityTaskSlotSupplier().MaxSlots())
	for _, s := range []worker.SlotSupplier{wt.GetLocalActivitySlotSupplier(), wt.GetNexusSlotSupplier(), wt.GetSessionActivitySlotSupplier()} {
		require.NotNil(t, s)
	}
	hp, ok := wt.GetWorkflowTaskSlotSupplier().(worker.HasSysInfoProvider)
	require.True(t, ok)
	assert.Same(t, hp.SysInfoProvider(), wt.GetActivityTaskSlotSupplier().(worker.HasSysInfoProvider).SysInfoProvider(), "one provider for the SDK's identity check")
}
func TestStalePermitCannotReleaseANewReservation(t *testing.T) {
	c, _ := fixedController(t, resources.Usage{Memory: 0.1, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetMemory: 0.8})
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: 1, Resources: tuner.Memory})
	require.NoError(t, err)
	old := sup.TryReserveSlot(info)
	require.NotNil(t, old)
	sup.ReleaseSlot(testutil.ReleaseInfo{P: old})
	fresh := sup.TryReserveSlot(info) // reuses the slot record
	require.NotNil(t, fresh)
	assert.NotSame(t, old, fresh, "permits are never reused: the SDK reads them after release")
	sup.ReleaseSlot(testutil.ReleaseInfo{P: old}) // a late duplicate release
	assert.Equal(t, 1, sup.Stats().Issued, "the duplicate did not release the new reservation")
	assert.Nil(t, sup.TryReserveSlot(info), "still at MaxSlots")
	sup.ReleaseSlot(testutil.ReleaseInfo{P: fresh})
	assert.Zero(t, sup.Stats().Issued)
}

// Pending is taken at the time of the reading it is added to. Between
// readings, a used slot's pending share must not shrink: whatever footprint
// appeared since the reading is in neither, and admitting on it overshoots.
func TestPendingPairsWithItsReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 0.49, not 0.5: the budget keeps a margin of the model's residual
		// deviation, a few hundredths of a GiB here.
		c, src := fixedController(t, resources.Usage{Memory: 0.49, MemoryLimitBytes: 10 * GiB},
			tuner.ControllerOptions{TargetMemory: 0.8, SampleInterval: time.Second, StaleAfter: time.Minute})
		// Declared 0.5 GiB: charged 1 GiB until confirmed.
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{TrustCost: true, MaxSlots: 10, Resources: tuner.Memory,
			Cost: tuner.Cost{MemoryBytes: GiB / 2}})
		require.NoError(t, err)
		var held []*worker.SlotPermit
		for range 3 { // 0.5 + 3 × 0.1 = 0.8: the budget is full
			p := sup.TryReserveSlot(info)
			require.NotNil(t, p)
			sup.MarkSlotUsed(testutil.MarkUsedInfo{P: p})
			held = append(held, p)
		}
		require.Nil(t, sup.TryReserveSlot(info))
		time.Sleep(900 * time.Millisecond) // settle time 90 % over, no new reading yet
		assert.Nil(t, sup.TryReserveSlot(info), "no headroom appears between readings")

		// The next reading shows the three footprints: still full.
		src.Set(resources.Usage{Memory: 0.8, MemoryLimitBytes: 10 * GiB})
		time.Sleep(time.Second)
		assert.Nil(t, sup.TryReserveSlot(info), "footprints shown, budget still full")

		// One task ends; its memory is gone only once a reading says so.
		sup.ReleaseSlot(testutil.ReleaseInfo{P: held[0]})
		assert.Nil(t, sup.TryReserveSlot(info), "a released slot's footprint stays until a reading shows it gone")
		for _, q := range held[1:] {
			sup.ReleaseSlot(testutil.ReleaseInfo{P: q})
		}
		assert.Zero(t, sup.Stats().Issued)
	})
}

// A slot reserved and not yet used holds its supplier's current cost: when
// the readings teach that the supplier's tasks are larger than declared, the
// slots its pollers already hold are charged at the larger cost, since that
// is what they will use, and other suppliers get only what is left.
func TestUnusedSlotsHoldTheLearnedCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A tenth of a GiB of slack everywhere, for the budget's margin.
		base := resources.Usage{Memory: 0.19, MemoryBytes: 19 * GiB / 10, MemoryLimitBytes: 10 * GiB}
		c, src := fixedController(t, base, tuner.ControllerOptions{TargetMemory: 0.8, SampleInterval: 100 * time.Millisecond, StaleAfter: time.Minute})
		time.Sleep(time.Second) // idle readings: the baseline
		learner, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "learner", TrustCost: true, MaxSlots: 10,
			Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: GiB}})
		require.NoError(t, err)
		// Charged 1 GiB: twice its declared cost, which no reading confirms.
		other, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "other", TrustCost: true, MaxSlots: 10,
			Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: GiB / 2}})
		require.NoError(t, err)

		// Two polls held unused; one task runs and really takes 2 GiB.
		polls := []*worker.SlotPermit{learner.TryReserveSlot(info), learner.TryReserveSlot(info)}
		task := learner.TryReserveSlot(info)
		require.NotNil(t, task)
		require.NotContains(t, polls, (*worker.SlotPermit)(nil))
		learner.MarkSlotUsed(testutil.MarkUsedInfo{P: task})
		src.Set(resources.Usage{Memory: 0.39, MemoryBytes: 39 * GiB / 10, MemoryLimitBytes: 10 * GiB})
		time.Sleep(20 * time.Second)
		cost := float64(learner.Stats().Cost.MemoryBytes)
		require.Greater(t, cost, 1.5*GiB, "the larger footprint was learned")

		// 0.8 target − 0.39 in use = 4.1 GiB, of which the two polls hold 2 × cost.
		fits := func(room float64) int { return int(math.Floor(room / GiB)) }
		take := func() (n int) {
			var ps []*worker.SlotPermit
			for p := other.TryReserveSlot(info); p != nil; p = other.TryReserveSlot(info) {
				ps = append(ps, p)
			}
			for _, p := range ps {
				other.ReleaseSlot(testutil.ReleaseInfo{P: p})
			}
			return len(ps)
		}
		assert.Equal(t, fits(4.1*GiB-2*cost), take(), "the held polls are charged at the learned cost")
		learner.ReleaseSlot(testutil.ReleaseInfo{P: polls[0]})
		assert.Equal(t, fits(4.1*GiB-cost), take(), "a released poll gives back exactly what it held %+v %+v", learner.Stats(), other.Stats())
		learner.ReleaseSlot(testutil.ReleaseInfo{P: polls[1]})
		assert.Equal(t, fits(4.1*GiB), take())
		learner.ReleaseSlot(testutil.ReleaseInfo{P: task})
		assert.Zero(t, learner.Stats().Issued+other.Stats().Issued)
	})
}
