package tuner

import (
	"container/list"
	"time"

	"go.temporal.io/sdk/worker"
)

// waiter is a ReserveSlot call that was refused and waits for its turn.
//
// Waiters are served in arrival order across every supplier of the
// controller, as golang.org/x/sync/semaphore serves them: whenever room may
// have appeared (a release, a new reading, the end of a ramp throttle) the
// queue is walked from its head and each waiter is admitted if its slot fits
// now. A waiter refused for a shared resource (CPU, memory, GPU memory) holds
// back every later waiter that needs that resource: otherwise a
// stream of small slots could take every bit of room a large slot is waiting
// for, and the large one would wait forever. A waiter refused for its own
// class's limits (MaxSlots, the ramp, probing, stale readings) holds back
// nobody, and nobody holds back a slot below MinSlots (or a workflow
// supplier's first slot of a task queue kind): those are admitted whatever
// the readings say, so waiting could only delay them, and a worker whose
// workflow pollers wait behind an activity that waits for room would stall. TryReserveSlot, which cannot wait, is refused while such a held
// back resource has waiters, for the same reason.
type waiter struct {
	k      *class
	kind   int8
	reason Reason // of the latest refusal
	ready  chan *worker.SlotPermit
	elem   *list.Element
	timer  *time.Timer // wakes the queue when a ramp throttle ends
}

// notify admits the waiters whose slots fit now, in order (see waiter).
// Called with c.mu held.
func (c *Controller) notify() {
	if c.waiters.Len() == 0 {
		return
	}
	now := c.nanos()
	var held Resource
	for e := c.waiters.Front(); e != nil; {
		next := e.Next()
		w := e.Value.(*waiter)
		if w.k.need&held != 0 && !w.k.guaranteed(w.kind) {
			e = next
			continue
		}
		p, r, wait := c.reserve(w.k, w.kind, now)
		if p != nil {
			c.dequeue(w)
			w.ready <- p
		} else {
			if r != w.reason {
				w.k.refused[r]++ // counted once per reason a waiter waits for
			}
			w.reason = r
			held |= r.resource()
			if r == ReasonRamp {
				c.wakeAfter(w, wait)
			}
		}
		e = next
	}
}

// wakeAfter walks the queue again once a waiter's ramp throttle ends.
func (c *Controller) wakeAfter(w *waiter, d time.Duration) {
	if w.timer == nil {
		w.timer = time.AfterFunc(d, func() {
			c.mu.Lock()
			c.notify()
			c.mu.Unlock()
		})
		return
	}
	w.timer.Reset(d)
}

func (c *Controller) enqueue(w *waiter) { w.elem = c.waiters.PushBack(w) }

func (c *Controller) dequeue(w *waiter) {
	if w.elem != nil {
		c.waiters.Remove(w.elem)
		w.elem = nil
	}
	if w.timer != nil {
		w.timer.Stop()
	}
}
