package resources

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/headroomhq/headroom/internal/cgroups"
)

// Usage is one reading of CPU and memory.
type Usage struct {
	CPU              float64 // 0..1 of the CPU this process may use (cgroup quota, else all CPUs)
	Memory           float64 // 0..1: working set / limit
	MemoryBytes      uint64  // working set
	MemoryLimitBytes uint64
	CPUCores         float64 // CPU capacity in cores: the cgroup quota, else the CPUs available; 0 if unknown
}

// Source reads Usage. Read may block (a CPU reading needs a window of time)
// and must honour ctx.
type Source interface {
	Read(ctx context.Context) (Usage, error)
}

// ErrInvalidOptions is wrapped by every error about bad options in this package.
var ErrInvalidOptions = errors.New("resources: invalid options")

// MinCPUWindow is the shortest window a CPU reading is taken over. Shorter
// windows are noise: ±27 points at 10 ms, ±1.6 at 250 ms for a steady load.
const MinCPUWindow = 250 * time.Millisecond

// SystemSourceOptions configures [NewSystemSource].
type SystemSourceOptions struct {
	// CPUWindow is the window CPU usage is averaged over. Reads closer together
	// return the previous value. Zero means MinCPUWindow; less is an error.
	CPUWindow time.Duration
}

// SystemSource reads this process's cgroup, falling back to host-wide
// numbers for any resource without a cgroup limit: with no limit the binding
// constraint is the host, shared with every other process on it.
type SystemSource struct {
	cg     *cgroups.CGroups // nil: no cgroup
	host   hostReader
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	cpuPrev cpuSample
	cpuLast float64
	haveCPU bool
}

// NewSystemSource detects this process's cgroups. It never fails for lack of
// cgroups (the host is used instead), only for bad options.
func NewSystemSource(opts SystemSourceOptions) (*SystemSource, error) {
	cg, err := cgroups.Detect()
	if err != nil {
		cg = nil
	}
	return newSystemSource(opts, cg, gopsutilHost{}, time.Now)
}

func newSystemSource(opts SystemSourceOptions, cg *cgroups.CGroups, host hostReader, now func() time.Time) (*SystemSource, error) {
	switch {
	case opts.CPUWindow == 0:
		opts.CPUWindow = MinCPUWindow
	case opts.CPUWindow < MinCPUWindow:
		return nil, fmt.Errorf("%w: CPUWindow %v is below %v", ErrInvalidOptions, opts.CPUWindow, MinCPUWindow)
	}
	return &SystemSource{cg: cg, host: host, window: opts.CPUWindow, now: now}, nil
}

// Read returns the current usage. The first Read waits one CPU window (or
// until ctx is done) so that it never reports an unmeasured CPU of zero.
func (s *SystemSource) Read(ctx context.Context) (Usage, error) {
	var u Usage
	var err error
	u.MemoryBytes, u.MemoryLimitBytes, err = s.memory(ctx)
	if err != nil {
		return Usage{}, err
	}
	if u.MemoryLimitBytes > 0 {
		u.Memory = float64(u.MemoryBytes) / float64(u.MemoryLimitBytes)
	}
	u.CPU, u.CPUCores, err = s.cpu(ctx)
	if err != nil {
		return Usage{}, err
	}
	return u, nil
}

func (s *SystemSource) memory(ctx context.Context) (used, limit uint64, err error) {
	hostUsed, hostTotal, herr := s.host.memory(ctx)
	if s.cg != nil {
		ws, cgLimit, cerr := s.cg.Memory()
		if cerr == nil && cgLimit > 0 && (herr != nil || cgLimit < hostTotal) {
			return ws, cgLimit, nil
		}
		if cerr != nil && !errors.Is(cerr, cgroups.ErrNoCgroup) {
			return 0, 0, fmt.Errorf("resources: memory: %w", cerr)
		}
	}
	if herr != nil {
		return 0, 0, fmt.Errorf("resources: host memory: %w", herr)
	}
	return hostUsed, hostTotal, nil
}

// cpuSample is a cumulative CPU counter: busy seconds against capacity
// seconds (for a cgroup, wall time × quota).
type cpuSample struct {
	at       time.Time
	busy     float64
	capacity float64 // cumulative, host only; 0 for a cgroup
	cgroup   bool
	quota    float64
}

func (s *SystemSource) sampleCPU(ctx context.Context) (cpuSample, error) {
	now := s.now()
	if s.cg != nil {
		quota, ok, err := s.cg.CPUQuota()
		if err != nil {
			return cpuSample{}, fmt.Errorf("resources: cpu quota: %w", err)
		}
		if ok && quota < float64(runtime.NumCPU()) {
			usage, err := s.cg.CPUUsage()
			if err != nil {
				return cpuSample{}, fmt.Errorf("resources: cpu usage: %w", err)
			}
			return cpuSample{at: now, busy: usage.Seconds(), cgroup: true, quota: quota}, nil
		}
	}
	busy, total, err := s.host.cpuTimes(ctx)
	if err != nil {
		return cpuSample{}, fmt.Errorf("resources: host cpu: %w", err)
	}
	return cpuSample{at: now, busy: busy, capacity: total}, nil
}

// cpuFraction is the CPU used between two samples, 0..1.
func cpuFraction(prev, cur cpuSample) (float64, bool) {
	if prev.cgroup != cur.cgroup || !cur.at.After(prev.at) {
		return 0, false
	}
	var f float64
	if cur.cgroup {
		f = (cur.busy - prev.busy) / (cur.at.Sub(prev.at).Seconds() * cur.quota)
	} else {
		d := cur.capacity - prev.capacity
		if d <= 0 {
			return 0, false
		}
		f = (cur.busy - prev.busy) / d
	}
	return min(max(f, 0), 1), true
}

func (s *SystemSource) cpu(ctx context.Context) (float64, float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.cpuFraction(ctx)
	if err != nil {
		return 0, 0, err
	}
	cores := float64(runtime.NumCPU())
	if s.cpuPrev.cgroup {
		cores = s.cpuPrev.quota
	}
	return f, cores, nil
}

// cpuFraction must be called with s.mu held.
func (s *SystemSource) cpuFraction(ctx context.Context) (float64, error) {
	if s.cpuPrev.at.IsZero() {
		first, err := s.sampleCPU(ctx)
		if err != nil {
			return 0, err
		}
		s.cpuPrev = first
	}
	wait := s.window - s.now().Sub(s.cpuPrev.at)
	if s.haveCPU && wait > 0 {
		return s.cpuLast, nil
	}
	if wait > 0 {
		// No reading yet: wait out one window rather than report an
		// unmeasured zero.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
	cur, err := s.sampleCPU(ctx)
	if err != nil {
		return 0, err
	}
	f, ok := cpuFraction(s.cpuPrev, cur)
	s.cpuPrev = cur
	if !ok {
		// Counter kinds changed (a quota appeared) or time stood still: keep
		// the last value and measure from this sample on.
		return s.cpuLast, nil
	}
	s.cpuLast, s.haveCPU = f, true
	return f, nil
}

// hostReader reads host-wide numbers; a seam for tests.
type hostReader interface {
	memory(ctx context.Context) (used, total uint64, err error)
	cpuTimes(ctx context.Context) (busy, total float64, err error)
}

type gopsutilHost struct{}

func (gopsutilHost) memory(ctx context.Context) (uint64, uint64, error) {
	vm, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return 0, 0, err
	}
	// Available counts reclaimable cache as free: Total − Available is the
	// host's working set.
	if vm.Available > vm.Total {
		return 0, vm.Total, nil
	}
	return vm.Total - vm.Available, vm.Total, nil
}

// cpuTimes uses cumulative counters, never cpu.Percent(0, …): its baseline is
// shared by every caller in the process.
func (gopsutilHost) cpuTimes(ctx context.Context) (float64, float64, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return 0, 0, err
	}
	if len(ts) == 0 {
		return 0, 0, errors.New("no cpu times")
	}
	t := ts[0]
	idle := t.Idle + t.Iowait
	total := t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	return total - idle, total, nil
}
