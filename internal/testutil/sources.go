package testutil

import (
	"context"
	"slices"
	"sync"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/resources"
)

// Source is a resources.Source whose reading the test sets.
type Source struct {
	mu    sync.Mutex
	usage resources.Usage
	err   error
	reads int
	fn    func() resources.Usage
}

var _ resources.Source = (*Source)(nil)

// NewSource returns a Source reading u.
func NewSource(u resources.Usage) *Source { return &Source{usage: u} }

// Set replaces the reading and clears any error.
func (s *Source) Set(u resources.Usage) {
	s.mu.Lock()
	s.usage, s.err, s.fn = u, nil, nil
	s.mu.Unlock()
}

// SetFunc makes every Read call fn (a host model, say).
func (s *Source) SetFunc(fn func() resources.Usage) {
	s.mu.Lock()
	s.fn, s.err = fn, nil
	s.mu.Unlock()
}

// Fail makes Read return err until Set or SetFunc is called; nil heals.
func (s *Source) Fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// Reads counts Read calls.
func (s *Source) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// Read returns the reading set last.
func (s *Source) Read(ctx context.Context) (resources.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if err := ctx.Err(); err != nil {
		return resources.Usage{}, err
	}
	if s.err != nil {
		return resources.Usage{}, s.err
	}
	if s.fn != nil {
		return s.fn(), nil
	}
	return s.usage, nil
}

// GPU is a gpu.Source whose devices the test sets.
type GPU struct {
	mu   sync.Mutex
	devs []gpu.Device
	err  error
	fn   func() []gpu.Device
}

var _ gpu.Source = (*GPU)(nil)

// NewGPU returns a GPU source reporting devs.
func NewGPU(devs ...gpu.Device) *GPU { return &GPU{devs: slices.Clone(devs)} }

// Set replaces the devices and clears any error.
func (g *GPU) Set(devs ...gpu.Device) {
	g.mu.Lock()
	g.devs, g.err, g.fn = slices.Clone(devs), nil, nil
	g.mu.Unlock()
}

// SetFunc makes every Devices call fn.
func (g *GPU) SetFunc(fn func() []gpu.Device) {
	g.mu.Lock()
	g.fn, g.err = fn, nil
	g.mu.Unlock()
}

// Fail makes Devices return err; nil heals.
func (g *GPU) Fail(err error) {
	g.mu.Lock()
	g.err = err
	g.mu.Unlock()
}

// Devices returns a copy of the devices set last.
func (g *GPU) Devices(ctx context.Context) ([]gpu.Device, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if g.err != nil {
		return nil, g.err
	}
	if g.fn != nil {
		return g.fn(), nil
	}
	return slices.Clone(g.devs), nil
}
