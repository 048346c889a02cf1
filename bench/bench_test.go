package bench

import (
	"context"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

var info = &testutil.ReservationInfo{Queue: "q", Kind: enumspb.TASK_QUEUE_KIND_NORMAL}

// BenchmarkSnapshotRead is what every slot decision pays to see the readings.
func BenchmarkSnapshotRead(b *testing.B) {
	m, err := resources.NewMonitor(resources.MonitorOptions{Source: testutil.NewSource(resources.Usage{}), Logger: testutil.NopLogger})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ReportAllocs()
	var s *resources.Snapshot
	for b.Loop() {
		s = m.Snapshot()
	}
	_ = s
}

// BenchmarkMonitorSample is one real CPU+memory reading of this host
// (cgroup files or /proc), paid on the Monitor's goroutine, never per slot.
func BenchmarkMonitorSample(b *testing.B) {
	src, err := resources.NewSystemSource(resources.SystemSourceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := src.Read(ctx); err != nil { // first read waits one CPU window
		b.Fatal(err)
	}
	time.Sleep(resources.MinCPUWindow)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func headroomSupplier(b *testing.B) worker.SlotSupplier {
	c, err := tuner.NewController(tuner.ControllerOptions{
		TargetMemory: 0.8, TargetCPU: 0.9, Logger: testutil.NopLogger,
		Source: testutil.NewSource(resources.Usage{CPU: 0.2, CPUCores: 8, Memory: 0.3, MemoryBytes: 3 << 30, MemoryLimitBytes: 10 << 30}),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.WaitReady(context.Background()); err != nil {
		b.Fatal(err)
	}
	// TrustCost: the steady state of a supplier whose cost has been
	// confirmed (with a static reading, probing would never end and would
	// refuse a second slot in flight).
	s, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MinSlots: 0, MaxSlots: 1000, TrustCost: true, Cost: tuner.Cost{MemoryBytes: 1 << 20, CPUCores: 0.01}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func sdkResourceSupplier(b *testing.B) worker.SlotSupplier {
	m, err := resources.NewMonitor(resources.MonitorOptions{Logger: testutil.NopLogger,
		Source: testutil.NewSource(resources.Usage{CPU: 0.2, CPUCores: 8, Memory: 0.3, MemoryBytes: 3 << 30, MemoryLimitBytes: 10 << 30})})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	if err := m.WaitReady(context.Background()); err != nil {
		b.Fatal(err)
	}
	opts := worker.DefaultResourceControllerOptions()
	opts.InfoSupplier = resources.NewSysInfoProvider(m)
	s, err := worker.NewResourceBasedSlotSupplier(worker.NewResourceController(opts),
		worker.ResourceBasedSlotSupplierOptions{MinSlots: 0, MaxSlots: 1000})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func fixedSupplier(b *testing.B) worker.SlotSupplier {
	s, err := worker.NewFixedSizeSlotSupplier(1000)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

var suppliers = []struct {
	name string
	make func(*testing.B) worker.SlotSupplier
}{
	{"headroom", headroomSupplier},
	{"sdk-fixed", fixedSupplier},
	{"sdk-resource", sdkResourceSupplier},
}

// BenchmarkTryReserveSlot: one TryReserveSlot (the eager-dispatch hot path)
// followed by its ReleaseSlot, so every iteration finds a free slot.
func BenchmarkTryReserveSlot(b *testing.B) {
	for _, s := range suppliers {
		b.Run("impl="+s.name+"/mode=serial", func(b *testing.B) {
			sup := s.make(b)
			rel := &testutil.ReleaseInfo{} // reused: measure the supplier, not interface boxing
			b.ReportAllocs()
			for b.Loop() {
				p := sup.TryReserveSlot(info)
				if p == nil {
					b.Fatal("refused")
				}
				rel.P = p
				sup.ReleaseSlot(rel)
			}
		})
		b.Run("impl="+s.name+"/mode=parallel", func(b *testing.B) {
			sup := s.make(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rel := &testutil.ReleaseInfo{}
				for pb.Next() {
					p := sup.TryReserveSlot(info)
					if p == nil {
						b.Error("refused")
						return
					}
					rel.P = p
					sup.ReleaseSlot(rel)
				}
			})
		})
	}
}

// BenchmarkReserveUseRelease is a full task cycle: ReserveSlot, MarkSlotUsed,
// ReleaseSlot.
func BenchmarkReserveUseRelease(b *testing.B) {
	ctx := context.Background()
	for _, s := range suppliers {
		b.Run("impl="+s.name+"/mode=serial", func(b *testing.B) {
			sup := s.make(b)
			used, rel := &testutil.MarkUsedInfo{}, &testutil.ReleaseInfo{}
			b.ReportAllocs()
			for b.Loop() {
				p, err := sup.ReserveSlot(ctx, info)
				if err != nil {
					b.Fatal(err)
				}
				used.P, rel.P = p, p
				sup.MarkSlotUsed(used)
				sup.ReleaseSlot(rel)
			}
		})
		b.Run("impl="+s.name+"/mode=parallel", func(b *testing.B) {
			sup := s.make(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				used, rel := &testutil.MarkUsedInfo{}, &testutil.ReleaseInfo{}
				for pb.Next() {
					p, err := sup.ReserveSlot(ctx, info)
					if err != nil {
						b.Error(err)
						return
					}
					used.P, rel.P = p, p
					sup.MarkSlotUsed(used)
					sup.ReleaseSlot(rel)
				}
			})
		})
	}
}

// BenchmarkMonitorOverhead runs a real Monitor at default settings for a
// minute and reports the process CPU time it used as a fraction of one core
// (metric "core-fraction"). Nothing else runs meanwhile.
func BenchmarkMonitorOverhead(b *testing.B) {
	for b.Loop() {
		var before, after syscall.Rusage
		m, err := resources.NewMonitor(resources.MonitorOptions{Logger: testutil.NopLogger})
		if err != nil {
			b.Fatal(err)
		}
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
			b.Fatal(err)
		}
		const window = time.Minute
		time.Sleep(window)
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
			b.Fatal(err)
		}
		m.Close()
		cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
		b.ReportMetric(cpu.Seconds()/window.Seconds(), "core-fraction")
	}
}
