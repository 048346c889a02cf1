package resources

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/internal/cgroups"
)

const (
	MiB = 1 << 20
	GiB = 1 << 30
)

type fakeHost struct {
	mu          sync.Mutex
	used, total uint64
	busy, all   float64
	err         error
}

func (h *fakeHost) memory(context.Context) (uint64, uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.used, h.total, h.err
}

func (h *fakeHost) cpuTimes(context.Context) (float64, float64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.busy, h.all, h.err
}

func (h *fakeHost) addCPU(busy, all float64) {
	h.mu.Lock()
	h.busy += busy
	h.all += all
	h.mu.Unlock()
}

// copyTree copies an internal/cgroups testdata tree so a test can change it.
func copyTree(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "internal", "cgroups", "testdata", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	require.NoError(t, err)
	return dst
}

func TestSystemSourceCgroupQuota(t *testing.T) {
	// v2-nested: 0.5-core quota and a 2 GiB memory.high on the parent.
	root := copyTree(t, "v2-nested")
	cg, err := cgroups.DetectRoot(root)
	require.NoError(t, err)
	stat := filepath.Join(root, "sys/fs/cgroup/kubepods/pod1/ctr/cpu.stat")
	host := &fakeHost{used: 10 * GiB, total: 24 * GiB}

	synctest.Test(t, func(t *testing.T) {
		src, err := newSystemSource(SystemSourceOptions{}, cg, host, time.Now)
		require.NoError(t, err)
		go func() {
			time.Sleep(100 * time.Millisecond)
			// 62.5 ms of CPU in a 250 ms window against 0.5 cores: 50 %.
			require.NoError(t, os.WriteFile(stat, []byte("usage_usec 62542\n"), 0o644))
		}()
		start := time.Now()
		u, err := src.Read(context.Background())
		require.NoError(t, err)
		assert.Equal(t, MinCPUWindow, time.Since(start), "the first read waits one window")
		assert.InDelta(t, 0.5, u.CPU, 1e-9)
		assert.Equal(t, uint64(1000000000), u.MemoryBytes)
		assert.Equal(t, uint64(2*GiB), u.MemoryLimitBytes, "cgroup limit is below host memory")
		assert.InDelta(t, 1e9/float64(2*GiB), u.Memory, 1e-9)
		assert.Equal(t, 0.5, u.CPUCores, "capacity is the quota")

		// Within the window the last value is returned, without a new sample.
		require.NoError(t, os.WriteFile(stat, []byte("usage_usec 99999999\n"), 0o644))
		u, err = src.Read(context.Background())
		require.NoError(t, err)
		assert.InDelta(t, 0.5, u.CPU, 1e-9)

		time.Sleep(time.Second)
		// 99.9 s of CPU in 1 s is impossible: clamp to 1.
		u, err = src.Read(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 1.0, u.CPU)
	})
}

func TestSystemSourceHostFallback(t *testing.T) {
	host := &fakeHost{used: 6 * GiB, total: 24 * GiB, busy: 100, all: 400}
	synctest.Test(t, func(t *testing.T) {
		// hybrid tree: memory cgroup without a limit, no CPU quota.
		cg, err := cgroups.DetectRoot(filepath.Join("..", "internal", "cgroups", "testdata", "hybrid"))
		require.NoError(t, err)
		src, err := newSystemSource(SystemSourceOptions{CPUWindow: time.Second}, cg, host, time.Now)
		require.NoError(t, err)
		go func() {
			time.Sleep(500 * time.Millisecond)
			host.addCPU(0.5, 2) // 2 CPUs for 1 s, one of them busy half the time
		}()
		u, err := src.Read(context.Background())
		require.NoError(t, err)
		assert.InDelta(t, 0.25, u.CPU, 1e-9)
		assert.Equal(t, Usage{CPU: u.CPU, Memory: 0.25, MemoryBytes: 6 * GiB, MemoryLimitBytes: 24 * GiB, CPUCores: float64(runtime.NumCPU())}, u)
	})
}

func TestSystemSourceErrors(t *testing.T) {
	_, err := newSystemSource(SystemSourceOptions{CPUWindow: 10 * time.Millisecond}, nil, &fakeHost{}, time.Now)
	require.ErrorIs(t, err, ErrInvalidOptions)
	assert.Contains(t, err.Error(), "CPUWindow")

	boom := errors.New("boom")
	src, err := newSystemSource(SystemSourceOptions{}, nil, &fakeHost{err: boom}, time.Now)
	require.NoError(t, err)
	_, err = src.Read(context.Background())
	assert.ErrorIs(t, err, boom)

	// A missing memory.stat is an error, never a reading that counts page cache.
	root := copyTree(t, "missing")
	cg, err := cgroups.DetectRoot(root)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "sys/fs/cgroup/app/memory.max"), []byte("1000\n"), 0o644))
	src, err = newSystemSource(SystemSourceOptions{}, cg, &fakeHost{total: GiB}, time.Now)
	require.NoError(t, err)
	_, err = src.Read(context.Background())
	assert.ErrorContains(t, err, "memory.stat")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src, err = newSystemSource(SystemSourceOptions{}, nil, &fakeHost{total: GiB, all: 1}, time.Now)
	require.NoError(t, err)
	_, err = src.Read(ctx)
	assert.ErrorIs(t, err, context.Canceled, "the first read's window wait honours ctx")
}

func TestCPUFraction(t *testing.T) {
	t0 := time.Unix(0, 0)
	tests := []struct {
		name      string
		prev, cur cpuSample
		want      float64
		ok        bool
	}{
		{"cgroup half", cpuSample{at: t0, busy: 1, cgroup: true, quota: 2}, cpuSample{at: t0.Add(time.Second), busy: 2, cgroup: true, quota: 2}, 0.5, true},
		{"host", cpuSample{at: t0, busy: 10, capacity: 40}, cpuSample{at: t0.Add(time.Second), busy: 11, capacity: 42}, 0.5, true},
		{"counter reset clamps", cpuSample{at: t0, busy: 10, capacity: 40}, cpuSample{at: t0.Add(time.Second), busy: 1, capacity: 42}, 0, true},
		{"no time", cpuSample{at: t0}, cpuSample{at: t0}, 0, false},
		{"kind changed", cpuSample{at: t0}, cpuSample{at: t0.Add(time.Second), cgroup: true, quota: 1}, 0, false},
		{"host no capacity", cpuSample{at: t0, capacity: 5}, cpuSample{at: t0.Add(time.Second), capacity: 5}, 0, false},
	}
	for _, tt := range tests {
		got, ok := cpuFraction(tt.prev, tt.cur)
		assert.Equal(t, tt.ok, ok, tt.name)
		assert.InDelta(t, tt.want, got, 1e-9, tt.name)
	}
}
