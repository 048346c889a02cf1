package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/routing"
)

// A Loader puts a GPU stage's model in the memory of the device its lease
// names, over load, and holds it until release is called.
type Loader interface {
	Load(ctx context.Context, l gpu.Lease, bytes uint64, load time.Duration) (release func(), err error)
}

// torchScript allocates argv[1] bytes of CUDA memory in ten steps over
// argv[2] seconds on the process's device 0 (CUDA_VISIBLE_DEVICES picks it),
// prints the device's name and holds the memory until stdin closes.
const torchScript = `
import sys, time, torch
n, secs, steps = int(sys.argv[1]), float(sys.argv[2]), 10
held = []
for _ in range(steps):
    held.append(torch.empty(n // steps, dtype=torch.uint8, device="cuda"))
    torch.cuda.synchronize()
    time.sleep(secs / steps)
print(torch.cuda.get_device_name(0), flush=True)
sys.stdin.read()
`

// TorchLoader loads with a Python subprocess that allocates through
// PyTorch, started with the lease's environment so that CUDA sees the leased
// device alone.
type TorchLoader struct {
	Python string // interpreter; "" is python3
}

// TorchAvailable reports whether python3 can import torch with CUDA.
func TorchAvailable(ctx context.Context) bool {
	cmd := exec.CommandContext(ctx, "python3", "-c", "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)")
	return cmd.Run() == nil
}

// Load starts the subprocess and returns once it holds the memory. A CUDA
// out-of-memory in it is routing.ResourceExhausted.
func (t TorchLoader) Load(ctx context.Context, l gpu.Lease, n uint64, load time.Duration) (func(), error) {
	py := t.Python
	if py == "" {
		py = "python3"
	}
	cmd := exec.Command(py, "-c", torchScript, strconv.FormatUint(n, 10), strconv.FormatFloat(load.Seconds(), 'f', 3, 64))
	cmd.Env = append(os.Environ(), l.Env()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second // a killed process's children may hold its pipes
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", py, err)
	}
	release := func() {
		stdin.Close()
		cmd.Wait()
	}
	ready := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(stdout).ReadString('\n')
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		cmd.Process.Kill()
		release()
		return nil, ctx.Err()
	}
	if err != nil {
		release() // exited before holding the memory
		return nil, loadError(l, stderr.String(), err)
	}
	return release, nil
}

// loadError classifies a failed load: CUDA out-of-memory is
// routing.ResourceExhausted, so a route can escalate it.
func loadError(l gpu.Lease, stderr string, err error) error {
	if errors.Is(err, io.EOF) {
		err = errors.New("exited before loading")
	}
	msg := strings.TrimSpace(stderr)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:] // the exception line
	}
	err = fmt.Errorf("loading on %s: %w: %s", l.UUID, err, msg)
	if strings.Contains(msg, "CUDA out of memory") || strings.Contains(msg, "OutOfMemoryError") {
		return routing.ResourceExhausted("gpu_memory", err)
	}
	return err
}
