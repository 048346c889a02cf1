package tuner

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric/noop"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/resources"
)

// Controller owns the readings, the targets and the budget that every
// supplier built on it admits against. Create one per process; it is safe
// for concurrent use. Close stops its sampling goroutine.
//
// On each new reading the controller sets the budget from it, hands a copy
// of the used slots to its learner (off the lock), then publishes what was
// learned: every class's charge and footprint profile and the usage of
// everything else; see docs/design.md.
type Controller struct {
	target vec // fractions; GPU per device
	// targetEnc is TargetEncoder; 0 also where no GPU can be read (then
	// Encoder is not governed: encoder.go).
	targetEnc float64
	monitor   *resources.Monitor
	closeGPU  func() error
	logger    log.Logger
	attrs     []attribute.KeyValue // ControllerOptions.MetricAttributes
	sdkSeries bool                 // ControllerOptions.SDKSeries
	epoch     time.Time
	learner   learner // sampling goroutine only
	buf       sample  // sampling goroutine only

	mu          sync.Mutex
	classes     []*class
	classEpoch  uint64 // bumps when classes change
	usedSlots   []*slot
	released    []releaseSample // used slots released in the last lingerMax
	unused      int             // reserved slots not yet used, all classes
	b           budget
	devUUIDs    []string
	devNames    []string                // product name per device index
	defaultCap  float64                 // ControllerOptions.EncoderSessions; 0: none declared
	learnedCap  map[string]float64      // encoder sessions per device, per model, learned from a refusal (encoder.go)
	encNote     string                  // encoder fallback to log ("": none)
	encShown    map[string]float64      // most sessions a reading has shown on a device, per model (sessionwait.go)
	encProbe    map[string]sessionProbe // per model: the activity trying a level not yet shown
	encNoted    bool
	waiters     list.List // of *waiter, in arrival order
	usageOK     bool
	gpuOK       bool
	closed      bool
	failing     bool
	sensorErr   uint64 // transitions into unusable readings
	lastRelease int64  // when a used slot was last released (controller clock)
	seq         uint64 // the snapshot the budget's readings are from
	lastUsage   time.Time
	lastGPU     time.Time
	health      []healthChange // device health changes not logged yet

	metrics *metrics
	sysinfo *resources.SysInfoProvider
	ready   chan struct{} // closed once a usable reading is in the budget and the learner
	done    chan struct{}
	stop    chan struct{}
	once    sync.Once
}

// NewController validates opts, starts sampling and returns the controller.
// Admission is closed (MinSlots only) until the first readings arrive; use
// WaitReady to wait for them.
func NewController(opts ControllerOptions) (*Controller, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = log.NewStructuredLogger(slog.Default())
	}
	c := &Controller{
		target: vec{opts.TargetCPU, opts.TargetMemory, opts.TargetGPUMemory},
		logger: opts.Logger, ready: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{}),
		lastRelease: math.MinInt64,
	}
	c.epoch = time.Now()
	c.targetEnc, c.defaultCap = opts.TargetEncoder, float64(opts.EncoderSessions)
	c.attrs, c.sdkSeries = slices.Clone(opts.MetricAttributes), opts.SDKSeries
	c.encShown, c.encProbe, c.learnedCap = map[string]float64{}, map[string]sessionProbe{}, map[string]float64{}
	g := opts.GPU
	if g == nil && (opts.TargetGPUMemory > 0 || opts.TargetEncoder > 0) {
		src, err := gpu.NewNVMLSource(gpu.NVMLOptions{})
		switch {
		case err == nil:
			g, c.closeGPU = src, src.Close
		case opts.TargetGPUMemory > 0:
			return nil, fmt.Errorf("%w: TargetGPUMemory is set but no GPU can be read: %w", ErrInvalidOptions, err)
		default:
			c.targetEnc = 0
			c.logger.Warn("headroom: TargetEncoder is set but no GPU can be read: classes that consume Encoder are budgeted on their other resources", "error", err)
		}
	}
	if opts.TargetGPUMemory == 0 && c.targetEnc == 0 {
		g = nil // not governed: spend no NVML calls on it
	}
	m, err := resources.NewMonitor(resources.MonitorOptions{
		Source: opts.Source, GPU: g, Interval: opts.SampleInterval, StaleAfter: opts.StaleAfter, Logger: opts.Logger,
	})
	if err != nil {
		c.closeOpened()
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	c.monitor = m
	c.sysinfo = resources.NewSysInfoProvider(m)
	mp := opts.MeterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	if c.metrics, err = newMetrics(c, mp); err != nil {
		m.Close()
		c.closeOpened()
		return nil, err
	}
	go c.run()
	return c, nil
}

func (c *Controller) closeOpened() error {
	if c.closeGPU != nil {
		return c.closeGPU()
	}
	return nil
}

// Snapshot returns the latest readings.
func (c *Controller) Snapshot() *resources.Snapshot { return c.monitor.Snapshot() }

func (c *Controller) sysInfo() worker.SysInfoProvider { return c.sysinfo }

// WaitReady waits until the controller has taken its first usable readings
// of every governed resource into its budget and its learner. Slots used
// before then may start at the very time of the first reading, which then
// cannot say whether it holds them; it is the only reading of the host
// without them, and while as many slots stay in use no later one can take
// its place (TestOneSlotInUseFromTheStartIsLearned).
func (c *Controller) WaitReady(ctx context.Context) error {
	if err := c.monitor.WaitReady(ctx); err != nil {
		return err
	}
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tuner: readings not usable yet: %w", ctx.Err())
	case <-c.done:
		return errors.New("tuner: controller closed")
	}
}

// Close stops sampling and unregisters metrics; it shuts NVML down only if
// the controller opened it (ControllerOptions.GPU nil). Suppliers refuse
// everything above MinSlots afterwards.
func (c *Controller) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.mu.Lock()
		c.closed, c.usageOK, c.gpuOK = true, false, false
		c.mu.Unlock()
		err = errors.Join(c.monitor.Close(), c.metrics.close(), c.closeOpened())
	})
	return err
}

// run takes every new snapshot as it is published, and marks readings
// stale when none arrives in time, so the hot path never reads the clock to
// judge freshness.
func (c *Controller) run() {
	defer close(c.done)
	stale := time.NewTimer(time.Hour)
	stale.Stop()
	defer stale.Stop()
	ready := false
	for {
		s := c.monitor.Snapshot()
		wait := c.onReading(s)
		if wait > 0 && !ready {
			ready = true
			close(c.ready)
		}
		var tc <-chan time.Time
		if wait > 0 {
			stale.Reset(wait)
			tc = stale.C
		}
		select {
		case <-s.Changed():
			stale.Stop()
		case <-tc:
			c.mu.Lock()
			c.judge(s)
			c.mu.Unlock()
			c.logTransition(s)
			select {
			case <-s.Changed():
			case <-c.stop:
				return
			}
		case <-c.stop:
			return
		}
	}
}

func (c *Controller) nanos() int64 { return int64(time.Since(c.epoch)) }

func (c *Controller) at(t time.Time) int64 { return int64(t.Sub(c.epoch)) }

// governed reports the resources the controller has targets for.
func (c *Controller) governed() Resource {
	var g Resource
	for r := res(0); r < numRes; r++ {
		if c.target[r] > 0 {
			g |= 1 << r
		}
	}
	if c.targetEnc > 0 {
		g |= Encoder
	}
	return g
}

// readingErrs says why the governed readings in s are unusable at t.
func (c *Controller) readingErrs(s *resources.Snapshot, t time.Time) (usage, gpu error) {
	g := c.governed()
	if g&(CPU|Memory) != 0 {
		usage = s.UsageOK(t)
	}
	if g&(GPUMemory|Encoder) != 0 {
		gpu = s.GPUOK(t)
	}
	return usage, gpu
}

// judge sets whether the readings in s are usable now. Called with c.mu held.
func (c *Controller) judge(s *resources.Snapshot) {
	usage, g := c.readingErrs(s, time.Now())
	c.usageOK = !c.closed && usage == nil
	c.gpuOK = !c.closed && g == nil
	c.b.lost = errors.Is(g, gpu.ErrGPUUnavailable)
}

// fresh reports whether the readings class k needs are usable.
func (c *Controller) fresh(k *class) bool {
	if k.closed {
		return false
	}
	if k.need&(CPU|Memory) != 0 && !c.usageOK {
		return false
	}
	return !k.onDevice || c.gpuOK
}

// addClass registers a supplier's class. Names are unique per controller:
// they are the metrics' supplier attribute.
func (c *Controller) addClass(k *class) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range c.classes {
		if o.name == k.name {
			return invalid("Name", "%q is already used by a supplier on this controller (names label metrics; give each pool's suppliers their own)", k.name)
		}
	}
	k.id = len(c.classes)
	c.classes = append(c.classes, k)
	c.classEpoch++
	return nil
}

// dropClass removes a closed class once none of its slots is issued.
// Called with c.mu held.
func (c *Controller) dropClass(k *class) {
	if !k.closed || k.issued > 0 || k.id < 0 {
		return
	}
	c.classes = append(c.classes[:k.id], c.classes[k.id+1:]...)
	for i, o := range c.classes {
		o.id = i
	}
	k.id = -1
	c.released = c.released[:0]
	c.classEpoch++
}
