package resources

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/log"

	"github.com/headroomhq/headroom/gpu"
)

// Monitor defaults.
const (
	DefaultInterval = 250 * time.Millisecond
	// DefaultStaleIntervals is how many intervals without a successful read
	// make a snapshot stale when MonitorOptions.StaleAfter is zero.
	DefaultStaleIntervals = 8
)

// ErrStale reports a reading older than its StaleAfter, or none at all yet.
var ErrStale = errors.New("resources: reading is stale")

// MonitorOptions configures [NewMonitor].
type MonitorOptions struct {
	// Source reads CPU and memory. Nil: NewSystemSource with defaults.
	Source Source
	// GPU reads GPU memory. Nil: no GPU readings (snapshots carry GPUErr
	// gpu.ErrNoGPU).
	GPU gpu.Source
	// Interval between samples. Zero: DefaultInterval. Must be positive.
	Interval time.Duration
	// StaleAfter is how old the last successful reading may be before
	// snapshots report it stale. Zero: DefaultStaleIntervals × Interval.
	StaleAfter time.Duration
	// Logger receives one debug line per transition between healthy and
	// failing readings (what to do about them is the reader's to say: the
	// tuner logs its own warning). Nil: slog.Default().
	Logger log.Logger
}

// Snapshot is one published set of readings. It is immutable: share it, do
// not modify it (GPUs included).
type Snapshot struct {
	Seq        uint64       // increases by one per published snapshot
	Usage      Usage        // latest successful CPU and memory reading
	UsageAt    time.Time    // when Usage was read; zero before the first success
	UsageErr   error        // error of the latest attempt; nil if it succeeded
	GPUs       []gpu.Device // latest successful GPU reading
	GPUAt      time.Time    // when GPUs were read; zero before the first success
	GPUErr     error        // error of the latest GPU attempt; nil if it succeeded
	StaleAfter time.Duration

	next chan struct{} // closed when a newer snapshot is published
}

// Changed returns a channel that is closed when a newer snapshot replaces
// this one, so waiters need no polling loop.
func (s *Snapshot) Changed() <-chan struct{} { return s.next }

// UsageOK returns nil if Usage is fresh at now, else why not.
func (s *Snapshot) UsageOK(now time.Time) error {
	return freshness(s.UsageAt, s.UsageErr, s.StaleAfter, now)
}

// GPUOK returns nil if GPUs are fresh at now, else why not.
func (s *Snapshot) GPUOK(now time.Time) error {
	return freshness(s.GPUAt, s.GPUErr, s.StaleAfter, now)
}

func freshness(at time.Time, err error, staleAfter time.Duration, now time.Time) error {
	switch {
	case err != nil:
		return err
	case at.IsZero():
		return fmt.Errorf("%w: no reading yet", ErrStale)
	case now.Sub(at) > staleAfter:
		return fmt.Errorf("%w: last reading %v ago", ErrStale, now.Sub(at).Round(time.Millisecond))
	}
	return nil
}

// Monitor samples sources on its own goroutine and publishes snapshots.
// All methods are safe for concurrent use. Close stops the goroutine.
type Monitor struct {
	src        Source
	gpu        gpu.Source
	interval   time.Duration
	staleAfter time.Duration
	logger     log.Logger

	snap      atomic.Pointer[Snapshot]
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// NewMonitor validates opts and starts sampling.
func NewMonitor(opts MonitorOptions) (*Monitor, error) {
	if opts.Interval < 0 {
		return nil, fmt.Errorf("%w: Interval %v must be positive", ErrInvalidOptions, opts.Interval)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.StaleAfter < 0 {
		return nil, fmt.Errorf("%w: StaleAfter %v must be positive", ErrInvalidOptions, opts.StaleAfter)
	}
	if opts.StaleAfter == 0 {
		opts.StaleAfter = DefaultStaleIntervals * opts.Interval
	}
	if opts.StaleAfter < opts.Interval {
		return nil, fmt.Errorf("%w: StaleAfter %v is shorter than Interval %v", ErrInvalidOptions, opts.StaleAfter, opts.Interval)
	}
	if opts.Logger == nil {
		opts.Logger = log.NewStructuredLogger(slog.Default())
	}
	if opts.Source == nil {
		s, err := NewSystemSource(SystemSourceOptions{})
		if err != nil {
			return nil, err
		}
		opts.Source = s
	}
	m := &Monitor{
		src:        opts.Source,
		gpu:        opts.GPU,
		interval:   opts.Interval,
		staleAfter: opts.StaleAfter,
		logger:     opts.Logger,
		done:       make(chan struct{}),
	}
	gpuErr := error(nil)
	if m.gpu == nil {
		gpuErr = gpu.ErrNoGPU
	}
	m.snap.Store(&Snapshot{StaleAfter: m.staleAfter, GPUErr: gpuErr, next: make(chan struct{})})
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.run()
	return m, nil
}

// Snapshot returns the latest snapshot. It never blocks and never allocates.
func (m *Monitor) Snapshot() *Snapshot { return m.snap.Load() }

// Interval is the sampling interval.
func (m *Monitor) Interval() time.Duration { return m.interval }

// WaitReady blocks until CPU and memory have been read successfully once
// (and GPUs too, if a GPU source was given), or ctx is done.
func (m *Monitor) WaitReady(ctx context.Context) error {
	for {
		s := m.Snapshot()
		if !s.UsageAt.IsZero() && (m.gpu == nil || !s.GPUAt.IsZero()) {
			return nil
		}
		select {
		case <-s.Changed():
		case <-ctx.Done():
			return fmt.Errorf("resources: monitor not ready: %w (last errors: usage %v, gpu %v)", ctx.Err(), s.UsageErr, s.GPUErr)
		case <-m.done:
			return errors.New("resources: monitor closed")
		}
	}
}

// Close stops sampling and waits for the goroutine to exit. A read in flight
// is cancelled. Safe to call more than once.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() { m.cancel() })
	<-m.done
	return nil
}

func (m *Monitor) run() {
	defer close(m.done)
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.sample()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Monitor) sample() {
	prev := m.Snapshot()
	next := *prev
	next.Seq++
	next.next = make(chan struct{})

	ctx, cancel := context.WithTimeout(m.ctx, m.staleAfter)
	defer cancel()
	u, err := m.src.Read(ctx)
	if m.ctx.Err() != nil {
		return // closing: publish nothing half-read
	}
	if err == nil {
		next.Usage, next.UsageAt, next.UsageErr = u, time.Now(), nil
	} else {
		next.UsageErr = fmt.Errorf("resources: read usage: %w", err)
	}
	if m.gpu != nil {
		devs, gerr := m.gpu.Devices(ctx)
		if gerr == nil {
			next.GPUs, next.GPUAt, next.GPUErr = devs, time.Now(), nil
		} else {
			next.GPUErr = gerr
		}
	}
	m.snap.Store(&next)
	close(prev.next)
	m.logTransition("cpu/memory", prev.UsageErr, next.UsageErr, prev.Seq == 0)
	if m.gpu != nil {
		m.logTransition("gpu", prev.GPUErr, next.GPUErr, prev.Seq == 0)
	}
}

// logTransition logs once when readings start failing and once when they
// recover, never on every sample.
func (m *Monitor) logTransition(what string, before, after error, first bool) {
	switch {
	case after != nil && (before == nil || first):
		m.logger.Debug("resources: reading failing", "resource", what, "error", after)
	case after == nil && before != nil && !first:
		m.logger.Debug("resources: reading recovered", "resource", what)
	}
}
