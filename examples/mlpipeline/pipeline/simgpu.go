package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/routing"
)

// SimGPU is a simulated GPU for hosts without one: GPU stages load into it
// (it is their Loader) and the tuner reads it like NVML.
type SimGPU struct {
	mu    sync.Mutex
	uuid  string
	total uint64
	used  uint64
}

// NewSimGPU returns a simulated device with total bytes of memory.
func NewSimGPU(total uint64) *SimGPU { return &SimGPU{uuid: "GPU-simulated-0", total: total} }

// Devices implements gpu.Source.
func (s *SimGPU) Devices(ctx context.Context) ([]gpu.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return []gpu.Device{{UUID: s.uuid, Name: "simulated GPU", UsedBytes: s.used, TotalBytes: s.total}}, nil
}

// Load takes n bytes on the leased device in ten steps over load, the slow
// allocation a reactive tuner cannot see coming, failing like CUDA when a
// step does not fit.
func (s *SimGPU) Load(ctx context.Context, l gpu.Lease, n uint64, load time.Duration) (func(), error) {
	if l.UUID != s.uuid {
		return nil, fmt.Errorf("simulated GPU: no device %q", l.UUID)
	}
	const steps = 10
	step := n / steps
	var taken uint64
	release := func() { s.give(taken) }
	for range steps {
		if err := s.take(step); err != nil {
			release()
			return nil, routing.ResourceExhausted("gpu_memory", err)
		}
		taken += step
		select {
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		case <-time.After(load / steps):
		}
	}
	return release, nil
}

func (s *SimGPU) take(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+n > s.total {
		return fmt.Errorf("CUDA out of memory: tried to allocate %d MiB (%d of %d MiB in use)", n>>20, s.used>>20, s.total>>20)
	}
	s.used += n
	return nil
}

func (s *SimGPU) give(n uint64) {
	s.mu.Lock()
	s.used -= min(n, s.used)
	s.mu.Unlock()
}
