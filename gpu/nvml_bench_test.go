//go:build linux && cgo

package gpu

import (
	"context"
	"testing"
	"time"
)

// BenchmarkNVMLDevices is one Devices call of the adapter over go-nvml's mock
// (two GPUs, memory v2): the adapter's own cost, without the driver's ~12 µs
// per memory query.
func BenchmarkNVMLDevices(b *testing.B) {
	s, err := newNVMLSource(newFakeLib(true, h100, a100), selector{}, time.Now, NVMLOptions{}.health())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Devices(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
