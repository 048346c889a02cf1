package resources

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The real source on this machine. Other processes (go test builds other
// packages in parallel) move host numbers too, so each check gets a few
// attempts; a source that does not track the change fails every one.
const attempts = 6

func TestRealSourceTracksAllocationNotPageCache(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 256 MiB")
	}
	src, err := NewSystemSource(SystemSourceOptions{})
	require.NoError(t, err)
	ctx := context.Background()
	const size = 256 * MiB

	var deltas []int64
	tracked := false
	for i := 0; i < attempts && !tracked; i++ {
		before, err := src.Read(ctx)
		require.NoError(t, err)
		// Anonymous mmap, outside the Go heap: the GC and its scavenger
		// returning earlier garbage cannot blur the measurement.
		buf, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		require.NoError(t, err)
		for j := 0; j < len(buf); j += 4096 {
			buf[j] = 1 // touch every page so it is resident
		}
		after, err := src.Read(ctx)
		require.NoError(t, err)
		require.NoError(t, syscall.Munmap(buf))
		d := int64(after.MemoryBytes) - int64(before.MemoryBytes)
		deltas = append(deltas, d/MiB)
		tracked = d > size*3/4 && d < size*3/2
		assert.InDelta(t, float64(after.MemoryBytes)/float64(after.MemoryLimitBytes), after.Memory, 1e-9)
	}
	if !tracked {
		seen := false
		for _, d := range deltas {
			seen = seen || d >= size/MiB/2
		}
		// Never seeing the allocation is a broken source; seeing it blurred
		// is a busy host (TestRealSourceInOwnCgroup measures in isolation).
		require.True(t, seen, "working set never rose by even half of a 256 MiB allocation; deltas (MiB) %v", deltas)
		t.Skipf("host memory moved by other processes; deltas (MiB) %v", deltas)
	}

	deltas = deltas[:0]
	ignored := false
	chunk := make([]byte, 4*MiB)
	for i := 0; i < attempts && !ignored; i++ {
		f, err := os.Create(filepath.Join(t.TempDir(), "file"))
		require.NoError(t, err)
		before, err := src.Read(ctx)
		require.NoError(t, err)
		for w := 0; w < size; w += len(chunk) {
			_, err := f.Write(chunk)
			require.NoError(t, err)
		}
		require.NoError(t, f.Sync()) // clean page cache: reclaimable
		after, err := src.Read(ctx)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		d := int64(after.MemoryBytes) - int64(before.MemoryBytes)
		deltas = append(deltas, d/MiB)
		ignored = d < size/4
	}
	if !ignored {
		counted := true
		for _, d := range deltas {
			counted = counted && d >= size/MiB*3/4
		}
		require.False(t, counted, "a 256 MiB file in page cache was counted as used in every attempt; deltas (MiB) %v", deltas)
		t.Skipf("host memory moved by other processes; deltas (MiB) %v", deltas)
	}
}

func TestRealSourceTracksBusyLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("spins a core")
	}
	src, err := NewSystemSource(SystemSourceOptions{})
	require.NoError(t, err)
	ctx := context.Background()
	oneCore := 1 / float64(runtime.NumCPU())
	var seen [][2]float64
	tracked, observable := false, 0
	for i := 0; i < 3*attempts && !tracked; i++ {
		idle, err := src.Read(ctx)
		require.NoError(t, err)
		time.Sleep(MinCPUWindow + 20*time.Millisecond)
		idle, err = src.Read(ctx)
		require.NoError(t, err)
		if idle.CPU > 1-0.7*oneCore {
			// Other processes (parallel builds) hold the CPUs: a busy loop
			// here could not raise the reading. Try again later.
			seen = append(seen, [2]float64{idle.CPU, -1})
			time.Sleep(300 * time.Millisecond)
			continue
		}
		observable++

		var stop atomic.Bool
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !stop.Load() {
			}
		}()
		time.Sleep(MinCPUWindow + 20*time.Millisecond)
		busy, err := src.Read(ctx)
		stop.Store(true)
		<-done
		require.NoError(t, err)
		seen = append(seen, [2]float64{idle.CPU, busy.CPU})
		tracked = busy.CPU-idle.CPU > 0.6*oneCore
	}
	if observable == 0 {
		t.Skipf("host CPU saturated by other processes in every attempt (idle readings %v): a busy loop cannot show", seen)
	}
	assert.True(t, tracked, "a busy loop on one core must raise CPU by ~%.2f; saw (idle, busy) %v", oneCore, seen)
}
