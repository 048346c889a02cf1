package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// BenchmarkDecisionWithReadings times each TryReserveSlot (and its release)
// while 1,000 slots are used and a new reading arrives every millisecond, so
// that decisions land on, just after and between readings: the sampler's
// work under the controller's lock (copying the used slots for the learner,
// re-summing the ledger, walking waiters) shows in the tail. It reports
// p50, p99 and max in ns of every decision (p50-ns, p99-ns, max-ns) and of
// the first decision after each reading (first-p50-ns, first-p99-ns), and
// how many readings there were (readings).
func BenchmarkDecisionWithReadings(b *testing.B) {
	src := testutil.NewSource(resources.Usage{CPU: 0.2, CPUCores: 64, Memory: 0.3, MemoryBytes: 30 << 30, MemoryLimitBytes: 100 << 30})
	c, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.95, TargetCPU: 0.95, Source: src, Logger: testutil.NopLogger,
		SampleInterval: time.Millisecond, StaleAfter: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitReady(context.Background()); err != nil {
		b.Fatal(err)
	}
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MaxSlots: 2000, TrustCost: true, Cost: tuner.Cost{MemoryBytes: 1 << 20, CPUCores: 0.01}})
	if err != nil {
		b.Fatal(err)
	}
	used := make([]*testutil.ReleaseInfo, 0, 1000)
	for range 1000 {
		p := sup.TryReserveSlot(info)
		if p == nil {
			b.Fatal("refused while filling")
		}
		sup.MarkSlotUsed(&testutil.MarkUsedInfo{P: p})
		used = append(used, &testutil.ReleaseInfo{P: p})
	}
	defer func() {
		for _, r := range used {
			sup.ReleaseSlot(r)
		}
	}()
	reads0 := src.Reads()
	rel := &testutil.ReleaseInfo{}
	lat := make([]time.Duration, 0, 1<<20)
	var first []time.Duration
	last := src.Reads()
	for b.Loop() {
		n := src.Reads()
		t0 := time.Now()
		p := sup.TryReserveSlot(info)
		d := time.Since(t0)
		if p == nil {
			b.Fatal("refused")
		}
		rel.P = p
		sup.ReleaseSlot(rel)
		if len(lat) < cap(lat) {
			lat = append(lat, d)
		}
		if n != last {
			first, last = append(first, d), n
		}
	}
	q := func(v []time.Duration, f float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return float64(v[min(len(v)-1, int(f*float64(len(v))))])
	}
	b.ReportMetric(q(lat, 0.5), "p50-ns")
	b.ReportMetric(q(lat, 0.99), "p99-ns")
	b.ReportMetric(q(lat, 1), "max-ns")
	b.ReportMetric(q(first, 0.5), "first-p50-ns")
	b.ReportMetric(q(first, 0.99), "first-p99-ns")
	b.ReportMetric(float64(src.Reads()-reads0), "readings")
}
