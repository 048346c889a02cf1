//go:build linux && cgo

package gpu

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// realNVML opens the real driver, or skips where there is none (CI, most
// laptops): these tests run for real only on a host with an NVIDIA GPU.
func realNVML(t *testing.T) *NVMLSource {
	t.Helper()
	s, err := NewNVMLSource(NVMLOptions{})
	if err != nil {
		t.Skipf("no NVIDIA GPU on this host: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRealNVMLDevices(t *testing.T) {
	s := realNVML(t)
	ctx := context.Background()
	ds, err := s.Devices(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, ds)
	for _, d := range ds {
		t.Logf("%s %q index %d: %d of %d MiB used", d.UUID, d.Name, d.Index, d.UsedBytes>>20, d.TotalBytes>>20)
		assert.True(t, strings.HasPrefix(d.UUID, "GPU-") || strings.HasPrefix(d.UUID, "MIG-"), d.UUID)
		assert.NotZero(t, d.TotalBytes)
		assert.LessOrEqual(t, d.UsedBytes, d.TotalBytes)
	}
	const n = 200
	start := time.Now()
	for range n {
		_, err := s.Devices(ctx)
		require.NoError(t, err)
	}
	t.Logf("Devices: %v per call (%d devices)", time.Since(start)/n, len(ds))
}

// A process's allocation shows in the reading, and its exit frees it: what
// admission relies on. Needs python3 with PyTorch (skipped otherwise).
func TestRealNVMLSeesAllocation(t *testing.T) {
	s := realNVML(t)
	if err := exec.Command("python3", "-c", "import torch; assert torch.cuda.is_available()").Run(); err != nil {
		t.Skipf("python3 with CUDA PyTorch not available: %v", err)
	}
	ctx := context.Background()
	used := func() uint64 {
		ds, err := s.Devices(ctx)
		require.NoError(t, err)
		return ds[0].UsedBytes
	}
	before := used()
	const alloc = 4 << 30
	cmd := exec.Command("python3", "-c", `
import sys, torch
x = torch.empty(4 << 30, dtype=torch.uint8, device="cuda:0")
torch.cuda.synchronize()
print("ready", flush=True)
sys.stdin.read()
`)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready\n", line)
	held := used()
	t.Logf("used: %d MiB before, %d MiB with a 4096 MiB tensor held", before>>20, held>>20)
	assert.GreaterOrEqual(t, held, before+alloc, "the allocation shows in the reading")
	stdin.Close()
	require.NoError(t, cmd.Wait())
	deadline := time.Now().Add(10 * time.Second)
	for used() > before+(256<<20) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	after := used()
	t.Logf("used: %d MiB after the process exited", after>>20)
	assert.LessOrEqual(t, after, before+(256<<20), "the process's exit frees it")
}
