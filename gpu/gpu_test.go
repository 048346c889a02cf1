package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelectionFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	tests := []struct {
		name  string
		env   map[string]string
		match map[int]bool // index -> selected, for devices GPU-a (0) and GPU-b (1)
	}{
		{"unset", nil, map[int]bool{0: true, 1: true}},
		{"cuda index", map[string]string{"CUDA_VISIBLE_DEVICES": "1"}, map[int]bool{0: false, 1: true}},
		{"cuda empty hides all", map[string]string{"CUDA_VISIBLE_DEVICES": ""}, map[int]bool{0: false, 1: false}},
		{"cuda wins", map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-a", "NVIDIA_VISIBLE_DEVICES": "GPU-b"}, map[int]bool{0: true, 1: false}},
		{"nvidia all", map[string]string{"NVIDIA_VISIBLE_DEVICES": "all"}, map[int]bool{0: true, 1: true}},
		{"nvidia void", map[string]string{"NVIDIA_VISIBLE_DEVICES": "void"}, map[int]bool{0: false, 1: false}},
		{"nvidia host indexes are ignored", map[string]string{"NVIDIA_VISIBLE_DEVICES": "3"}, map[int]bool{0: true, 1: true}},
		{"nvidia uuid", map[string]string{"NVIDIA_VISIBLE_DEVICES": "GPU-b"}, map[int]bool{0: false, 1: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := selectionFromEnv(env(tt.env))
			require.NoError(t, err)
			assert.Equal(t, tt.match[0], sel.match(0, "GPU-a", ""))
			assert.Equal(t, tt.match[1], sel.match(1, "GPU-b", ""))
		})
	}
}

func TestInvalidSelection(t *testing.T) {
	_, err := NewNVMLSource(NVMLOptions{Devices: "0,gpu-typo"})
	assert.ErrorIs(t, err, ErrInvalidOptions)
	assert.Contains(t, err.Error(), "Devices")
	assert.Contains(t, err.Error(), "gpu-typo")
}

func TestNoGPUOnThisHost(t *testing.T) {
	// On a machine without the NVIDIA driver (and in CGO_ENABLED=0 builds)
	// the real source must report ErrNoGPU, not crash.
	s, err := NewNVMLSource(NVMLOptions{})
	if err == nil {
		defer s.Close()
		t.Skip("this host has an NVIDIA GPU")
	}
	assert.ErrorIs(t, err, ErrNoGPU)
}

func TestDeviceUsed(t *testing.T) {
	assert.InDelta(t, 0.25, Device{UsedBytes: 1, TotalBytes: 4}.Used(), 1e-12)
	assert.Zero(t, Device{UsedBytes: 1}.Used())
}

func FuzzParseSelection(f *testing.F) {
	f.Add("0,1,GPU-abc")
	f.Add("MIG-1, 2 ,-1,3")
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := parseSelection(s)
		if err != nil {
			return
		}
		for _, i := range sel.indexes {
			if i < 0 {
				t.Fatalf("negative index %d from %q", i, s)
			}
		}
	})
}
