package tuner

import (
	"context"
	"math"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
)

// SlotSupplier is a worker.SlotSupplier admitting against its Controller's
// budgets. Counts (issued, used, MaxSlots) are per supplier, across every
// worker that uses it. Safe for concurrent use.
type SlotSupplier struct {
	c      *Controller
	name   string
	opts   SlotSupplierOptions
	need   Resource // opts.Resources ∩ the controller's targets
	settle int64    // nanoseconds

	// Guarded by c.mu.
	gate    // issued, limits, ramp
	used    int
	settled int // used slots whose footprint has settled
	// Issued per workflow task queue kind: sticky, and kind unknown (0);
	// the rest are normal (see normal). Activity pollers reserve as normal,
	// so their hot path counts nothing here.
	sticky, unknown int
	sawSticky       bool
	est, floor      costVec
	effUsed         float64
	observed        int               // used slots whose footprint was seen (settled or ended)
	unusedOn        [maxDevices]int32 // issued, not yet used, per GPU device
	learnN          int               // learning steps taken
	// The settle time's fit (see settleFit), the resource it learns from (0:
	// none) and scratch for one reading.
	fit      settleFit
	settleOn Resource
	shows    [nSettle][nShape]float64
	// onset is the fraction of the settle time before a used slot's
	// footprint starts to show (learned with it; see settleOnset).
	onset float64
	// Releases credited at once (see reclaim), and whether this supplier
	// has releases in the reading being judged.
	promptMem, promptGPU reclaim
	relMem, relGPU       bool
	// Released slots, for reuse: free[:nfree]. Popping writes no pointer,
	// so it costs no write barrier.
	free  []*slot
	nfree int
	// Permits are carved from block in order (see permitBlock): block[next].
	// blocks counts the blocks allocated, so granted is a product, not a
	// store per reservation.
	block  *[permitBlock]worker.SlotPermit
	next   int
	blocks uint64

	refused [numReasons]uint64
}

// costVec is a cost in resource units: cores, bytes, bytes.
type costVec struct{ cpu, mem, gpu float64 }

var (
	_ worker.SlotSupplier       = (*SlotSupplier)(nil)
	_ worker.HasSysInfoProvider = (*SlotSupplier)(nil)
)

// NewSlotSupplier returns a supplier for one slot kind or task-queue class.
func NewSlotSupplier(c *Controller, opts SlotSupplierOptions) (*SlotSupplier, error) {
	if c == nil {
		return nil, invalid("Controller", "is nil")
	}
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	need := opts.Resources & c.governed()
	if opts.Resources&GPUMemory != 0 && c.targetGPU == 0 {
		return nil, invalid("Resources", "supplier %q consumes GPU memory but the controller has no TargetGPUMemory", opts.Name)
	}
	s := &SlotSupplier{
		c:      c,
		name:   opts.Name,
		opts:   opts,
		need:   need,
		settle: int64(opts.SettleTime),
		gate: gate{
			min: opts.MinSlots, max: opts.MaxSlots, ramp: int64(opts.RampThrottle), lastIssue: -1,
		},
		est: costVec{
			cpu: opts.Cost.CPUCores, mem: float64(opts.Cost.MemoryBytes), gpu: float64(opts.Cost.GPUMemoryBytes),
		},
		floor: costVec{
			cpu: opts.CostFloor.CPUCores, mem: float64(opts.CostFloor.MemoryBytes), gpu: float64(opts.CostFloor.GPUMemoryBytes),
		},
	}
	s.fit = newSettleFit(s.settle)
	switch {
	case need&GPUMemory != 0:
		s.settleOn = GPUMemory
	case need&Memory != 0:
		s.settleOn = Memory
	}
	c.mu.Lock()
	c.suppliers = append(c.suppliers, s)
	c.mu.Unlock()
	return s, nil
}

// MaxSlots returns the configured maximum, so the SDK reports slots available.
func (s *SlotSupplier) MaxSlots() int { return s.opts.MaxSlots }

// Name is the supplier's metrics label.
func (s *SlotSupplier) Name() string { return s.name }

// SysInfoProvider exposes the controller's readings for worker heartbeats.
func (s *SlotSupplier) SysInfoProvider() worker.SysInfoProvider {
	return s.c.sysInfo()
}

// Stats is a point-in-time view of a supplier, for displays and tests.
type Stats struct {
	Issued, Used int
	MaxSlots     int
	Granted      uint64
	Refused      map[Reason]uint64
	Cost         Cost // current (learned) cost per slot
	// SettleTime is the current (learned) time a used slot's footprint
	// takes to show in the readings, and SettleOnset how long of it shows
	// nothing (a model load's imports; zero: it grows from the start).
	SettleTime, SettleOnset time.Duration
	// PromptRelease is the resources for which readings have confirmed that
	// a released slot's footprint is gone by the next reading, so releases
	// give it back to the budget at once.
	PromptRelease Resource
}

// Stats returns the supplier's counters. It allocates; not for hot paths.
func (s *SlotSupplier) Stats() Stats {
	st := Stats{MaxSlots: s.opts.MaxSlots, Refused: make(map[Reason]uint64)}
	s.c.mu.Lock()
	st.Issued, st.Used, st.Granted = s.issued, s.used, s.granted()
	st.Cost = Cost{CPUCores: s.est.cpu, MemoryBytes: uint64(s.est.mem), GPUMemoryBytes: uint64(s.est.gpu)}
	st.SettleTime = time.Duration(s.settle)
	st.SettleOnset = time.Duration(s.onset * float64(s.settle))
	if s.promptMem.prompt() {
		st.PromptRelease |= Memory
	}
	if s.promptGPU.prompt() {
		st.PromptRelease |= GPUMemory
	}
	for r := Reason(1); r < numReasons; r++ {
		if n := s.refused[r]; n > 0 {
			st.Refused[r] = n
		}
	}
	s.c.mu.Unlock()
	return st
}

func kindOf(info worker.SlotReservationInfo) int8 {
	switch info.TaskQueueKind() {
	case enumspb.TASK_QUEUE_KIND_STICKY:
		return 1
	case enumspb.TASK_QUEUE_KIND_NORMAL:
		return -1
	}
	return 0
}

// TryReserveSlot admits a slot now or returns nil. It never blocks on
// anything but a short in-memory lock and compares the slot's cost with the
// budget computed at the latest reading. Permits cannot be pooled (the SDK
// reads a permit after ReleaseSlot returns), so they come from blocks of
// permitBlock: one allocation per permitBlock reservations.
func (s *SlotSupplier) TryReserveSlot(info worker.SlotReservationInfo) *worker.SlotPermit {
	p, _, _, _ := s.try(kindOf(info), false)
	return p
}

// try returns the permit, or the refusal reason and, for ramp refusals, how
// long until the throttle allows another slot. A refused reserver that will
// wait is counted as a waiter and gets the wake channel in the same critical
// section as its refusal, so that no release in between goes unnoticed.
func (s *SlotSupplier) try(kind int8, wait bool) (*worker.SlotPermit, Reason, time.Duration, chan struct{}) {
	c := s.c
	snap := c.monitor.Snapshot()
	var now int64
	if s.ramp > 0 {
		now = c.nanos() // only the throttle needs the clock
	}
	c.mu.Lock()
	c.sync(snap)
	sl, reason, delay := s.admit(now, kind)
	if sl == nil {
		s.refused[reason]++
		var wake chan struct{}
		if wait {
			c.waiters++
			wake = c.wake
		}
		c.mu.Unlock()
		return nil, reason, delay, wake
	}
	p := sl.permit
	c.mu.Unlock()
	return p, ReasonNone, 0, nil
}

// ReserveSlot blocks until a slot is admitted or ctx is done. It wakes on a
// release, a new snapshot, or the end of the ramp throttle; it never polls.
func (s *SlotSupplier) ReserveSlot(ctx context.Context, info worker.SlotReservationInfo) (*worker.SlotPermit, error) {
	kind := kindOf(info)
	c := s.c
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		snap := c.monitor.Snapshot()
		p, reason, delay, wake := s.try(kind, true)
		if p != nil {
			return p, nil
		}
		var tc <-chan time.Time
		if reason == ReasonRamp && delay > 0 {
			if timer == nil {
				timer = time.NewTimer(delay)
			} else {
				timer.Reset(delay)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-snap.Changed():
		case <-tc:
		}
		c.mu.Lock()
		c.waiters--
		c.mu.Unlock()
	}
}

// MarkSlotUsed starts the slot's settle time: its pending cost now falls as
// its footprint appears in the readings.
func (s *SlotSupplier) MarkSlotUsed(info worker.SlotMarkUsedInfo) {
	p := info.Permit()
	sl := s.own(p)
	if sl == nil {
		return
	}
	c := s.c
	now := c.nanos()
	c.mu.Lock()
	if sl.permit == p && sl.usedAt < 0 {
		sl.usedAt = now
		s.used++
		s.fit.slots++
		// The slot's cost moves from the reserved sums into the budget,
		// where used slots hold what the latest reading does not show.
		c.unhold(s, sl.device)
		sl.cost = costVec{cpu: s.est.cpu, mem: s.est.mem}
		if sl.device >= 0 {
			sl.cost.gpu = s.est.gpu
		}
		sl.cCPU, sl.cMem, sl.cGPU, sl.wu = sl.cost.cpu, sl.cost.mem, sl.cost.gpu, 1
		c.cpuRoom -= sl.cCPU
		c.memRoom -= sl.cMem
		if sl.device >= 0 {
			c.gpuRoom[sl.device] -= sl.cGPU
		}
		c.pending.push(sl)
		c.used.push(sl)
	}
	c.mu.Unlock()
}

// ReleaseSlot returns the slot. A permit released twice, or one this
// supplier did not issue, is logged and otherwise ignored.
func (s *SlotSupplier) ReleaseSlot(info worker.SlotReleaseInfo) {
	p := info.Permit()
	sl := s.own(p)
	if sl == nil {
		s.c.logger.Warn("headroom: ReleaseSlot with a permit this supplier did not issue", "supplier", s.name)
		return
	}
	c := s.c
	c.mu.Lock()
	if sl.permit != p {
		c.mu.Unlock()
		c.logger.Warn("headroom: slot released twice", "supplier", s.name)
		return
	}
	// A reading published but not yet synced was taken while this slot was
	// used: sync first, so that the model it is compared with still holds
	// the slot. An unused slot is not in the model (it holds its whole cost
	// whatever the readings say), so empty polls skip this.
	if sl.usedAt >= 0 {
		c.sync(c.monitor.Snapshot())
	}
	s.release(sl)
	if c.waiters > 0 {
		close(c.wake)
		c.wake = make(chan struct{})
	}
	c.mu.Unlock()
}

func (s *SlotSupplier) own(p *worker.SlotPermit) *slot {
	if p == nil {
		return nil
	}
	sl, ok := p.UserData.(*slot)
	if !ok || sl.sup != s {
		return nil
	}
	return sl
}

// release undoes a reservation. Called with c.mu held.
func (s *SlotSupplier) release(sl *slot) {
	c := s.c
	if sl.usedAt < 0 {
		// Unused (an empty poll): it only held its cost in the reserved sums.
		c.unhold(s, sl.device)
	} else {
		s.releaseUsed(sl)
	}
	switch sl.sticky {
	case 1:
		s.sticky--
	case 0:
		s.unknown--
	}
	s.issued--
	sl.permit = nil
	if s.nfree == len(s.free) {
		s.free = append(s.free, sl)
	} else {
		s.free[s.nfree] = sl
	}
	s.nfree++
}

// releaseUsed takes a used slot out of the model and gives back what it
// holds in the budget: its full cost if no reading has been taken since it
// was used, else its remaining cost at the latest reading. What has shown
// is in that reading and stays there until a new reading shows it gone,
// unless this supplier's releases have been seen to free their footprint by
// the next reading. Called with c.mu held.
func (s *SlotSupplier) releaseUsed(sl *slot) {
	c := s.c
	if sl.l[inPending].in {
		c.pending.remove(sl)
		if c.usageOK && c.gpuOK {
			s.observed++ // ended before settling: its footprint was seen in part
		}
	} else {
		s.settled--
		c.settledCPU -= sl.cost.cpu
		c.settledMem -= sl.cost.mem
		if sl.device >= 0 {
			c.settledGPU[sl.device] -= sl.cost.gpu
		}
	}
	c.used.remove(sl)
	s.used--
	c.cpuRoom += sl.cCPU
	mem, gpu := sl.cMem, sl.cGPU
	shownMem, shownGPU := c.noteReleased(sl)
	if shownMem > 0 && s.promptMem.prompt() {
		take := min(shownMem, c.memDeficit)
		c.memDeficit -= take
		mem += shownMem - take
	}
	if shownGPU > 0 && s.promptGPU.prompt() {
		take := min(shownGPU, c.gpuDeficit[sl.device])
		c.gpuDeficit[sl.device] -= take
		gpu += shownGPU - take
	}
	c.memRoom += mem
	if sl.device >= 0 {
		c.gpuRoom[sl.device] += gpu
	}
	sl.cCPU, sl.cMem, sl.cGPU = 0, 0, 0
}

// normal is how many issued slots were reserved for the normal workflow
// task queue (or for activities). Called with c.mu held.
func (s *SlotSupplier) normal() int { return s.issued - s.sticky - s.unknown }

// inFlight is how many slots are reserved, or used and still settling.
// Called with c.mu held.
func (s *SlotSupplier) inFlight() int { return s.issued - s.settled }

// granted is how many slots were ever issued: the permits carved. Called
// with c.mu held.
func (s *SlotSupplier) granted() uint64 {
	if s.block == nil {
		return 0
	}
	return (s.blocks-1)*permitBlock + uint64(s.next)
}

// probeSlots is how many used slots of a supplier must be seen in the
// readings before its cost estimate is trusted.
const probeSlots = 4

// probeWindow is how many slots may be in flight (reserved, or used and not
// yet settled) while the cost is unconfirmed: 1, 2, 4, 8 as slots are seen,
// then unlimited. A prior that is too low (or zero) therefore overshoots by at
// most a few slots while learning corrects it, where admitting freely would
// fill the whole budget with underpriced slots before the first one showed.
// Called with c.mu held.
func (s *SlotSupplier) probeWindow() int {
	if s.opts.TrustCost || s.observed >= probeSlots {
		return math.MaxInt
	}
	return 1 << s.observed
}

// permitBlock is how many permits are allocated at once. Permits are never
// reused (the SDK reads one after ReleaseSlot returns), so they are carved
// from blocks: one allocation per permitBlock reservations. 170 permits of
// 24 bytes plus the 8-byte header of a pointerful object fill the 4096-byte
// size class; per reservation that is 4 ns cheaper than 21 permits (512
// bytes). A block lives while any of its permits is held, so long-held
// permits can pin at most 4 KiB each.
const permitBlock = 170

// admit decides and, on success, records the reservation. now is only read
// when the supplier has a ramp throttle. Called with c.mu held and the
// budget in sync; allocation-free but for one permit block in permitBlock.
func (s *SlotSupplier) admit(now int64, kind int8) (*slot, Reason, time.Duration) {
	c := s.c
	if kind == 1 {
		s.sawSticky = true
	}
	// Workflow pollers: never starve the sticky or the normal queue. Each
	// kind gets its first slot regardless of resources, and neither may take
	// the last slot while the other holds none.
	starving := false
	if s.sawSticky && kind != 0 {
		mine, other := s.normal(), s.sticky
		if kind == 1 {
			mine, other = s.sticky, s.normal()
		}
		starving = mine == 0
		if other == 0 && mine > 0 && s.issued >= s.max-1 && s.max > 1 {
			return nil, ReasonMax, 0
		}
	}
	bypass, reason, wait := s.gate.check(now, c.fresh(s.need))
	if reason == ReasonRamp {
		return nil, reason, wait
	}
	if reason == ReasonStale && starving {
		bypass, reason = true, ReasonNone
	}
	if reason != ReasonNone {
		return nil, reason, 0
	}
	device := -1
	if !bypass && s.need != 0 {
		// fits, with the CPU and memory checks inline (the hot path).
		ok := true
		switch {
		case s.need&Memory != 0 && !(s.est.mem <= c.memRoom-c.reservedMem):
			reason, ok = ReasonMemory, false
		case s.need&CPU != 0 && !(s.est.cpu <= c.cpuRoom-c.reservedCPU):
			reason, ok = ReasonCPU, false
		case s.need&GPUMemory != 0:
			device, reason, ok = s.fitsGPU()
		}
		if ok && s.inFlight() >= s.probeWindow() {
			device, reason, ok = -1, ReasonProbe, false
		}
		if !ok {
			if !starving {
				return nil, reason, 0
			}
			device = -1
		}
	} else if s.need&GPUMemory != 0 {
		device = c.pickDevice(s.est.gpu, false)
	}
	var sl *slot
	if s.nfree > 0 {
		s.nfree--
		sl = s.free[s.nfree]
	} else {
		sl = &slot{sup: s}
	}
	if s.block == nil || s.next == permitBlock {
		s.block, s.next = new([permitBlock]worker.SlotPermit), 0
		s.blocks++
	}
	p := &s.block[s.next]
	s.next++
	p.UserData = sl
	sl.permit = p
	sl.usedAt, sl.device, sl.sticky = -1, device, kind
	c.hold(s, device)
	s.issued++
	switch kind {
	case 1:
		s.sticky++
	case 0:
		s.unknown++
	}
	if s.ramp > 0 {
		s.lastIssue = now
	}
	return sl, ReasonNone, 0
}

// fitsGPU picks the GPU device with the most room among those where one
// more slot fits. Called with c.mu held.
func (s *SlotSupplier) fitsGPU() (int, Reason, bool) {
	if best := s.c.pickDevice(s.est.gpu, true); best >= 0 {
		return best, ReasonNone, true
	}
	return -1, ReasonGPU, false
}

// pickDevice returns the device in the latest reading with the most room,
// only among those where a slot of cost fits if mustFit; -1 if none. Called
// with c.mu held.
func (c *Controller) pickDevice(cost float64, mustFit bool) int {
	best, most := -1, 0.0
	for i := range c.devUUIDs {
		if !c.gpuSeen[i] {
			continue
		}
		r := c.gpuRoom[i] - c.reservedGPU[i]
		if mustFit && !(cost <= r) {
			continue
		}
		if best < 0 || r > most {
			best, most = i, r
		}
	}
	return best
}

// DeviceOf returns the UUID of the GPU a permit was bound to, if any.
func (s *SlotSupplier) DeviceOf(p *worker.SlotPermit) (string, bool) {
	sl := s.own(p)
	if sl == nil {
		return "", false
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if sl.permit != p || sl.device < 0 {
		return "", false
	}
	return s.c.devUUIDs[sl.device], true
}
