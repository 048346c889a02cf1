package resources_test

import (
	"context"
	"errors"
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
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMonitorPublishesSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := testutil.NewSource(resources.Usage{CPU: 0.1, Memory: 0.2})
		g := testutil.NewGPU(gpu.Device{UUID: "GPU-a", UsedBytes: 1, TotalBytes: 4})
		m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, GPU: g, Interval: 100 * time.Millisecond, Logger: testutil.NopLogger})
		require.NoError(t, err)
		defer m.Close()

		require.NotNil(t, m.Snapshot(), "a snapshot exists before the first reading")
		require.NoError(t, m.WaitReady(context.Background()))
		s := m.Snapshot()
		assert.Equal(t, 0.2, s.Usage.Memory)
		assert.Equal(t, []gpu.Device{{UUID: "GPU-a", UsedBytes: 1, TotalBytes: 4}}, s.GPUs)
		assert.NoError(t, s.UsageOK(time.Now()))
		assert.NoError(t, s.GPUOK(time.Now()))

		// Superseded by a change this test makes (the first reading may be
		// published before the test can look at the snapshot before it).
		src.Set(resources.Usage{CPU: 0.5, Memory: 0.6})
		<-s.Changed()
		select {
		case <-s.Changed(): // received twice: closed, not sent on
		default:
			t.Fatal("a superseded snapshot's Changed channel must be closed")
		}
		next := m.Snapshot()
		assert.Greater(t, next.Seq, s.Seq)
		assert.Equal(t, 0.6, next.Usage.Memory)
		assert.Equal(t, 800*time.Millisecond, m.Snapshot().StaleAfter, "default: 8 intervals")
	})
}

func TestMonitorFailureAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := testutil.NewSource(resources.Usage{Memory: 0.3})
		m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Interval: 100 * time.Millisecond, StaleAfter: 300 * time.Millisecond, Logger: testutil.NopLogger})
		require.NoError(t, err)
		defer m.Close()
		require.NoError(t, m.WaitReady(context.Background()))
		good := m.Snapshot()
		assert.ErrorIs(t, good.GPUOK(time.Now()), gpu.ErrNoGPU, "no GPU source: GPU readings are never OK")

		boom := errors.New("sensor gone")
		src.Fail(boom)
		time.Sleep(150 * time.Millisecond)
		s := m.Snapshot()
		assert.ErrorIs(t, s.UsageOK(time.Now()), boom)
		assert.Equal(t, good.UsageAt, s.UsageAt, "a failed read keeps the last good reading's time")
		assert.Equal(t, 0.3, s.Usage.Memory)

		src.Set(resources.Usage{Memory: 0.4})
		time.Sleep(100 * time.Millisecond)
		s = m.Snapshot()
		require.NoError(t, s.UsageOK(time.Now()))
		assert.Equal(t, 0.4, s.Usage.Memory)
		// Staleness is judged by the reader's clock: a snapshot nobody replaced
		// (a hung sampler) goes stale by itself.
		assert.ErrorIs(t, s.UsageOK(time.Now().Add(time.Second)), resources.ErrStale)
	})
}

func TestMonitorOptions(t *testing.T) {
	for _, tt := range []struct {
		opts  resources.MonitorOptions
		field string
	}{
		{resources.MonitorOptions{Interval: -1}, "Interval"},
		{resources.MonitorOptions{StaleAfter: -1}, "StaleAfter"},
		{resources.MonitorOptions{Interval: time.Second, StaleAfter: time.Millisecond}, "StaleAfter"},
	} {
		tt.opts.Source = testutil.NewSource(resources.Usage{})
		_, err := resources.NewMonitor(tt.opts)
		require.ErrorIs(t, err, resources.ErrInvalidOptions)
		assert.Contains(t, err.Error(), tt.field)
	}
}

func TestMonitorCloseStopsSampling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := testutil.NewSource(resources.Usage{})
		m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Interval: 10 * time.Millisecond, Logger: testutil.NopLogger})
		require.NoError(t, err)
		time.Sleep(55 * time.Millisecond)
		require.NoError(t, m.Close())
		require.NoError(t, m.Close(), "Close is idempotent")
		n := src.Reads()
		time.Sleep(time.Second)
		assert.Equal(t, n, src.Reads(), "no reads after Close")
	})
}

func TestSnapshotReadDoesNotAllocate(t *testing.T) {
	m, err := resources.NewMonitor(resources.MonitorOptions{Source: testutil.NewSource(resources.Usage{}), Logger: testutil.NopLogger})
	require.NoError(t, err)
	defer m.Close()
	var s *resources.Snapshot
	allocs := testing.AllocsPerRun(1000, func() { s = m.Snapshot() })
	assert.Zero(t, allocs)
	assert.NotNil(t, s)
}

// The SDK's own resource-based tuner, fed by our provider, admits while our
// readings are under its targets and stops when they are not.
func TestSDKResourceTunerOnSysInfoProvider(t *testing.T) {
	src := testutil.NewSource(resources.Usage{CPU: 0.1, Memory: 0.5})
	m, err := resources.NewMonitor(resources.MonitorOptions{Source: src, Interval: 10 * time.Millisecond, Logger: testutil.NopLogger})
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, m.WaitReady(context.Background()))
	provider := resources.NewSysInfoProvider(m)

	tuner, err := worker.NewResourceBasedTuner(worker.ResourceBasedTunerOptions{
		TargetMem: 0.8, TargetCpu: 0.9, InfoSupplier: provider, ActivityRampThrottle: time.Millisecond,
	})
	require.NoError(t, err)
	sup := tuner.GetActivityTaskSlotSupplier()
	issued := &atomic.Int64{}
	issued.Store(5) // past MinSlots: decisions come from readings
	info := &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_NORMAL, Issued: issued}

	time.Sleep(5 * time.Millisecond)
	assert.NotNil(t, sup.TryReserveSlot(info), "memory 0.5 < 0.8: the SDK tuner admits")

	src.Set(resources.Usage{CPU: 0.1, Memory: 0.85})
	testutil.WaitSnapshot(t, m, func(s *resources.Snapshot) bool { return s.Usage.Memory == 0.85 })
	time.Sleep(5 * time.Millisecond)
	assert.Nil(t, sup.TryReserveSlot(info), "memory 0.85 ≥ 0.8: the SDK tuner refuses")

	src.Fail(errors.New("sensor gone"))
	testutil.WaitSnapshot(t, m, func(s *resources.Snapshot) bool { return s.UsageErr != nil })
	_, err = provider.MemoryUsage(&worker.SysInfoContext{})
	assert.Error(t, err, "failing readings are reported, not replaced by stale numbers")
	_, err = provider.CpuUsage(&worker.SysInfoContext{})
	assert.Error(t, err)

	// Worker heartbeats find the provider through HasSysInfoProvider.
	hp, ok := tuner.GetWorkflowTaskSlotSupplier().(worker.HasSysInfoProvider)
	require.True(t, ok)
	assert.Same(t, provider, hp.SysInfoProvider())
}
