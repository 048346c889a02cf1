package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/internal/cgroups"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

// memCgroup is a memory cgroup made for one test: programs put in it are
// limited and accounted apart from the test process.
type memCgroup struct {
	dir, procs string
	v2         bool
	cg         *cgroups.CGroups // read through headroom's own cgroup reader
}

// newMemCgroup makes a cgroup with a memory limit, or skips the test where
// that is not possible (not root, no memory controller). Where the memory
// controller is mounted is found by headroom's own mountinfo reader.
func newMemCgroup(t *testing.T, limit uint64) *memCgroup {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a cgroup")
	}
	root, err := memoryCgroupAt(t, "/")
	if err != nil || root.MemoryDir() == "" {
		t.Skipf("no memory cgroup controller mounted (%v)", err)
	}
	m := &memCgroup{v2: root.Version() == 2}
	if m.v2 {
		_ = os.WriteFile(filepath.Join(root.MemoryDir(), "cgroup.subtree_control"), []byte("+memory"), 0)
	}
	name := fmt.Sprintf("headroom-realalloc-%d", os.Getpid())
	m.dir = filepath.Join(root.MemoryDir(), name)
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup: %v", err)
	}
	t.Cleanup(func() { m.remove(t) })
	limitFile := "memory.limit_in_bytes"
	if m.v2 {
		limitFile = "memory.max"
	}
	if err := os.WriteFile(filepath.Join(m.dir, limitFile), []byte(strconv.FormatUint(limit, 10)), 0); err != nil {
		t.Skipf("cannot set the cgroup's limit: %v", err)
	}
	if !m.v2 { // no swapping around the limit: an overshoot is an OOM kill
		_ = os.WriteFile(filepath.Join(m.dir, "memory.swappiness"), []byte("0"), 0)
	}
	m.procs = filepath.Join(m.dir, "cgroup.procs")
	m.cg, err = memoryCgroupAt(t, "/"+name)
	require.NoError(t, err)
	require.Equal(t, m.dir, m.cg.MemoryDir())
	return m
}

// memoryCgroupAt locates the cgroup at path (v1 memory hierarchy, else the
// unified one) as a process in it would see it.
func memoryCgroupAt(t *testing.T, path string) (*cgroups.CGroups, error) {
	pc := filepath.Join(t.TempDir(), "cgroup")
	if err := os.WriteFile(pc, []byte("5:memory:"+path+"\n0::"+path+"\n"), 0o644); err != nil {
		return nil, err
	}
	return cgroups.DetectFrom(pc, "/proc/self/mountinfo")
}

// remove kills what is left in the cgroup and removes it.
func (m *memCgroup) remove(t *testing.T) {
	for range 50 {
		b, _ := os.ReadFile(m.procs)
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				if proc, err := os.FindProcess(pid); err == nil {
					_ = proc.Kill()
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(m.dir); err != nil {
		t.Errorf("removing %s: %v", m.dir, err)
	}
}

// oomKills is the cgroup's own count of OOM kills.
func (m *memCgroup) oomKills(t *testing.T) int {
	n, err := m.cg.OOMKills()
	if err != nil {
		t.Skipf("no OOM kill count: %v", err)
	}
	return int(n)
}

// Read implements resources.Source over the test's cgroup (memory only).
func (m *memCgroup) Read(context.Context) (resources.Usage, error) {
	ws, limit, err := m.cg.Memory()
	if err != nil {
		return resources.Usage{}, err
	}
	if limit == 0 {
		return resources.Usage{}, errors.New("the test cgroup has no limit")
	}
	return resources.Usage{Memory: float64(ws) / float64(limit), MemoryBytes: ws, MemoryLimitBytes: limit}, nil
}

// TestRealAllocationsInACgroup runs activities through a real worker on the
// embedded server, each spawning stress-ng into a cgroup with a 1 GiB
// limit: 1.5 s of nothing (imports), then 192 MiB allocated, touched and
// held for 3 s (--vm-hang: held asleep, so that the test does not take the
// CPU from the packages tested beside it). headroom (declared cost 200 MiB, target 0.8) runs them, and so does
// the SDK's fixed-size supplier at the size a user would pick from the true
// footprint (4: 4 × 200 MiB ≤ 0.8 GiB). The cgroup counts OOM kills; the
// test samples the working set every 20 ms. It holds what a user relies on
// (no OOM kill, the peak within target + 0.02, nothing left reserved) and
// logs throughput against the fixed supplier from the same run (a speed,
// so not asserted here; bench/README.md records it).
func TestRealAllocationsInACgroup(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real programs for a minute")
	}
	bin, err := exec.LookPath("stress-ng")
	if err != nil {
		t.Skip("stress-ng not installed (apt install stress-ng)")
	}
	const limit, target, tasks = 1 << 30, 0.8, 16
	const vmBytes = "192M"
	cg := newMemCgroup(t, limit)

	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	run := func(name string, wt worker.WorkerTuner) (peak float64, elapsed time.Duration, oom int) {
		kills0 := cg.oomKills(t)
		queue := "realalloc-" + name
		w := worker.New(c, queue, worker.Options{Tuner: wt, WorkerStopTimeout: 10 * time.Second})
		w.RegisterActivityWithOptions(func(ctx context.Context) error {
			// The shell joins the cgroup, then becomes stress-ng: nothing
			// of the task runs outside the limit.
			script := fmt.Sprintf("echo $$ > %s && sleep 1.5 && exec %s --vm 1 --vm-bytes %s --vm-hang 0 --timeout 3s --quiet", cg.procs, bin, vmBytes)
			out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput()
			if err != nil {
				return temporal.NewNonRetryableApplicationError(fmt.Sprintf("stress-ng: %v: %s", err, out), "StressFailed", err)
			}
			return nil
		}, activityName("alloc"))
		w.RegisterWorkflowWithOptions(func(ctx workflow.Context, n int) error {
			ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Minute,
				RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
			fs := make([]workflow.Future, n)
			for i := range fs {
				fs[i] = workflow.ExecuteActivity(ctx, "alloc")
			}
			var errs []error
			for _, f := range fs {
				errs = append(errs, f.Get(ctx, nil))
			}
			return errors.Join(errs...)
		}, workflowName("fan"))
		require.NoError(t, w.Start())
		defer w.Stop()

		var maxWS atomic.Uint64
		// headroom's slots and charge beside the working set every 250 ms:
		// what a failure needs to be read.
		ht, _ := wt.(*tuner.Tuner)
		var trace []string
		began, traced := time.Now(), time.Time{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ws, _, err := cg.cg.Memory()
				if err == nil && ws > maxWS.Load() {
					maxWS.Store(ws)
				}
				if ht != nil && err == nil && time.Since(traced) >= 250*time.Millisecond {
					traced = time.Now()
					a, _ := ht.Stats()
					trace = append(trace, fmt.Sprintf("%.2fs %d/%d %dMiB %.3f", traced.Sub(began).Seconds(), a.Used, a.Issued, a.Cost.MemoryBytes>>20, float64(ws)/limit))
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		start := time.Now()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "fan", tasks)
		require.NoError(t, err)
		werr := r.Get(ctx, nil)
		elapsed = time.Since(start)
		close(stop)
		wg.Wait()
		if ht != nil {
			t.Logf("%s (time: slots used/issued, cost charged, working set ÷ limit): %s", name, strings.Join(trace, ", "))
		}
		oom = cg.oomKills(t) - kills0
		peak = float64(maxWS.Load()) / limit
		t.Logf("%s: %d tasks in %v, peak working set %.3f of the limit, %d OOM kills, err %v", name, tasks, elapsed.Round(10*time.Millisecond), peak, oom, werr)
		if oom == 0 {
			require.NoError(t, werr)
		}
		return peak, elapsed, oom
	}

	ht, err := tuner.New(tuner.Options{
		Name:       "realalloc",
		Controller: tuner.ControllerOptions{TargetMemory: target, Source: cg, Logger: testutil.NopLogger},
		Activity: tuner.SlotSupplierOptions{Name: "alloc", MinSlots: 1, MaxSlots: 32, RampThrottle: 50 * time.Millisecond,
			Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: 200 << 20}},
		Workflow: tuner.SlotSupplierOptions{Name: "workflow", MinSlots: 2, MaxSlots: 10, Resources: tuner.Memory},
	})
	require.NoError(t, err)
	defer ht.Close()
	hPeak, hTime, hOOM := run("headroom", ht)
	act, wf := ht.Stats()
	assert.Zero(t, act.Issued+wf.Issued, "no slot left reserved")

	ft, err := worker.NewFixedSizeTuner(worker.FixedSizeTunerOptions{NumWorkflowSlots: 10, NumActivitySlots: 4, NumLocalActivitySlots: 4, NumNexusSlots: 4})
	require.NoError(t, err)
	fPeak, fTime, fOOM := run("fixed-4", ft)

	assert.Zero(t, hOOM, "OOM kills under headroom")
	assert.LessOrEqual(t, hPeak, target+0.02, "peak working set")
	t.Logf("throughput ÷ hand-sized fixed: %.2f (fixed: peak %.3f, %d OOM kills); cost charged at the end %d MiB",
		fTime.Seconds()/hTime.Seconds(), fPeak, fOOM, act.Cost.MemoryBytes>>20)
}
