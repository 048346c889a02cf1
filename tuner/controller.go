package tuner

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

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
	target   vec // fractions; GPU per device
	monitor  *resources.Monitor
	closeGPU func() error
	logger   log.Logger
	epoch    time.Time
	learner  learner // sampling goroutine only
	buf      sample  // sampling goroutine only

	mu         sync.Mutex
	classes    []*class
	classEpoch uint64 // bumps when classes change
	usedSlots  []*slot
	released   []releaseSample // used slots released in the last lingerMax
	unused     int             // reserved slots not yet used, all classes
	b          budget
	devUUIDs   []string
	waiters    list.List // of *waiter, in arrival order
	usageOK    bool
	gpuOK      bool
	closed     bool
	failing    bool
	sensorErr  uint64 // transitions into unusable readings
	lastChange int64  // when a slot was last used or released (controller clock)
	seq        uint64 // the snapshot the budget's readings are from
	lastUsage  time.Time
	lastGPU    time.Time

	metrics *metrics
	sysinfo *resources.SysInfoProvider
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
		logger: opts.Logger, done: make(chan struct{}), stop: make(chan struct{}),
		lastChange: math.MinInt64,
	}
	c.epoch = time.Now()
	g := opts.GPU
	if g == nil && opts.TargetGPUMemory > 0 {
		src, err := gpu.NewNVMLSource(gpu.NVMLOptions{})
		if err != nil {
			return nil, fmt.Errorf("%w: TargetGPUMemory is set but no GPU can be read: %w", ErrInvalidOptions, err)
		}
		g, c.closeGPU = src, src.Close
	}
	if opts.TargetGPUMemory == 0 {
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

// WaitReady waits for the first readings of every governed resource.
func (c *Controller) WaitReady(ctx context.Context) error {
	return c.monitor.WaitReady(ctx)
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
	for {
		s := c.monitor.Snapshot()
		wait := c.onReading(s)
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
	return g
}

// readingErrs says why the governed readings in s are unusable at t.
func (c *Controller) readingErrs(s *resources.Snapshot, t time.Time) (usage, gpu error) {
	g := c.governed()
	if g&(CPU|Memory) != 0 {
		usage = s.UsageOK(t)
	}
	if g&GPUMemory != 0 {
		gpu = s.GPUOK(t)
	}
	return usage, gpu
}

// judge sets whether the readings in s are usable now. Called with c.mu held.
func (c *Controller) judge(s *resources.Snapshot) {
	usage, gpu := c.readingErrs(s, time.Now())
	c.usageOK = !c.closed && usage == nil
	c.gpuOK = !c.closed && gpu == nil
}

// fresh reports whether the readings class k needs are usable.
func (c *Controller) fresh(k *class) bool {
	if k.closed {
		return false
	}
	if k.need&(CPU|Memory) != 0 && !c.usageOK {
		return false
	}
	return !k.isGPU || c.gpuOK
}

// logTransition logs when readings become unusable or usable again, once
// each, naming what failed; the first snapshot (before any reading) is not
// a failure.
func (c *Controller) logTransition(s *resources.Snapshot) {
	c.mu.Lock()
	ok := c.usageOK && c.gpuOK
	was := c.failing
	first := s.Seq == 0
	if !first {
		c.failing = !ok
		if !ok && !was {
			c.sensorErr++
		}
	}
	c.mu.Unlock()
	switch {
	case first:
	case !ok && !was:
		usage, gpu := c.readingErrs(s, time.Now())
		c.logger.Warn("headroom: readings unusable; admitting MinSlots only until they recover", "error", cmp.Or(usage, gpu))
	case ok && was:
		c.logger.Info("headroom: readings usable again; admission resumes")
	}
}

// onReading brings the budget up to date with snapshot s, learns from it
// and returns how long until s goes stale (0: already unusable).
func (c *Controller) onReading(s *resources.Snapshot) time.Duration {
	c.mu.Lock()
	c.apply(s)
	learn := c.copySample(s)
	c.mu.Unlock()
	if learn {
		est, base, sigma := c.learner.step(&c.buf)
		c.mu.Lock()
		if c.buf.epoch == c.classEpoch {
			c.publish(est, base, sigma)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.resum()
	c.notify()
	ok := c.usageOK && c.gpuOK
	c.mu.Unlock()
	c.logTransition(s)
	if !ok {
		return 0
	}
	var at time.Time
	g := c.governed()
	if g&(CPU|Memory) != 0 {
		at = s.UsageAt
	}
	if g&GPUMemory != 0 && (at.IsZero() || s.GPUAt.Before(at)) {
		at = s.GPUAt
	}
	return time.Until(at.Add(s.StaleAfter)) + time.Nanosecond // stale strictly after
}

// apply takes snapshot s's readings into the budget if they are newer than
// its own, so that a reservation never judges by an older reading than the
// latest published. It is cheap (no walk over slots); learning and the sums
// follow on the sampling goroutine. Called with c.mu held.
func (c *Controller) apply(s *resources.Snapshot) {
	if s.Seq != c.seq {
		c.seq = s.Seq
		c.judge(s)
		c.setBudget(s)
	}
}

// setBudget sets the budget's readings from s. Called with c.mu held.
func (c *Controller) setBudget(s *resources.Snapshot) {
	b := &c.b
	if !s.UsageAt.IsZero() {
		u := s.Usage
		b.usageAt = c.at(s.UsageAt)
		b.cpu.set(c.target[resCPU], u.CPU, u.CPUCores)
		b.mem.set(c.target[resMem], u.Memory, float64(u.MemoryLimitBytes))
	}
	if s.GPUAt.IsZero() {
		return
	}
	b.gpuAt = c.at(s.GPUAt)
	b.seen = [maxDevices]bool{}
	for _, d := range s.GPUs {
		i := c.devIndex(d.UUID)
		if i < 0 || d.TotalBytes == 0 {
			continue
		}
		b.seen[i] = true
		total := float64(d.TotalBytes)
		b.gpu[i].set(c.target[resGPU], float64(d.UsedBytes)/total, total)
	}
}

// devIndex returns the stable index of a device UUID, adding it if new; -1
// if the table is full. Called with c.mu held.
func (c *Controller) devIndex(uuid string) int {
	for i, u := range c.devUUIDs {
		if u == uuid {
			return i
		}
	}
	if len(c.devUUIDs) == maxDevices {
		return -1
	}
	c.devUUIDs = append(c.devUUIDs, uuid)
	c.b.ndev = len(c.devUUIDs)
	return len(c.devUUIDs) - 1
}

// copySample copies what the learner needs from reading s and reports
// whether there is anything to learn: a new usable reading taken after the
// last change to the used slots (a slot used or released after the reading
// may or may not be in it). Called with c.mu held.
func (c *Controller) copySample(s *resources.Snapshot) bool {
	m := &c.buf
	m.epoch = c.classEpoch
	m.new = [numRes]bool{}
	newUsage := c.usageOK && !s.UsageAt.IsZero() && !s.UsageAt.Equal(c.lastUsage) && c.at(s.UsageAt) > c.lastChange
	newGPU := c.gpuOK && !s.GPUAt.IsZero() && !s.GPUAt.Equal(c.lastGPU) && c.at(s.GPUAt) > c.lastChange
	if newUsage {
		c.lastUsage = s.UsageAt
		u := s.Usage
		m.at[resCPU], m.at[resMem] = c.b.usageAt, c.b.usageAt
		m.new[resCPU], m.new[resMem] = c.target[resCPU] > 0 && u.CPUCores > 0, c.target[resMem] > 0 && u.MemoryLimitBytes > 0
		m.read = [2]float64{c.b.cpu.read, c.b.mem.read}
		m.cap = [2]float64{u.CPUCores, float64(u.MemoryLimitBytes)}
	}
	if newGPU {
		c.lastGPU = s.GPUAt
		m.at[resGPU], m.new[resGPU] = c.b.gpuAt, true
	}
	m.gpu, m.gpuCap = m.gpu[:0], m.gpuCap[:0]
	for i := range c.devUUIDs {
		v, cp := math.NaN(), 0.0
		if c.b.seen[i] {
			v, cp = c.b.gpu[i].read, c.b.gpu[i].limit/c.target[resGPU]
		}
		m.gpu, m.gpuCap = append(m.gpu, v), append(m.gpuCap, cp)
	}
	if !newUsage && !newGPU {
		return false
	}
	m.slots = m.slots[:0]
	for _, sl := range c.usedSlots {
		m.slots = append(m.slots, slotSample{cls: sl.cls.id, dev: sl.device, usedAt: sl.usedAt})
	}
	c.trimReleased(c.nanos())
	m.released = append(m.released[:0], c.released...)
	m.need, m.charge, m.seen, m.life = m.need[:0], m.charge[:0], m.seen[:0], m.life[:0]
	for _, k := range c.classes {
		m.need, m.charge, m.seen, m.life = append(m.need, k.need), append(m.charge, k.charge), append(m.seen, k.seen), append(m.life, k.life)
	}
	return true
}

// maxReleased bounds the releases remembered for learning.
const maxReleased = 4096

// trimReleased forgets releases older than lingerMax, and the older half if
// that leaves maxReleased or more. Called with c.mu held.
func (c *Controller) trimReleased(now int64) {
	cut := now - int64(lingerMax)
	i := 0
	for i < len(c.released) && c.released[i].at < cut {
		i++
	}
	if len(c.released)-i >= maxReleased {
		i = len(c.released) - maxReleased/2
	}
	c.released = append(c.released[:0], c.released[i:]...)
}

// publish takes what the learner made of the latest reading. Called with
// c.mu held; the caller resums.
func (c *Controller) publish(est []estimate, base [numRes][]float64, sigma [numRes]float64) {
	for i, k := range c.classes {
		e := &est[i]
		k.learned, k.known, k.confirmed, k.lower, k.prof = e.learned, e.known, e.confirmed, e.lower, e.prof
		k.settle = 0
		for r := res(0); r < numRes; r++ {
			if k.need.has(r) && e.known.has(r) {
				k.settle = max(k.settle, e.settle[r])
			}
		}
		k.price()
	}
	if len(base[resCPU]) > 0 {
		c.b.cpu.base, c.b.cpu.margin = base[resCPU][0], sigma[resCPU]
		c.b.mem.base, c.b.mem.margin = base[resMem][0], sigma[resMem]
	}
	for i, v := range base[resGPU] {
		if i < c.b.ndev {
			c.b.gpu[i].base, c.b.gpu[i].margin = v, sigma[resGPU]
		}
	}
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
