package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
	"github.com/headroomhq/headroom/tuner"
)

// workerProcessEnv, set to the server's address, makes this test binary run
// workerProcess instead of the tests; workerNamespaceEnv names the namespace.
const (
	workerProcessEnv   = "HEADROOM_IT_WORKER_ADDRESS"
	workerNamespaceEnv = "HEADROOM_IT_WORKER_NAMESPACE"
	workerDrainEnv     = "HEADROOM_IT_WORKER_DRAIN" // the preset's DrainWindow, if set
)

// workerProcess is a GPU pool worker process: a pool.NewWorker worker on
// gpu-ml-inference (a simulated 80 GiB device) running "Train", which prints
// "started attempt N" and then works 20 s in its first attempt, 1 s after.
// It stops on SIGINT or SIGTERM and exits 0 only if nothing is left
// reserved.
func workerProcess() int {
	c, err := client.Dial(client.Options{HostPort: os.Getenv(workerProcessEnv), Namespace: os.Getenv(workerNamespaceEnv), Logger: testutil.NopLogger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.95, TargetGPUMemory: 0.9, Logger: testutil.NopLogger,
		GPU: testutil.NewGPU(gpu.Device{UUID: "GPU-sim-0", Name: "simulated", TotalBytes: 80 << 30})})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer ctrl.Close()
	preset := pool.PresetFor(queues.GPU)
	preset.Activity.Cost = tuner.Cost{GPUMemoryBytes: 1 << 30, MemoryBytes: 1 << 20}
	if d, err := time.ParseDuration(os.Getenv(workerDrainEnv)); err == nil {
		preset.DrainWindow = d
	}
	w, tu, err := pool.NewWorker(c, queues.Default(), queues.GPUMLInference, ctrl, preset, worker.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer tu.Close()
	w.RegisterActivityWithOptions(func(ctx context.Context) (int32, error) {
		a := activity.GetInfo(ctx).Attempt
		fmt.Printf("started attempt %d\n", a)
		work := time.Second
		if a == 1 {
			work = 20 * time.Second
		}
		select {
		case <-time.After(work):
			return a, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}, activity.RegisterOptions{Name: "Train"})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("polling")
	<-sig
	w.Stop()
	if act, wf := tu.Stats(); act.Issued+wf.Issued != 0 {
		fmt.Fprintf(os.Stderr, "%d slots left reserved\n", act.Issued+wf.Issued)
		return 1
	}
	return 0
}

// startWorkerProcess starts workerProcess and returns it with its output's
// lines.
func startWorkerProcess(t *testing.T, srv *temporaltest.TestServer, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerProcessEnv+"="+srv.GetFrontendHostPort(), workerNamespaceEnv+"="+srv.GetDefaultNamespace())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, lines
}

// startTrained runs the workflow "Trained": the GPU class's "Train"
// activity, returning the attempt that succeeded.
func startTrained(t *testing.T, c client.Client) {
	t.Helper()
	startPlain(t, c, "Trained", func(ctx workflow.Context) (int32, error) {
		ctx = workflow.WithActivityOptions(ctx, routing.Options(queues.GPUMLInference))
		var attempt int32
		err := workflow.ExecuteActivity(ctx, "Train").Get(ctx, &attempt)
		return attempt, err
	}, nil)
}

// await waits for a line of lines starting with prefix.
func await(t *testing.T, lines <-chan string, prefix string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "worker process exited before printing %q", prefix)
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q from the worker process in %v", prefix, within)
		}
	}
}

// TestKilledGPUWorkerIsRetriedWithinTheHeartbeatTimeout: a GPU worker process
// killed with SIGKILL mid-activity. Its activity, heartbeated by the pool
// until then, is retried on another worker process within the GPU class's
// default heartbeat timeout (30 s) plus the retry backoff (1 s), and that
// worker, stopped with SIGINT, drains and exits 0 with nothing reserved.
func TestKilledGPUWorkerIsRetriedWithinTheHeartbeatTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a heartbeat timeout")
	}
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	hb := routing.ClassDefaults(queues.GPU).HeartbeatTimeout
	require.LessOrEqual(t, hb, 30*time.Second, "the GPU class's default heartbeat timeout")

	startTrained(t, c)

	first, lines := startWorkerProcess(t, srv)
	await(t, lines, "polling", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Trained")
	require.NoError(t, err)
	await(t, lines, "started attempt 1", time.Minute)
	time.Sleep(hb / 2) // past a heartbeat or two
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	killedAt := time.Now()

	second, lines2 := startWorkerProcess(t, srv)
	await(t, lines2, "started attempt 2", hb+time.Minute)
	retried := time.Since(killedAt)
	t.Logf("retried %v after the kill (heartbeat timeout %v)", retried, hb)
	assert.Less(t, retried, hb+time.Second+5*time.Second, "within the heartbeat timeout plus the backoff")

	var attempt int32
	require.NoError(t, run.Get(ctx, &attempt))
	assert.Equal(t, int32(2), attempt)

	require.NoError(t, second.Process.Signal(syscall.SIGINT))
	assert.NoError(t, second.Wait(), "a drained worker exits 0 with nothing reserved")
}

// TestInterruptedGPUWorkerDrainsReportsAndExits: SIGINT to a GPU worker
// process whose activity runs longer than its drain window (3 s here; the
// preset's is 1 min). The process cancels the activity at the window's end,
// reports it, and exits 0 with nothing reserved; the activity runs again on
// a second worker process within 10 s of the window's end, not at the
// heartbeat timeout.
func TestInterruptedGPUWorkerDrainsReportsAndExits(t *testing.T) {
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	const window = 3 * time.Second
	startTrained(t, c)

	first, lines := startWorkerProcess(t, srv, workerDrainEnv+"="+window.String())
	await(t, lines, "polling", time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "plain"}, "Trained")
	require.NoError(t, err)
	await(t, lines, "started attempt 1", time.Minute) // 20 s of work
	second, lines2 := startWorkerProcess(t, srv, workerDrainEnv+"="+window.String())
	await(t, lines2, "polling", time.Minute)

	require.NoError(t, first.Process.Signal(syscall.SIGINT))
	interrupted := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	await(t, lines2, "started attempt 2", time.Minute)
	retried := time.Since(interrupted)
	select {
	case err := <-exited:
		assert.NoError(t, err, "the interrupted worker exits 0 with nothing reserved")
	case <-time.After(window + 30*time.Second):
		t.Fatal("the interrupted worker did not exit")
	}
	t.Logf("retried on the second worker %v after SIGINT (drain window %v)", retried.Round(10*time.Millisecond), window)
	assert.Less(t, retried, window+10*time.Second, "running again within 10 s of the window's end")

	var attempt int32
	require.NoError(t, run.Get(ctx, &attempt))
	assert.Equal(t, int32(2), attempt)
	require.NoError(t, second.Process.Signal(syscall.SIGINT))
	assert.NoError(t, second.Wait())
}
