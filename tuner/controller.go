package tuner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/resources"
)

// maxDevices bounds the per-device budgets kept on the stack in the hot path.
// Devices beyond it (more than 64 GPUs or MIG instances) are not admitted to.
const maxDevices = 64

// learnRate is the weight of one reading in a learned cost (per sample).
const learnRate = 0.05

// Controller owns the readings, the targets and the pending reservations of
// every supplier built on it. Create one per process; it is safe for
// concurrent use. Close stops its sampling goroutine.
type Controller struct {
	targetCPU, targetMem, targetGPU float64

	monitor  *resources.Monitor
	closeGPU func() error
	logger   log.Logger
	now      func() time.Time
	epoch    time.Time

	mu        sync.Mutex
	pending   slotList // reserved, or used within their settle time
	suppliers []*SlotSupplier
	devUUIDs  []string // stable device index for pending per device
	devBase   []float64
	waiters   int
	wake      chan struct{} // closed when a slot is released, if waiters > 0
	failing   bool
	baseMem   float64 // bytes used with no slot in use
	baseCPU   float64 // cores used with no slot in use
	baseSet   bool
	lastSeq   uint64
	memNoise  noise  // reading noise of Memory (fraction)
	cpuNoise  noise  // reading noise of CPU (fraction)
	sensorErr uint64 // transitions into failing readings

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
		targetCPU: opts.TargetCPU,
		targetMem: opts.TargetMemory,
		targetGPU: opts.TargetGPUMemory,
		logger:    opts.Logger,
		wake:      make(chan struct{}),
		done:      make(chan struct{}),
		stop:      make(chan struct{}),
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
		g = nil // not governed: do not spend NVML calls on it
	}
	m, err := resources.NewMonitor(resources.MonitorOptions{
		Source: opts.Source, GPU: g, Interval: opts.SampleInterval, StaleAfter: opts.StaleAfter, Logger: opts.Logger,
	})
	if err != nil {
		if c.closeGPU != nil {
			c.closeGPU()
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	c.monitor = m
	c.sysinfo = resources.NewSysInfoProvider(m)
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if c.metrics, err = newMetrics(c, mp); err != nil {
		m.Close()
		if c.closeGPU != nil {
			c.closeGPU()
		}
		return nil, err
	}
	go c.run()
	return c, nil
}

// Monitor returns the monitor the controller reads; use it for a
// worker.SysInfoProvider (resources.NewSysInfoProvider) or a status display.
func (c *Controller) Monitor() *resources.Monitor { return c.monitor }

func (c *Controller) sysInfo() worker.SysInfoProvider { return c.sysinfo }

// WaitReady waits for the first readings of every governed resource.
func (c *Controller) WaitReady(ctx context.Context) error {
	return c.monitor.WaitReady(ctx)
}

// Close stops sampling, unregisters metrics and shuts NVML down if the
// controller opened it. Suppliers refuse everything above MinSlots afterwards.
func (c *Controller) Close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		err = errors.Join(c.monitor.Close(), c.metrics.close())
		if c.closeGPU != nil {
			err = errors.Join(err, c.closeGPU())
		}
	})
	return err
}

// run learns costs and logs sensor transitions on every new snapshot.
func (c *Controller) run() {
	defer close(c.done)
	for {
		s := c.monitor.Snapshot()
		c.observe(s)
		select {
		case <-s.Changed():
		case <-c.stop:
			return
		}
	}
}

// clock returns the time since the controller started and the current time.
// time.Since on a monotonic epoch makes one monotonic clock read (half the
// cost of time.Now on the hot path) and still follows testing/synctest's
// fake clock inside a bubble.
func (c *Controller) clock() (int64, time.Time) {
	d := time.Since(c.epoch)
	return int64(d), c.epoch.Add(d)
}

// nanos returns the time since the controller started.
func (c *Controller) nanos() int64 { return int64(time.Since(c.epoch)) }

// governed reports the resources the controller has targets for.
func (c *Controller) governed() Resource {
	var r Resource
	if c.targetCPU > 0 {
		r |= CPU
	}
	if c.targetMem > 0 {
		r |= Memory
	}
	if c.targetGPU > 0 {
		r |= GPUMemory
	}
	return r
}

// freshness reports whether the readings a supplier needs are usable.
func (c *Controller) freshness(s *resources.Snapshot, need Resource, now time.Time) error {
	if need&(CPU|Memory) != 0 {
		if err := s.UsageOK(now); err != nil {
			return err
		}
	}
	if need&GPUMemory != 0 {
		if err := s.GPUOK(now); err != nil {
			return err
		}
	}
	return nil
}

// observe runs once per snapshot: it logs transitions between usable and
// failing readings and refines learned costs.
func (c *Controller) observe(s *resources.Snapshot) {
	nowNanos, now := c.clock()
	err := c.freshness(s, c.governed(), now)
	c.mu.Lock()
	wasFailing := c.failing
	c.failing = err != nil
	if err != nil && !wasFailing {
		c.sensorErr++
	}
	if s.Seq != c.lastSeq && err == nil {
		c.lastSeq = s.Seq
		c.memNoise.add(s.Usage.Memory)
		c.cpuNoise.add(s.Usage.CPU)
		c.learn(s, nowNanos)
	}
	c.mu.Unlock()
	switch {
	case err != nil && !wasFailing && s.Seq > 0:
		c.logger.Warn("headroom: readings unusable; admitting MinSlots only until they recover", "error", err)
	case err == nil && wasFailing:
		c.logger.Info("headroom: readings usable again; admission resumes")
	}
}

// deviceIndex returns the stable index of a device UUID, adding it if new;
// -1 if the table is full. Called with c.mu held.
func (c *Controller) deviceIndex(uuid string) int {
	for i, u := range c.devUUIDs {
		if u == uuid {
			return i
		}
	}
	if len(c.devUUIDs) == maxDevices {
		return -1
	}
	c.devUUIDs = append(c.devUUIDs, uuid)
	c.devBase = append(c.devBase, -1)
	return len(c.devUUIDs) - 1
}

// sumPending adds every pending slot's remaining cost, in resource units
// (cores, bytes), and drops slots whose footprint has settled. Called with
// c.mu held; allocation-free.
func (c *Controller) sumPending(now int64, gpuPending *[maxDevices]float64) (cpu, mem float64) {
	for s := c.pending.head; s != nil; {
		next := s.next
		w := 1.0
		if s.usedAt >= 0 {
			age := now - s.usedAt
			if age >= s.sup.settle {
				c.pending.remove(s)
				s.sup.settled++
				s = next
				continue
			}
			w = 1 - float64(age)/float64(s.sup.settle)
		}
		cpu += w * s.cost.CPUCores
		mem += w * float64(s.cost.MemoryBytes)
		if s.device >= 0 {
			gpuPending[s.device] += w * float64(s.cost.GPUMemoryBytes)
		}
		s = next
	}
	return cpu, mem
}

// learn refines each supplier's cost from the readings: what is in use above
// the idle baseline, shared among suppliers by their expected footprint per
// used slot. Called with c.mu held.
func (c *Controller) learn(s *resources.Snapshot, now int64) {
	var gpuPending [maxDevices]float64
	c.sumPending(now, &gpuPending) // also moves settled slots out of pending
	// Effective used slots per supplier: settled ones count fully, ramping
	// ones by how far into their settle time they are.
	var inUse bool
	for _, sup := range c.suppliers {
		sup.effUsed = float64(sup.settled)
		inUse = inUse || sup.used > 0
	}
	for sl := c.pending.head; sl != nil; sl = sl.next {
		if sl.usedAt >= 0 {
			sl.sup.effUsed += float64(now-sl.usedAt) / float64(sl.sup.settle)
		}
	}
	u := s.Usage
	memBytes := float64(u.MemoryBytes)
	cpuCores := u.CPU * u.CPUCores
	if !inUse || !c.baseSet {
		// Idle: whatever is in use belongs to something else.
		if !c.baseSet {
			c.baseMem, c.baseCPU, c.baseSet = memBytes, cpuCores, true
		} else {
			c.baseMem += 0.2 * (memBytes - c.baseMem)
			c.baseCPU += 0.2 * (cpuCores - c.baseCPU)
		}
	}
	var gpuUse, gpuBase float64
	for _, d := range s.GPUs {
		i := c.deviceIndex(d.UUID)
		if i < 0 {
			continue
		}
		if !inUse || c.devBase[i] < 0 {
			if c.devBase[i] < 0 {
				c.devBase[i] = float64(d.UsedBytes)
			} else {
				c.devBase[i] += 0.2 * (float64(d.UsedBytes) - c.devBase[i])
			}
		}
		gpuUse += float64(d.UsedBytes)
		gpuBase += c.devBase[i]
	}
	if !inUse {
		return
	}
	c.learnResource(Memory, memBytes-c.baseMem, func(sup *SlotSupplier) *float64 { return &sup.est.mem }, func(sup *SlotSupplier) float64 { return sup.floor.mem })
	if u.CPUCores > 0 {
		c.learnResource(CPU, cpuCores-c.baseCPU, func(sup *SlotSupplier) *float64 { return &sup.est.cpu }, func(sup *SlotSupplier) float64 { return sup.floor.cpu })
	}
	if len(s.GPUs) > 0 {
		c.learnResource(GPUMemory, gpuUse-gpuBase, func(sup *SlotSupplier) *float64 { return &sup.est.gpu }, func(sup *SlotSupplier) float64 { return sup.floor.gpu })
	}
}

// learnResource shares what is in use of one resource among the suppliers
// that govern it; usage by work no supplier governs for r stays unexplained
// and, since costs never fall below their floor, can only make admission
// more careful, never less.
func (c *Controller) learnResource(r Resource, attributable float64, est func(*SlotSupplier) *float64, floor func(*SlotSupplier) float64) {
	var expected, n float64
	for _, sup := range c.suppliers {
		if sup.need&r == 0 {
			continue
		}
		expected += *est(sup) * sup.effUsed
		n += sup.effUsed
	}
	if n < 1 {
		return // less than one slot's worth in use: too little signal
	}
	residual := attributable - expected
	for _, sup := range c.suppliers {
		if sup.need&r == 0 || sup.effUsed <= 0 {
			continue
		}
		share := sup.effUsed / n
		if expected > 0 {
			share = *est(sup) * sup.effUsed / expected
		}
		e := est(sup)
		*e += learnRate * residual * share / sup.effUsed
		if f := floor(sup); *e < f {
			*e = f
		}
		if *e < 0 {
			*e = 0
		}
	}
}

// slot is one reservation's record. Records are owned by their supplier and
// reused after release; only the permit itself is allocated per reservation.
type slot struct {
	// permit is the current reservation's permit; UserData points back at
	// the slot. It is allocated per reservation and never reused: the SDK
	// reads a permit after ReleaseSlot returns.
	permit     *worker.SlotPermit
	sup        *SlotSupplier
	prev, next *slot // in c.pending, or next in the supplier's free list
	inPending  bool
	issued     bool
	usedAt     int64 // -1 until MarkSlotUsed
	device     int   // GPU device index, -1 if none
	sticky     int8  // +1 sticky, -1 normal, 0 unknown
	cost       Cost  // expected cost at reservation
}

type slotList struct{ head, tail *slot }

func (l *slotList) push(s *slot) {
	s.prev, s.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
	s.inPending = true
}

func (l *slotList) remove(s *slot) {
	if !s.inPending {
		return
	}
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next, s.inPending = nil, nil, false
}

// noise estimates how much a reading wanders around the true value: the
// running mean of |r(t) − 2r(t−1) + r(t−2)|, the second difference, which is
// zero for a steady ramp and about 1.2× the amplitude of uniform noise, with
// each sample clipped so that one real jump does not count as noise.
// Admission adds it to the reading so that a reading that is low by chance
// is not taken for headroom. Called with c.mu held.
type noise struct {
	prev, prev2 float64
	n           int
	mean        float64
}

const (
	noiseWeight    = 0.05
	noiseClipFloor = 0.001
	noiseSeed      = 8
)

func (z *noise) add(r float64) {
	if z.n >= 2 {
		d := r - 2*z.prev + z.prev2
		if d < 0 {
			d = -d
		}
		// Real events (a batch of tasks ending) are rare large jumps; noise is
		// many small ones. Clipping each sample to a few times the estimate
		// keeps events out while letting true noise grow the estimate.
		if k := z.n - 2; k < noiseSeed {
			// Seed with a plain mean of the first samples, unclipped, so a
			// noisy source is recognised before the first admissions rush in.
			z.mean += (d - z.mean) / float64(k+1)
		} else {
			d = min(d, max(3*z.mean, noiseClipFloor))
			z.mean += noiseWeight * (d - z.mean)
		}
	}
	z.prev2, z.prev = z.prev, r
	z.n++
}

// margin is the amount admission adds to a reading.
func (z *noise) margin() float64 { return z.mean / 1.2 }
