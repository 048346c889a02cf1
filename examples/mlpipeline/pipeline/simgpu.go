package pipeline

import (
	"context"
	"fmt"
	"sync"

	"github.com/headroomhq/headroom/gpu"
)

// SimGPU is a simulated GPU for hosts without one: GPU activities Take memory
// while they run and Give it back, and the tuner reads it like NVML.
type SimGPU struct {
	mu    sync.Mutex
	total uint64
	used  uint64
}

// NewSimGPU returns a simulated device with total bytes of memory.
func NewSimGPU(total uint64) *SimGPU { return &SimGPU{total: total} }

// Devices implements gpu.Source.
func (s *SimGPU) Devices(ctx context.Context) ([]gpu.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return []gpu.Device{{UUID: "GPU-simulated-0", Name: "simulated GPU", UsedBytes: s.used, TotalBytes: s.total}}, nil
}

// Take allocates n bytes, or fails like CUDA when they do not fit.
func (s *SimGPU) Take(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+n > s.total {
		return fmt.Errorf("CUDA out of memory: tried to allocate %d MiB (%d of %d MiB in use)", n>>20, s.used>>20, s.total>>20)
	}
	s.used += n
	return nil
}

// Give frees n bytes.
func (s *SimGPU) Give(n uint64) {
	s.mu.Lock()
	s.used -= min(n, s.used)
	s.mu.Unlock()
}
