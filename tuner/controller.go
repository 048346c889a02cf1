package tuner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
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
	epoch    time.Time

	mu      sync.Mutex
	pending slotList // used within their settle time
	used    slotList // used, settled or not (for learning settle times)
	// Reserved and not yet used slots hold their supplier's current cost
	// until used or released, whenever a reading is taken: they are summed,
	// not listed (see hold, resumReserved).
	reserved                 int
	reservedCPU, reservedMem float64
	reservedGPU              [maxDevices]float64
	reservedOnGPU            bool // reservedGPU may be non-zero
	suppliers                []*SlotSupplier
	devUUIDs                 []string // stable device index for pending per device
	devBase                  []float64
	waiters                  int
	wake                     chan struct{} // closed when a slot is released, if waiters > 0
	failing                  bool
	closed                   bool
	baseMem                  float64 // bytes used with no slot in use
	baseCPU                  float64 // cores used with no slot in use
	baseSet                  bool
	memNoise                 noise // noise of the Memory reading around the model (fraction)
	cpuNoise                 noise // noise of the CPU reading around the model (fraction)
	// What settled slots are expected to use (cores, bytes): the part of
	// the model's expected footprint that is no longer pending.
	settledCPU, settledMem float64
	settledGPU             [maxDevices]float64
	gpuNoise               [maxDevices]noise // residual of each device's reading to the model
	lastGPUAt              time.Time
	// Footprint of used slots released since the latest reading (bytes),
	// which that reading showed and the next should not (see reclaim).
	rels []released // used slots released, not yet judged by a reading
	// How far the latest reading sits below the model (bytes): room that
	// reading already gives, which prompt releases must not credit again
	// (see deficit).
	memDeficit float64
	gpuDeficit [maxDevices]float64
	// Recent learning residuals per resource.
	cpuResid, memResid, gpuResid median3
	sensorErr                    uint64 // transitions into failing readings

	// The admission budget, as of snapshot seq: what the slots reserved but
	// not used yet and one more slot may use (bytes, cores, bytes per
	// device), after the reading, the noise margin and every used slot's
	// remaining cost. A slot fits if its cost ≤ room − reserved sum. Used
	// slots' releases adjust it; the next snapshot recomputes it. Reserving
	// or releasing an unused slot only moves the reserved sums: the hot path
	// stores as little as possible inside the lock.
	seq              uint64
	synced           bool
	usageOK, gpuOK   bool // readings usable (set per snapshot, cleared by the stale timer)
	lastUsageAt      time.Time
	memRoom, cpuRoom float64
	gpuRoom          [maxDevices]float64
	gpuSeen          [maxDevices]bool // device is in the latest reading

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
		used:      slotList{k: inUsed},
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
		c.mu.Lock()
		c.closed, c.usageOK, c.gpuOK = true, false, false
		c.mu.Unlock()
		err = errors.Join(c.monitor.Close(), c.metrics.close())
		if c.closeGPU != nil {
			err = errors.Join(err, c.closeGPU())
		}
	})
	return err
}

// run brings the budget up to date on every new snapshot, even when no
// slot is being reserved, and marks readings stale when none arrives in
// time, so the hot path never needs the clock to judge freshness.
func (c *Controller) run() {
	defer close(c.done)
	stale := time.NewTimer(time.Hour)
	stale.Stop()
	defer stale.Stop()
	for {
		s := c.monitor.Snapshot()
		wait := c.observe(s, false)
		var tc <-chan time.Time
		if wait > 0 {
			stale.Reset(wait)
			tc = stale.C
		}
		select {
		case <-s.Changed():
			stale.Stop()
		case <-tc:
			c.observe(s, true)
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

// nanos returns the time since the controller started. time.Since on a
// monotonic epoch is one clock read (half the cost of time.Now) and follows
// testing/synctest's fake clock inside a bubble.
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

// observe syncs the budget with s (or, if recheck, re-judges its
// freshness now), logs transitions between usable and failing readings, and
// returns how long until s goes stale (0: already unusable).
func (c *Controller) observe(s *resources.Snapshot, recheck bool) time.Duration {
	c.mu.Lock()
	if recheck {
		if c.seq == s.Seq && c.synced {
			c.judge(s, c.nanos())
		}
	} else {
		c.sync(s)
	}
	wasFailing := c.failing
	ok := c.usageOK && c.gpuOK
	c.failing = !ok
	if !ok && !wasFailing {
		c.sensorErr++
	}
	c.mu.Unlock()
	switch {
	case !ok && !wasFailing && s.Seq > 0:
		usage, gpu := c.readingErrs(s, time.Now())
		c.logger.Warn("headroom: readings unusable; admitting MinSlots only until they recover", "error", cmp.Or(usage, gpu))
	case ok && wasFailing:
		c.logger.Info("headroom: readings usable again; admission resumes")
	}
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
	// freshness fails strictly after StaleAfter.
	return time.Until(at.Add(s.StaleAfter)) + time.Nanosecond
}

// readingErrs says why the governed readings in s are unusable at t: the
// CPU/memory reading if CPU or memory has a target, the GPU reading if GPU
// memory has one (nil: usable or not governed).
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

// judge sets whether the readings in s are usable at now. Called with c.mu
// held.
func (c *Controller) judge(s *resources.Snapshot, now int64) {
	usage, gpu := c.readingErrs(s, c.epoch.Add(time.Duration(now)))
	c.usageOK = !c.closed && usage == nil
	c.gpuOK = !c.closed && gpu == nil
}

// fresh reports whether the readings a supplier needs are usable. Called
// with c.mu held.
func (c *Controller) fresh(need Resource) bool {
	if need&(CPU|Memory) != 0 && !c.usageOK {
		return false
	}
	return need&GPUMemory == 0 || c.gpuOK
}

// at converts a reading time to the controller's clock.
func (c *Controller) at(t time.Time) int64 { return int64(t.Sub(c.epoch)) }

// sync recomputes the budget from snapshot s if it is newer than the one
// the budget was built on. A pending slot's remaining cost is taken at the
// time of the reading, not now: what appeared since is in neither the
// reading nor the pending, so pairing a reading with a later pending would
// undercount. Learning and the noise estimate advance once per new reading.
// Called with c.mu held.
func (c *Controller) sync(s *resources.Snapshot) {
	if !c.synced || s.Seq != c.seq {
		c.resync(s) // kept out of line so that this check inlines on the hot path
	}
}

func (c *Controller) resync(s *resources.Snapshot) {
	c.seq, c.synced = s.Seq, true
	c.judge(s, c.nanos())
	tu, tg := c.at(s.UsageAt), c.at(s.GPUAt)
	m := c.modelAt(tu, tg)
	// A later reading cannot tell what releases before an unusable one freed.
	c.dropReleased(!c.usageOK, !c.gpuOK)
	u := s.Usage
	newUsage := c.usageOK && !s.UsageAt.Equal(c.lastUsageAt)
	// A slot released after the reading was taken (it was in flight) may or
	// may not be in it: such a reading teaches nothing (noise, costs, settle
	// times), and its releases are judged by the next one.
	ambiguous := false
	if newUsage {
		// Noise is what the model does not explain: the reading minus the
		// footprint used slots are expected to have by now. Known ramps and
		// ends then do not count as noise; only wandering readings and
		// footprints unlike the declared cost do.
		c.lastUsageAt = s.UsageAt
		mem, cpu := u.Memory, u.CPU
		var released verdict
		ambiguous = c.lateReleased(tu, -1) > 0
		if lim := float64(u.MemoryLimitBytes); lim > 0 {
			footprint := c.settledMem + m.vmem
			mem -= footprint / lim
			surplus := unmodeled(c.baseMem, c.baseSet, footprint, memInUse(u))
			rel := c.takeReleased(tu, -1) / lim
			released = releaseVerdict(surplus/lim, rel, c.memNoise.margin).and(c.memNoise.jumpVerdict(mem, rel))
			c.memDeficit = deficit(surplus)
		} else {
			c.takeReleased(tu, -1)
		}
		for _, sup := range c.suppliers {
			if sup.relMem {
				sup.promptMem.judge(released)
				sup.relMem = false
			}
		}
		if u.CPUCores > 0 {
			cpu -= (c.settledCPU + m.vcpu) / u.CPUCores
		}
		if !ambiguous {
			c.memNoise.add(mem)
		}
		c.cpuNoise.add(cpu)
	}
	if c.gpuOK && len(s.GPUs) > 0 && !s.GPUAt.Equal(c.lastGPUAt) {
		c.lastGPUAt = s.GPUAt
		released := unknown
		for _, d := range s.GPUs {
			i := c.deviceIndex(d.UUID)
			if i < 0 || d.TotalBytes == 0 {
				continue
			}
			total := float64(d.TotalBytes)
			footprint := c.settledGPU[i] + m.vgpu[i]
			e := (float64(d.UsedBytes) - footprint) / total
			surplus := unmodeled(c.devBase[i], c.devBase[i] >= 0, footprint, float64(d.UsedBytes))
			rel := c.takeReleased(tg, i) / total
			released = released.and(releaseVerdict(surplus/total, rel, c.gpuNoise[i].margin)).and(c.gpuNoise[i].jumpVerdict(e, rel))
			c.gpuDeficit[i] = deficit(surplus)
			if c.lateReleased(tg, i) == 0 { // else ambiguous, as for memory
				c.gpuNoise[i].add(e)
			}
		}
		c.expireReleased(tg) // on devices missing from the reading
		for _, sup := range c.suppliers {
			if sup.relGPU {
				sup.promptGPU.judge(released)
				sup.relGPU = false
			}
		}
	}
	c.setRooms(s, &m)
	if newUsage && !ambiguous && c.usageOK && c.gpuOK {
		moved := c.learn(s, tu, tg)
		c.resumReserved()
		if moved {
			// A settle time moved: rebuild this reading's budget with it.
			c.repend(tu, tg)
			m = c.modelAt(tu, tg)
			c.setRooms(s, &m)
		}
	}
}

// model is what the used slots amount to at a reading: what is still pending
// (not yet visible; cores, bytes, bytes per device) and what of the slots
// still settling the reading should already show. Reserved, unused slots
// are not in it: admission subtracts their sums.
type model struct {
	pcpu, pmem float64
	pgpu       [maxDevices]float64
	vcpu, vmem float64
	vgpu       [maxDevices]float64
	// What every used slot is expected to use (bytes; see floorPending).
	emem float64
	egpu [maxDevices]float64
}

// modelAt weighs every pending slot at the reading times tu (CPU, memory)
// and tg (GPU) and moves the ones whose footprint has fully shown out of
// pending, into the settled sums. Called with c.mu held.
func (c *Controller) modelAt(tu, tg int64) (m model) {
	for sl := c.used.head; sl != nil; sl = sl.l[inUsed].next {
		if sl.sup.need&Memory != 0 {
			m.emem += sl.sup.est.mem
		}
		if sl.device >= 0 {
			m.egpu[sl.device] += sl.sup.est.gpu
		}
	}
	for sl := c.pending.head; sl != nil; {
		next := sl.l[inPending].next
		wu, wg := sl.weight(tu), 0.0
		if sl.device >= 0 {
			wg = sl.weight(tg)
		}
		if wu <= 0 && wg <= 0 {
			c.pending.remove(sl)
			if c.usageOK && c.gpuOK {
				sl.sup.observed++
			}
			sl.sup.settled++
			c.settledCPU += sl.cost.cpu
			c.settledMem += sl.cost.mem
			if sl.device >= 0 {
				c.settledGPU[sl.device] += sl.cost.gpu
			}
			sl.cCPU, sl.cMem, sl.cGPU, sl.wu = 0, 0, 0, 0
			sl = next
			continue
		}
		sl.wu = wu
		m.vcpu += (1 - wu) * sl.cost.cpu
		m.vmem += (1 - wu) * sl.cost.mem
		sl.cCPU, sl.cMem = wu*sl.cost.cpu, wu*sl.cost.mem
		m.pcpu += sl.cCPU
		m.pmem += sl.cMem
		if sl.device >= 0 {
			sl.cGPU = wg * sl.cost.gpu
			m.pgpu[sl.device] += sl.cGPU
			m.vgpu[sl.device] += (1 - wg) * sl.cost.gpu
		}
		sl = next
	}
	return m
}

// repend puts settled slots back into pending if their supplier's settle
// time grew past their age. Called with c.mu held.
func (c *Controller) repend(tu, tg int64) {
	for sl := c.used.head; sl != nil; sl = sl.l[inUsed].next {
		if sl.l[inPending].in || (sl.weight(tu) <= 0 && (sl.device < 0 || sl.weight(tg) <= 0)) {
			continue
		}
		c.pending.push(sl)
		sl.sup.settled--
		c.settledCPU -= sl.cost.cpu
		c.settledMem -= sl.cost.mem
		if sl.device >= 0 {
			c.settledGPU[sl.device] -= sl.cost.gpu
		}
	}
}

// setRooms computes the budget from reading s and model m. Called with c.mu
// held.
func (c *Controller) setRooms(s *resources.Snapshot, m *model) {
	u := s.Usage
	if c.baseSet {
		// The reading as admission sees it (the fraction), in bytes.
		m.pmem = floorPending(m.pmem, m.emem, memInUse(u)-c.baseMem)
	}
	c.memRoom = room(c.targetMem, u.Memory+c.memNoise.margin, float64(u.MemoryLimitBytes), m.pmem)
	c.cpuRoom = room(c.targetCPU, u.CPU+c.cpuNoise.margin, u.CPUCores, m.pcpu)
	for i := range c.gpuRoom {
		c.gpuRoom[i], c.gpuSeen[i] = math.Inf(-1), false
	}
	for _, d := range s.GPUs {
		i := c.deviceIndex(d.UUID)
		if i < 0 || d.TotalBytes == 0 {
			continue
		}
		total := float64(d.TotalBytes)
		c.gpuSeen[i] = true
		if c.devBase[i] >= 0 {
			m.pgpu[i] = floorPending(m.pgpu[i], m.egpu[i], float64(d.UsedBytes)-c.devBase[i])
		}
		c.gpuRoom[i] = room(c.targetGPU, float64(d.UsedBytes)/total, total, m.pgpu[i])
	}
}

// memInUse is the memory reading in bytes as admission sees it: the
// fraction of the limit, which admission compares with the target. Every
// use of the reading in bytes (the baseline, learning, the pending floor,
// prompt release) goes through here, so that they agree with admission
// whatever a Source puts in MemoryBytes; without a limit, MemoryBytes.
func memInUse(u resources.Usage) float64 {
	if u.MemoryLimitBytes > 0 {
		return u.Memory * float64(u.MemoryLimitBytes)
	}
	return float64(u.MemoryBytes)
}

// floorPending keeps the pending of used slots from falling below what the
// reading does not show yet: their expected footprint minus what is in use
// above the idle baseline. The settle time spreads a slot's footprint
// linearly over time, which undercounts work whose footprint shows late and
// all at once (a model load: seconds of imports, then gigabytes), or a
// settle time declared too short before it is learned; on a real H100 either
// let eight 8 GiB loads in where five fitted. The expected footprint is each
// slot's cost, which never falls below its floor: a cost learned under a
// wrong settle time (slots counted as shown while nothing shows) would
// shrink and take the floor with it. The price: tasks smaller than a
// conservative floor hold the floor's room (lower CostFloor to learn it).
func floorPending(pending, expected, visible float64) float64 {
	return max(pending, expected-max(visible, 0))
}

// room is the admission law solved for the cost: a slot of cost x fits if
// measured + pending + x ≤ target, that is x ≤ (target − measured) × capacity
// − pending. A reading at or above target admits nothing, not even a slot of
// zero cost (−Inf). With capacity unknown (0), only the reading is judged.
// A tolerance of 1e-9 of capacity keeps float rounding from refusing an exact
// fit.
func room(target, measured, capacity, pending float64) float64 {
	if measured >= target {
		return math.Inf(-1)
	}
	if capacity <= 0 {
		return math.Inf(1)
	}
	return (target-measured)*capacity - pending + 1e-9*capacity
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

// learn refines each supplier's cost from the readings (what is in use above
// the idle baseline, shared among suppliers by their expected footprint per
// used slot) and its settle time, and reports whether a settle time moved.
// tu and tg are the reading times. Called with c.mu held.
func (c *Controller) learn(s *resources.Snapshot, tu, tg int64) bool {
	// Effective used slots per supplier: settled ones count fully, ramping
	// ones by how far into their settle time they were at the reading.
	var inUse bool
	for _, sup := range c.suppliers {
		sup.effUsed = float64(sup.settled)
		inUse = inUse || sup.used > 0
	}
	for sl := c.pending.head; sl != nil; sl = sl.l[inPending].next {
		sl.sup.effUsed += 1 - sl.wu
	}
	u := s.Usage
	memBytes := memInUse(u)
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
	moved := c.learnSettle(memBytes-c.baseMem, gpuUse-gpuBase, len(s.GPUs) > 0, tu, tg)
	if !inUse {
		return moved
	}
	c.learnResource(Memory, memBytes-c.baseMem, &c.memResid, func(sup *SlotSupplier) *float64 { return &sup.est.mem }, func(sup *SlotSupplier) float64 { return sup.floor.mem })
	if u.CPUCores > 0 {
		c.learnResource(CPU, cpuCores-c.baseCPU, &c.cpuResid, func(sup *SlotSupplier) *float64 { return &sup.est.cpu }, func(sup *SlotSupplier) float64 { return sup.floor.cpu })
	}
	if len(s.GPUs) > 0 {
		c.learnResource(GPUMemory, gpuUse-gpuBase, &c.gpuResid, func(sup *SlotSupplier) *float64 { return &sup.est.gpu }, func(sup *SlotSupplier) float64 { return sup.floor.gpu })
	}
	return moved
}

// learnSettle adds one reading to each supplier's settle-time fit: GPU
// memory for suppliers that consume it (model loads are what take long),
// else memory; CPU shows at once and teaches nothing. mem and gpu are the
// usage above the idle baselines; what other suppliers' slots are expected
// to use is taken out. Reports whether a settle time moved. Called with c.mu
// held.
func (c *Controller) learnSettle(mem, gpu float64, haveGPU bool, tu, tg int64) bool {
	for _, sup := range c.suppliers {
		sup.shows = [nSettle][nShape]float64{}
	}
	for sl := c.used.head; sl != nil; sl = sl.l[inUsed].next {
		t := tu
		if sl.sup.settleOn == GPUMemory {
			t = tg
		}
		sl.sup.fit.shows(&sl.sup.shows, sl.usedAt, t)
	}
	moved := false
	for _, sup := range c.suppliers {
		var u float64
		switch {
		case sup.settleOn == GPUMemory && haveGPU:
			u = gpu
			for _, o := range c.suppliers {
				if o != sup && o.need&GPUMemory != 0 {
					u -= o.est.gpu * o.effUsed
				}
			}
		case sup.settleOn == Memory:
			u = mem
			for _, o := range c.suppliers {
				if o != sup && o.need&Memory != 0 {
					u -= o.est.mem * o.effUsed
				}
			}
		default:
			continue
		}
		if sup.used == 0 && sup.fit.n == 0 {
			continue // nothing of this supplier's has run yet
		}
		sup.fit.add(u, &sup.shows)
		if sup.fit.choose() {
			sup.settle = sup.fit.cand[sup.fit.cur]
			sup.onset = settleOnset[sup.fit.shape]
			moved = true
		}
	}
	return moved
}

// learnResource shares what is in use of one resource among the suppliers
// that govern it; usage by work no supplier governs for r stays unexplained
// and, since costs never fall below their floor, can only make admission
// more careful, never less.
func (c *Controller) learnResource(r Resource, attributable float64, med *median3, est func(*SlotSupplier) *float64, floor func(*SlotSupplier) float64) {
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
	// One odd reading (taken while a task was ending, say) must not move a
	// cost: learn from the median of the last three residuals.
	residual := med.add(attributable - expected)
	for _, sup := range c.suppliers {
		if sup.need&r == 0 || sup.effUsed <= 0 {
			continue
		}
		share := sup.effUsed / n
		if expected > 0 {
			share = *est(sup) * sup.effUsed / expected
		}
		// Start as a plain mean (the first observation counts fully: a zero
		// or low prior is corrected at once), then settle into a running
		// average that follows slow changes.
		rate := max(learnRate, 1/float64(sup.learnN+1))
		sup.learnN++
		e := est(sup)
		*e += rate * residual * share / sup.effUsed
		if f := floor(sup); *e < f {
			*e = f
		}
		if *e < 0 {
			*e = 0
		}
	}
}

// median3 is the median of the last three values added (of fewer, the
// latest: with no history there is nothing to vote against).
type median3 struct {
	v [3]float64
	n int
}

func (m *median3) add(x float64) float64 {
	m.v[m.n%3] = x
	m.n++
	if m.n < 3 {
		return x
	}
	a, b, c := m.v[0], m.v[1], m.v[2]
	return max(min(a, b), min(max(a, b), c))
}

// slot is one reservation's record. Records are owned by their supplier and
// reused after release; permits are not (see permitBlock).
type slot struct {
	// permit is the current reservation's permit, nil when the slot is not
	// reserved; UserData points back at the slot. Permits are never reused:
	// the SDK reads a permit after ReleaseSlot returns.
	permit *worker.SlotPermit
	sup    *SlotSupplier
	l      [2]links // in c.pending (l[inPending]) and c.used (l[inUsed])
	usedAt int64    // -1 until MarkSlotUsed
	device int      // GPU device index, -1 if none
	sticky int8     // +1 sticky, -1 normal, 0 unknown
	// The slot's expected cost from when it is used. Until then it holds
	// its supplier's current cost in the reserved sums (see hold).
	cost costVec
	// What a used slot holds in the budget (cores, bytes, bytes): its full
	// cost when used, then its remaining cost at the latest reading, 0 once
	// settled. Releasing the slot gives exactly this back.
	cCPU, cMem, cGPU float64
	wu               float64 // remaining fraction at the latest usage reading
}

// weight is the fraction of the slot's cost not yet visible in a reading
// taken at t: all of it until the slot is used (or if it was used after t)
// and through its supplier's onset, then falling linearly to zero at the
// settle time (see showing). It never goes below zero: a GPU slot whose
// memory reading is past its settle time while its GPU reading is not would
// otherwise count a negative pending.
func (s *slot) weight(t int64) float64 {
	if s.usedAt < 0 || s.usedAt >= t {
		return 1
	}
	return 1 - showing(t-s.usedAt, s.sup.settle, s.sup.onset)
}

// hold adds an unused slot reserved on device (-1: none) to the reserved
// sums, at its supplier's current cost. Called with c.mu held.
func (c *Controller) hold(sup *SlotSupplier, device int) {
	c.reserved++
	c.reservedCPU += sup.est.cpu
	c.reservedMem += sup.est.mem
	if device >= 0 {
		sup.unusedOn[device]++
		c.reservedGPU[device] += sup.est.gpu
		c.reservedOnGPU = true
	}
}

// unhold takes an unused slot out of the reserved sums (it was used or
// released). With none left, the sums restart at zero exactly, so that
// float rounding does not build up. Called with c.mu held.
func (c *Controller) unhold(sup *SlotSupplier, device int) {
	c.reserved--
	if device >= 0 {
		sup.unusedOn[device]--
	}
	if c.reserved == 0 {
		c.reservedCPU, c.reservedMem = 0, 0
		if c.reservedOnGPU {
			c.reservedGPU, c.reservedOnGPU = [maxDevices]float64{}, false
		}
		return
	}
	c.reservedCPU -= sup.est.cpu
	c.reservedMem -= sup.est.mem
	if device >= 0 {
		c.reservedGPU[device] -= sup.est.gpu
	}
}

// resumReserved recomputes the reserved sums after costs were learned: an
// unused slot holds its supplier's current cost, so that hold and unhold
// add and take the same amount. Called with c.mu held.
func (c *Controller) resumReserved() {
	c.reservedCPU, c.reservedMem = 0, 0
	c.reservedGPU = [maxDevices]float64{}
	for _, sup := range c.suppliers {
		n := float64(sup.issued - sup.used)
		c.reservedCPU += n * sup.est.cpu
		c.reservedMem += n * sup.est.mem
		if sup.need&GPUMemory != 0 {
			for d, k := range sup.unusedOn[:len(c.devUUIDs)] {
				c.reservedGPU[d] += float64(k) * sup.est.gpu
			}
		}
	}
}

// links are a slot's place in one slotList.
type links struct {
	prev, next *slot
	in         bool
}

// The lists a slot can be in, as indexes of slot.l.
const (
	inPending = iota
	inUsed
)

// slotList is an intrusive list of slots through their links l[k].
type slotList struct {
	head, tail *slot
	k          int
}

func (l *slotList) push(s *slot) {
	sl := &s.l[l.k]
	sl.prev, sl.next, sl.in = l.tail, nil, true
	if l.tail != nil {
		l.tail.l[l.k].next = s
	} else {
		l.head = s
	}
	l.tail = s
}

func (l *slotList) remove(s *slot) {
	sl := &s.l[l.k]
	if !sl.in {
		return
	}
	if sl.prev != nil {
		sl.prev.l[l.k].next = sl.next
	} else {
		l.head = sl.next
	}
	if sl.next != nil {
		sl.next.l[l.k].prev = sl.prev
	} else {
		l.tail = sl.prev
	}
	*sl = links{}
}

// noise estimates how far a reading wanders from what the model expects:
// the median of |e(t) − 2e(t−1) + e(t−2)| over the last noiseWindow
// readings, where e is the reading minus the footprint the model expects.
// The second difference is zero for a steady drift; the median ignores
// isolated jumps (a task freeing its memory a moment before its slot is
// released shows as one odd reading) and tracks noise that is always there:
// about 1.05 × the amplitude of uniform noise, 1.65 σ of Gaussian noise.
// Admission adds it to the reading, so that a reading low by chance is not
// taken for headroom. Called with c.mu held.
type noise struct {
	prev, prev2 float64
	n           int
	ring        [noiseWindow]float64
	margin      float64
}

const noiseWindow = 16

func (z *noise) add(r float64) {
	if z.n >= 2 {
		d := r - 2*z.prev + z.prev2
		if d < 0 {
			d = -d
		}
		z.ring[(z.n-2)%noiseWindow] = d
		k := min(z.n-1, noiseWindow)
		var sorted [noiseWindow]float64
		copy(sorted[:], z.ring[:k])
		slices.Sort(sorted[:k])
		z.margin = sorted[k/2] // the upper median
	}
	z.prev2, z.prev = z.prev, r
	z.n++
}
