package tuner

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/routing"
)

// Binding activities to slots.
//
// The SDK never shows an activity its permit. On the task goroutine it calls
// MarkSlotUsed(permit), then runs the activity (and its interceptors), then
// ReleaseSlot(permit); other goroutines' calls interleave freely. So the
// interceptor cannot find its own permit; it takes any used slot of its
// class that no activity has taken yet (the most recent: its own, unless
// another task's MarkSlotUsed came in between) and runs on that slot's
// device. From then the slot's charge follows the activity, not the permit:
//
//   - a used slot is free (no activity has taken it), bound (an activity runs
//     on it) or done (that activity has returned);
//   - ReleaseSlot(p) refunds a done slot if there is one (p's own if it is
//     done, else the latest), else p's own if it is free, else a free one; the
//     refunded charge and the one p held swap records (exchange), so p's
//     record goes and the other permit's record now carries what p held.
//
// ReleaseSlot comes after the activity of its goroutine returned (or after
// a task that never ran one), so some slot is done or free whenever it comes
// (bound slots are at most the used slots less the releasing one), and
// preferring done ones leaves as many free slots as there are activities
// still to take one. Hence every activity that takes a slot gets one, a
// bound slot's charge is never refunded while its activity runs, and each
// device carries exactly the charges of the activities it was handed plus
// slots not yet taken or not yet released. Local activities take no slot:
// the SDK runs them on a goroutine of their own and releases the permit at
// their deadline even if they run on, so ReleaseSlot would not follow them.
// Should a permit be released with nothing done or free (an activity
// outliving its permit), its slot goes with it and its activity is orphaned,
// as with any supplier. TestLeasesFollowActivities checks all of this under
// random interleavings.

const (
	slotFree  int8 = iota // used, no activity has taken it
	slotBound             // an activity runs on it (ls set)
	slotDone              // its activity has returned
)

// lease is an activity's hold on a used slot. sl is the record that carries
// it now (records exchange charges on release); nil once orphaned.
type lease struct {
	sl      *slot
	running bool // past the wait for an encoder session (sessionwait.go)
}

// bind hands the most recently used free slot of k to an activity; nil if
// there is none (an activity on a worker whose slots are not k's). Called
// with c.mu held.
func (c *Controller) bind(k *class) *lease {
	n := len(k.free)
	if n == 0 {
		return nil
	}
	sl := k.free[n-1]
	k.free[n-1] = nil
	k.free = k.free[:n-1]
	l := &lease{sl: sl}
	sl.state, sl.ls = slotBound, l
	return l
}

// unbind records that l's activity has returned. Called with c.mu held.
func (c *Controller) unbind(l *lease) {
	c.probeEnded(l)
	sl := l.sl
	if sl == nil {
		return // orphaned: released while the activity ran
	}
	l.sl, sl.ls = nil, nil
	k := sl.cls
	sl.state, sl.pos = slotDone, len(k.done)
	k.done = append(k.done, sl)
}

// settle makes used slot sl carry the charge that ReleaseSlot refunds (see
// above) and takes it out of its list. Called with c.mu held.
func (c *Controller) settle(sl *slot) {
	k := sl.cls
	if sl.state != slotDone {
		if n := len(k.done); n > 0 {
			exchange(sl, k.done[n-1])
		} else if sl.state == slotBound && len(k.free) > 0 {
			exchange(sl, k.free[len(k.free)-1])
		}
	}
	switch sl.state {
	case slotFree:
		cut(&k.free, sl.pos)
	case slotDone:
		cut(&k.done, sl.pos)
	case slotBound: // nothing else to refund: orphan its activity
		sl.ls.sl, sl.ls = nil, nil
	}
}

// exchange swaps what two used slots of one class carry. Sums, counts and
// positions among the used slots stay as they are: the same charges are on
// the same devices.
func exchange(a, b *slot) {
	if a == b {
		return
	}
	a.usedAt, b.usedAt = b.usedAt, a.usedAt
	a.device, b.device = b.device, a.device
	a.kind, b.kind = b.kind, a.kind
	a.state, b.state = b.state, a.state
	a.pos, b.pos = b.pos, a.pos
	a.ls, b.ls = b.ls, a.ls
	for _, x := range [2]*slot{a, b} {
		switch x.state {
		case slotFree:
			x.cls.free[x.pos] = x
		case slotDone:
			x.cls.done[x.pos] = x
		case slotBound:
			x.ls.sl = x
		}
	}
}

// cut removes s[i], moving the last element into its place.
func cut(s *[]*slot, i int) {
	l := *s
	last := l[len(l)-1]
	l[i], last.pos = last, i
	l[len(l)-1] = nil
	*s = l[:len(l)-1]
}

// take binds an activity of this supplier to a used slot. dev is the GPU
// it was charged to, if any.
func (s *SlotSupplier) take() (l *lease, dev gpu.Lease, ok bool) {
	c := s.c
	c.mu.Lock()
	l = c.bind(s.k)
	var uuid string
	if l != nil && l.sl.device >= 0 {
		uuid = c.devUUIDs[l.sl.device]
	}
	c.mu.Unlock()
	if uuid == "" {
		return l, gpu.Lease{}, false
	}
	dev = gpu.Lease{UUID: uuid, Index: -1}
	for _, d := range c.monitor.Snapshot().GPUs {
		if d.UUID == uuid {
			dev.Index, dev.Name = d.Index, d.Name
			break
		}
	}
	return l, dev, true
}

func (s *SlotSupplier) done(l *lease) {
	s.c.mu.Lock()
	s.c.unbind(l)
	s.c.mu.Unlock()
}

// Interceptor returns the worker interceptor that ties each activity to a
// slot of this tuner: an activity of a class that consumes GPU memory or
// encoders runs
// with the device its slot was charged to in its context
// ([gpu.LeaseFromContext]; [gpu.Lease.Env] for subprocesses), and from then
// that charge stays on that device until the activity returns, whatever
// order the SDK releases permits in. An activity that fails because it ran
// out of GPU or host memory (CUDA's, PyTorch's or TensorFlow's message, a
// Python MemoryError, ENOMEM, a child killed by the OOM killer) fails with
// routing.ResourceExhausted, which is not retried on its queue and which a
// route escalates to its bigger class, and its class is charged more
// (docs/design.md). An activity whose session NVENC refused (error 10)
// teaches the controller the driver's session cap and fails as it did, so
// that its retry waits here for a free session (encoder.go). Put it first in
// worker.Options.Interceptors of the worker this tuner serves, so that every
// other interceptor sees the lease; pool.NewWorker does.
func (t *Tuner) Interceptor() interceptor.WorkerInterceptor {
	return &leaser{t: t, kills: oomKills()}
}

type leaser struct {
	interceptor.WorkerInterceptorBase
	t     *Tuner
	kills func() (uint64, bool) // nil: OOM kills cannot be counted here
}

func (w *leaser) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &leaseInbound{w: w}
	i.Next = next
	return i
}

type leaseInbound struct {
	interceptor.ActivityInboundInterceptorBase
	w *leaser
}

func (i *leaseInbound) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	if activity.GetInfo(ctx).IsLocalActivity {
		return i.Next.ExecuteActivity(ctx, in)
	}
	s := i.w.t.activity
	l, dev, ok := s.take()
	if l == nil {
		return i.Next.ExecuteActivity(ctx, in)
	}
	defer s.done(l)
	if ok {
		ctx = gpu.WithLease(ctx, dev)
	}
	if err := s.awaitSession(ctx, l); err != nil {
		return nil, err
	}
	var kills0 uint64
	counted := false
	if i.w.kills != nil {
		kills0, counted = i.w.kills()
	}
	v, err := i.Next.ExecuteActivity(ctx, in)
	if err == nil {
		return v, nil
	}
	killed := false
	if counted {
		n, ok := i.w.kills()
		killed = ok && n > kills0
	}
	if name := exhaustion(err, killed); name == "encoder" {
		s.refusedSession(l) // its retry waits here for a session: not exhausted
	} else if name != "" {
		s.exhaust(name)
		if !routing.IsResourceExhausted(err) {
			err = routing.ResourceExhausted(name, err)
		}
	}
	return v, err
}
