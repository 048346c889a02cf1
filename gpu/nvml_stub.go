//go:build !linux || !cgo

package gpu

import (
	"context"
	"fmt"
)

// NVMLSource is unavailable in this build (it needs linux and cgo).
type NVMLSource struct{}

// NewNVMLSource returns an error wrapping [ErrNoGPU]: NVML needs linux and cgo.
func NewNVMLSource(opts NVMLOptions) (*NVMLSource, error) {
	if _, err := opts.selector(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: built without cgo or not on linux", ErrNoGPU)
}

// Devices returns [ErrNoGPU].
func (s *NVMLSource) Devices(context.Context) ([]Device, error) { return nil, ErrNoGPU }

// Close does nothing.
func (s *NVMLSource) Close() error { return nil }
