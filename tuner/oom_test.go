package tuner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/routing"
)

func TestExhaustion(t *testing.T) {
	killed := exec.Command("sh", "-c", "kill -9 $$").Run()
	var exit *exec.ExitError
	require.ErrorAs(t, killed, &exit, "a child killed by SIGKILL")
	failed := exec.Command("sh", "-c", "exit 3").Run()

	for _, tc := range []struct {
		name      string
		err       error
		oomKilled bool
		want      string
	}{
		{"PyTorch", errors.New("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)"), false, "gpu_memory"},
		{"PyTorch, older", errors.New("RuntimeError: CUDA out of memory."), false, "gpu_memory"},
		{"CUDA driver API", fmt.Errorf("cuMemAlloc: %w", errors.New("CUDA_ERROR_OUT_OF_MEMORY")), false, "gpu_memory"},
		{"CUDA runtime API", errors.New("cudaMalloc failed: cudaErrorMemoryAllocation"), false, "gpu_memory"},
		{"cuBLAS", errors.New("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"), false, "gpu_memory"},
		{"TensorFlow", errors.New("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4294967296 bytes"), false, "gpu_memory"},
		{"NVENC", errors.New("[h264_nvenc] OpenEncodeSessionEx failed: out of memory (10)"), false, "encoder"},
		{"NVENC API", errors.New("nvEncOpenEncodeSessionEx: NV_ENC_ERR_OUT_OF_MEMORY"), false, "encoder"},
		{"Python", errors.New("Traceback (most recent call last):\nMemoryError"), false, "memory"},
		{"ENOMEM", fmt.Errorf("mmap: %w", syscall.ENOMEM), false, "memory"},
		{"C++", errors.New("terminate called after throwing an instance of 'std::bad_alloc'"), false, "memory"},
		{"OOM-killed child", fmt.Errorf("ffmpeg: %w", killed), true, "memory"},
		{"child killed, no OOM kill counted", killed, false, ""},
		{"child failed during an OOM kill elsewhere", failed, true, ""},
		{"already classified", routing.ResourceExhausted("gpu_memory", errors.New("x")), false, "gpu_memory"},
		{"cancelled", temporal.NewCanceledError("out of memory"), false, ""},
		{"classified by the activity", temporal.NewNonRetryableApplicationError("would run out of memory", "InputTooLarge", nil), false, ""},
		{"untyped application error", temporal.NewApplicationError("CUDA out of memory", ""), false, "gpu_memory"},
		{"unrelated", fs.ErrNotExist, false, ""},
		{"nil", nil, true, ""},
	} {
		assert.Equal(t, tc.want, exhaustion(tc.err, tc.oomKilled), tc.name)
	}
}

// An out-of-memory doubles the class's charge of that resource, which then
// gives way over trustLives lives seen whole, as a declared cost does.
func TestOutOfMemoryRaisesTheCharge(t *testing.T) {
	c, err := NewController(ControllerOptions{TargetMemory: 0.9, Logger: testutil.NopLogger,
		Source: testutil.NewSource(resources.Usage{Memory: 0.1, MemoryLimitBytes: 64 << 30})})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WaitReady(context.Background()))
	s, err := NewSlotSupplier(c, SlotSupplierOptions{MaxSlots: 100, Resources: Memory, Cost: Cost{MemoryBytes: 1 << 30}, TrustCost: true})
	require.NoError(t, err)
	before := s.Stats().Cost.MemoryBytes
	s.exhaust("gpu_memory") // a resource the class does not consume: nothing
	assert.Equal(t, before, s.Stats().Cost.MemoryBytes)
	s.exhaust("memory")
	assert.Equal(t, 2*before, s.Stats().Cost.MemoryBytes, "charged twice what did not fit")
	c.mu.Lock()
	s.k.seen += trustLives / 4
	s.k.price()
	c.mu.Unlock()
	assert.Equal(t, 3*before/2, s.Stats().Cost.MemoryBytes, "a quarter of the way back after a quarter of the lives")
	c.mu.Lock()
	s.k.seen += 3 * trustLives / 4
	s.k.price()
	c.mu.Unlock()
	assert.Equal(t, before, s.Stats().Cost.MemoryBytes, "back once trustLives lives are seen")
}
