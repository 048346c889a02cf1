package tuner

import (
	"context"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/resources"
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
	issued, used   int
	settled        int // used slots whose footprint has settled
	sticky, normal int // issued per workflow task queue kind
	sawSticky      bool
	lastIssue      int64 // -1: never
	est, floor     costVec
	effUsed        float64
	free           *slot

	refused [numReasons]atomic.Uint64
	granted atomic.Uint64
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
		c:         c,
		name:      opts.Name,
		opts:      opts,
		need:      need,
		settle:    int64(opts.SettleTime),
		lastIssue: -1,
		est: costVec{
			cpu: opts.Cost.CPUCores, mem: float64(opts.Cost.MemoryBytes), gpu: float64(opts.Cost.GPUMemoryBytes),
		},
		floor: costVec{
			cpu: opts.CostFloor.CPUCores, mem: float64(opts.CostFloor.MemoryBytes), gpu: float64(opts.CostFloor.GPUMemoryBytes),
		},
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
}

// Stats returns the supplier's counters. It allocates; not for hot paths.
func (s *SlotSupplier) Stats() Stats {
	s.c.mu.Lock()
	st := Stats{Issued: s.issued, Used: s.used, MaxSlots: s.opts.MaxSlots,
		Cost: Cost{CPUCores: s.est.cpu, MemoryBytes: uint64(s.est.mem), GPUMemoryBytes: uint64(s.est.gpu)}}
	s.c.mu.Unlock()
	st.Granted = s.granted.Load()
	st.Refused = make(map[Reason]uint64)
	for r := Reason(1); r < numReasons; r++ {
		if n := s.refused[r].Load(); n > 0 {
			st.Refused[r] = n
		}
	}
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
// anything but a short in-memory lock; it allocates only the permit (as the
// SDK's fixed-size supplier does), because the SDK reads a permit after
// ReleaseSlot returns and so permits cannot be pooled.
func (s *SlotSupplier) TryReserveSlot(info worker.SlotReservationInfo) *worker.SlotPermit {
	p, _, _ := s.try(kindOf(info))
	return p
}

// try returns the permit, or the refusal reason and, for ramp refusals, how
// long until the throttle allows another slot.
func (s *SlotSupplier) try(kind int8) (*worker.SlotPermit, Reason, time.Duration) {
	c := s.c
	snap := c.monitor.Snapshot()
	now, nowT := c.clock()
	c.mu.Lock()
	sl, reason, wait := s.admit(snap, nowT, now, kind)
	c.mu.Unlock()
	if sl == nil {
		s.refused[reason].Add(1)
		return nil, reason, wait
	}
	s.granted.Add(1)
	return sl.permit, ReasonNone, 0
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
		p, reason, wait := s.try(kind)
		if p != nil {
			return p, nil
		}
		c.mu.Lock()
		c.waiters++
		wake := c.wake
		c.mu.Unlock()
		var tc <-chan time.Time
		if reason == ReasonRamp && wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
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
	if sl.issued && sl.permit == p && sl.usedAt < 0 {
		sl.usedAt = now
		s.used++
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
	if !sl.issued || sl.permit != p {
		c.mu.Unlock()
		c.logger.Warn("headroom: slot released twice", "supplier", s.name)
		return
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
	if sl.inPending {
		s.c.pending.remove(sl)
	} else if sl.usedAt >= 0 {
		s.settled--
	}
	if sl.usedAt >= 0 {
		s.used--
	}
	switch sl.sticky {
	case 1:
		s.sticky--
	case -1:
		s.normal--
	}
	s.issued--
	sl.issued, sl.permit = false, nil
	sl.next = s.free
	s.free = sl
}

// admit decides and, on success, records the reservation. Called with c.mu
// held; allocation-free once the free list holds MaxSlots records.
func (s *SlotSupplier) admit(snap *resources.Snapshot, nowT time.Time, now int64, kind int8) (*slot, Reason, time.Duration) {
	c := s.c
	if kind == 1 {
		s.sawSticky = true
	}
	g := gate{issued: s.issued, min: s.opts.MinSlots, max: s.opts.MaxSlots, ramp: int64(s.opts.RampThrottle), sinceLast: -1}
	if s.lastIssue >= 0 {
		g.sinceLast = now - s.lastIssue
	}
	// Workflow pollers: never starve the sticky or the normal queue. Each
	// kind gets its first slot regardless of resources, and neither may take
	// the last slot while the other holds none.
	starving := false
	if s.sawSticky && kind != 0 {
		mine, other := s.normal, s.sticky
		if kind == 1 {
			mine, other = s.sticky, s.normal
		}
		starving = mine == 0
		if other == 0 && mine > 0 && s.issued >= s.opts.MaxSlots-1 && s.opts.MaxSlots > 1 {
			return nil, ReasonMax, 0
		}
	}
	g.fresh = c.freshness(snap, s.need, nowT) == nil
	bypass, reason := g.check()
	if reason == ReasonRamp {
		return nil, reason, time.Duration(g.ramp - g.sinceLast)
	}
	if reason == ReasonStale && starving {
		bypass, reason = true, ReasonNone
	}
	if reason != ReasonNone {
		return nil, reason, 0
	}
	device := -1
	if !bypass && s.need != 0 {
		var ok bool
		device, reason, ok = s.fits(snap, now)
		if !ok {
			if !starving {
				return nil, reason, 0
			}
			device = -1
		}
	} else if s.need&GPUMemory != 0 {
		device = s.bestDevice(snap, now)
	}
	sl := s.free
	if sl != nil {
		s.free = sl.next
	} else {
		sl = &slot{sup: s}
	}
	sl.permit = &worker.SlotPermit{UserData: sl}
	sl.issued, sl.usedAt, sl.device, sl.sticky = true, -1, device, kind
	sl.cost = Cost{CPUCores: s.est.cpu, MemoryBytes: uint64(s.est.mem)}
	if device >= 0 {
		sl.cost.GPUMemoryBytes = uint64(s.est.gpu)
	}
	c.pending.push(sl)
	s.issued++
	switch kind {
	case 1:
		s.sticky++
	case -1:
		s.normal++
	}
	s.lastIssue = now
	return sl, ReasonNone, 0
}

// fits checks every governed budget and picks the GPU device with the most
// headroom. Called with c.mu held.
func (s *SlotSupplier) fits(snap *resources.Snapshot, now int64) (int, Reason, bool) {
	c := s.c
	var gpuPending [maxDevices]float64
	pcpu, pmem := c.sumPending(now, &gpuPending)
	u := snap.Usage
	if s.need&Memory != 0 {
		b := budget{measured: u.Memory + c.memNoise.margin(), target: c.targetMem}
		if lim := float64(u.MemoryLimitBytes); lim > 0 {
			b.pending, b.cost = pmem/lim, s.est.mem/lim
		}
		if !b.fits() {
			return -1, ReasonMemory, false
		}
	}
	if s.need&CPU != 0 {
		b := budget{measured: u.CPU + c.cpuNoise.margin(), target: c.targetCPU}
		if u.CPUCores > 0 {
			b.pending, b.cost = pcpu/u.CPUCores, s.est.cpu/u.CPUCores
		}
		if !b.fits() {
			return -1, ReasonCPU, false
		}
	}
	if s.need&GPUMemory == 0 {
		return -1, ReasonNone, true
	}
	if best := s.pickDevice(snap, &gpuPending, true); best >= 0 {
		return best, ReasonNone, true
	}
	return -1, ReasonGPU, false
}

// bestDevice picks the device with the most headroom without requiring a
// fit (slots below MinSlots still need a device). Called with c.mu held.
func (s *SlotSupplier) bestDevice(snap *resources.Snapshot, now int64) int {
	var gpuPending [maxDevices]float64
	s.c.sumPending(now, &gpuPending)
	return s.pickDevice(snap, &gpuPending, false)
}

// pickDevice returns the device with the most headroom (target × capacity −
// used − pending), only among those where one more slot fits if mustFit;
// -1 if none. Called with c.mu held.
func (s *SlotSupplier) pickDevice(snap *resources.Snapshot, gpuPending *[maxDevices]float64, mustFit bool) int {
	c := s.c
	best, bestRoom := -1, 0.0
	for _, d := range snap.GPUs {
		i := c.deviceIndex(d.UUID)
		if i < 0 || d.TotalBytes == 0 {
			continue
		}
		total := float64(d.TotalBytes)
		b := budget{measured: float64(d.UsedBytes) / total, pending: gpuPending[i] / total, cost: s.est.gpu / total, target: c.targetGPU}
		if mustFit && !b.fits() {
			continue
		}
		room := c.targetGPU*total - float64(d.UsedBytes) - gpuPending[i]
		if best < 0 || room > bestRoom {
			best, bestRoom = i, room
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
	if !sl.issued || sl.permit != p || sl.device < 0 {
		return "", false
	}
	return s.c.devUUIDs[sl.device], true
}
