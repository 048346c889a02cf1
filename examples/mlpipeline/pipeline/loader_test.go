package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/routing"
)

// stubPython writes an executable that stands in for python3: it ignores
// the script and runs body.
func stubPython(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "python3")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755))
	return p
}

// The torch loader's process sees the leased device alone, holds until
// released, and a CUDA out-of-memory in it is ResourceExhausted, so the
// route escalates it.
func TestTorchLoader(t *testing.T) {
	lease := gpu.Lease{UUID: "GPU-8f3c", Index: 3, Name: "test"}
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "env")

	py := stubPython(t, `echo "$CUDA_VISIBLE_DEVICES" > `+out+`; echo ready; cat >/dev/null; echo released >> `+out)
	release, err := TorchLoader{Python: py}.Load(ctx, lease, 1<<20, 0)
	require.NoError(t, err)
	b, _ := os.ReadFile(out)
	assert.Equal(t, "GPU-8f3c\n", string(b), "the subprocess sees the leased device")
	release()
	b, _ = os.ReadFile(out)
	assert.True(t, strings.HasSuffix(string(b), "released\n"), "release ends the process: %q", b)

	py = stubPython(t, `echo 'Traceback (most recent call last):' >&2; echo 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB' >&2; exit 1`)
	_, err = TorchLoader{Python: py}.Load(ctx, lease, 1<<20, 0)
	require.Error(t, err)
	assert.True(t, routing.IsResourceExhausted(err), "CUDA OOM is ResourceExhausted: %v", err)

	py = stubPython(t, `echo 'ModuleNotFoundError: No module named torch' >&2; exit 1`)
	_, err = TorchLoader{Python: py}.Load(ctx, lease, 1<<20, 0)
	require.ErrorContains(t, err, "No module named torch")
	assert.False(t, routing.IsResourceExhausted(err), "other failures are not")

	py = stubPython(t, `sleep 30`)
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = TorchLoader{Python: py}.Load(cctx, lease, 1<<20, 0)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second, "a cancelled load kills its process")
}
