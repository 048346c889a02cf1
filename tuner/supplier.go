package tuner

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
)

// SlotSupplier is a worker.SlotSupplier that admits against its
// Controller's budget. It only adapts the SDK's calls to the controller:
// reserve, use, release. Counts (issued, used, MaxSlots) are per supplier,
// across every worker that uses it. Safe for concurrent use.
type SlotSupplier struct {
	c   *Controller
	k   *class // owned by c; read and written under c.mu only
	max int
}

var (
	_ worker.SlotSupplier       = (*SlotSupplier)(nil)
	_ worker.HasSysInfoProvider = (*SlotSupplier)(nil)
)

// NewSlotSupplier returns a supplier for one slot kind or task-queue class.
// Its Name must be unique on c.
func NewSlotSupplier(c *Controller, opts SlotSupplierOptions) (*SlotSupplier, error) {
	return newSlotSupplier(c, opts, sdkTags{})
}

// sdkTags name a Tuner's supplier as the SDK's slot metrics do.
type sdkTags struct{ workerType, taskQueue string }

func newSlotSupplier(c *Controller, opts SlotSupplierOptions, tags sdkTags) (*SlotSupplier, error) {
	if c == nil {
		return nil, invalid("Controller", "is nil")
	}
	if err := opts.normalize(); err != nil {
		return nil, err
	}
	g := c.governed()
	if opts.Resources&GPUMemory != 0 && g&GPUMemory == 0 {
		return nil, invalid("Resources", "supplier %q consumes GPU memory but the controller has no TargetGPUMemory", opts.Name)
	}
	if opts.Resources&g == 0 {
		return nil, invalid("Resources", "supplier %q consumes %v, none of which the controller has a target for (%v)", opts.Name, opts.Resources, g)
	}
	if opts.Resources&Encoder != 0 && g&Encoder == 0 {
		c.logger.Warn("headroom: supplier consumes Encoder but the controller does not govern encoders (no TargetEncoder, or no GPU can be read): budgeted on its other resources",
			"supplier", opts.Name, "resources", opts.Resources&g)
	}
	k := newClass(opts, opts.Resources&g)
	k.sdk = tags
	if err := c.addClass(k); err != nil {
		return nil, err
	}
	return &SlotSupplier{c: c, k: k, max: opts.MaxSlots}, nil
}

// MaxSlots returns the configured maximum, so the SDK reports slots available.
func (s *SlotSupplier) MaxSlots() int { return s.max }

// SysInfoProvider exposes the controller's readings for worker heartbeats.
func (s *SlotSupplier) SysInfoProvider() worker.SysInfoProvider { return s.c.sysInfo() }

// Close takes the supplier off its controller once its issued slots are
// released; until then they stay in the budget. Afterwards it admits only
// below MinSlots. Tuner.Close calls it.
func (s *SlotSupplier) Close() {
	c := s.c
	c.mu.Lock()
	s.k.closed = true
	c.dropClass(s.k)
	c.mu.Unlock()
}

func kindOf(info worker.SlotReservationInfo) int8 {
	switch info.TaskQueueKind() {
	case enumspb.TASK_QUEUE_KIND_STICKY:
		return kindSticky
	case enumspb.TASK_QUEUE_KIND_NORMAL:
		return kindNormal
	}
	return kindUnknown
}

// TryReserveSlot admits a slot now or returns nil; it never waits. It is
// refused while ReserveSlot calls that need the same resources wait for
// room, so that it cannot jump their queue.
func (s *SlotSupplier) TryReserveSlot(info worker.SlotReservationInfo) *worker.SlotPermit {
	c, k := s.c, s.k
	var now int64
	if k.ramp > 0 {
		now = c.nanos() // only the throttle needs the clock
	}
	kind := kindOf(info)
	c.mu.Lock()
	p, r, _ := c.tryLocked(k, kind, now)
	if p == nil {
		k.refused[r]++
	}
	c.mu.Unlock()
	return p
}

// ReserveSlot blocks until a slot is admitted or ctx is done. Waiters are
// served in order (see the Controller's doc); it never polls. A slot
// granted just as ctx ends is given back.
func (s *SlotSupplier) ReserveSlot(ctx context.Context, info worker.SlotReservationInfo) (*worker.SlotPermit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, k := s.c, s.k
	kind := kindOf(info)
	c.mu.Lock()
	p, r, wait := c.tryLocked(k, kind, c.nanos())
	if p != nil {
		c.mu.Unlock()
		return p, nil
	}
	k.refused[r]++
	w := &waiter{k: k, kind: kind, reason: r, ready: make(chan *worker.SlotPermit, 1)}
	c.enqueue(w)
	if r == ReasonRamp {
		c.wakeAfter(w, wait)
	}
	c.mu.Unlock()
	select {
	case p := <-w.ready:
		return p, nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	c.dequeue(w)
	select {
	case p := <-w.ready: // granted as ctx ended: give it back
		c.release(p.UserData.(*slot), c.nanos())
	default:
	}
	c.notify() // this waiter may have held others back
	c.mu.Unlock()
	return nil, ctx.Err()
}

// MarkSlotUsed starts the slot's footprint: from now its charge moves from
// held to used, and what it shows in the readings is learned by its age.
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
		c.use(sl, now)
	}
	c.mu.Unlock()
}

// ReleaseSlot returns the slot. A permit released twice, or one this
// supplier did not issue, is logged and otherwise ignored.
func (s *SlotSupplier) ReleaseSlot(info worker.SlotReleaseInfo) {
	p := info.Permit()
	sl := s.own(p)
	if sl == nil {
		s.c.logger.Warn("headroom: ReleaseSlot with a permit this supplier did not issue", "supplier", s.k.name)
		return
	}
	c := s.c
	c.mu.Lock()
	if sl.permit != p {
		c.mu.Unlock()
		c.logger.Warn("headroom: slot released twice", "supplier", s.k.name)
		return
	}
	var now int64
	if sl.usedAt >= 0 {
		now = c.nanos() // only a used slot's release is timed; empty polls read no clock
	}
	c.release(sl, now)
	c.notify()
	c.mu.Unlock()
}

func (s *SlotSupplier) own(p *worker.SlotPermit) *slot {
	if p == nil {
		return nil
	}
	sl, ok := p.UserData.(*slot)
	if !ok || sl.cls != s.k {
		return nil
	}
	return sl
}

// DeviceOf returns the UUID of the GPU a permit was charged to, if any.
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

// tryLocked takes the latest snapshot's readings and reserves a slot of k,
// unless a waiter refused for a resource k needs is ahead of it (slots below
// MinSlots and a starving poller's first are never held back). Called with
// c.mu held; refusals are counted by the caller.
func (c *Controller) tryLocked(k *class, kind int8, now int64) (*worker.SlotPermit, Reason, time.Duration) {
	c.apply(c.monitor.Snapshot())
	if c.waiters.Len() > 0 && !k.guaranteed(kind) {
		if r := c.blockedReason(k.need); r != reasonNone {
			return nil, r, 0
		}
	}
	return c.reserve(k, kind, now)
}

// reserve admits one slot of k if decide allows it and records it. Called
// with c.mu held; refusals are counted by the caller.
func (c *Controller) reserve(k *class, kind int8, now int64) (*worker.SlotPermit, Reason, time.Duration) {
	dev, r, wait := decide(k, &c.b, kind, now, c.fresh(k))
	if r != reasonNone {
		return nil, r, wait
	}
	sl := k.perm.take(k)
	sl.usedAt, sl.device, sl.kind = -1, dev, kind
	k.issued++
	switch kind {
	case kindSticky:
		k.sticky++
		k.sawSticky = true
	case kindUnknown:
		k.unknown++
	}
	if k.ramp > 0 {
		k.lastIssue = now
	}
	c.hold(k, dev)
	return sl.permit, reasonNone, 0
}

// release undoes a reservation. Called with c.mu held.
func (c *Controller) release(sl *slot, now int64) {
	k := sl.cls
	if sl.usedAt >= 0 {
		c.settle(sl)
		c.unuse(sl)
		c.lastRelease = now
		c.released = append(c.released, releaseSample{cls: k.id, dev: sl.device, usedAt: sl.usedAt, at: now})
		if len(c.released) >= maxReleased {
			c.trimReleased(now) // readings stalled or releases very fast: stay bounded
		}
	} else {
		c.unhold(k, sl.device)
	}
	switch sl.kind {
	case kindSticky:
		k.sticky--
	case kindUnknown:
		k.unknown--
	}
	k.issued--
	k.perm.put(sl)
	c.dropClass(k)
}

// blockedReason returns the refusal of the first waiter held back for a
// shared resource that need overlaps (reasonNone: none). Called with c.mu
// held.
func (c *Controller) blockedReason(need Resource) Reason {
	for e := c.waiters.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		if w.reason.resource()&need != 0 {
			return w.reason
		}
	}
	return reasonNone
}
