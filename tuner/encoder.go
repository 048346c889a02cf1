package tuner

import (
	"fmt"
	"math"

	"github.com/headroomhq/headroom/gpu"
)

// Encoders.
//
// A hardware video encoder runs out of two things: sessions (drivers cap
// them per device on many boards; NVML does not report the cap, which shows
// only as NVENC's error 10, "out of memory" with VRAM free, when one more
// session is opened) and engine time (its utilization). A class that
// consumes Encoder declares both per slot (Cost.EncoderSessions,
// Cost.EncoderLoad); they are not learned, since a session shows in the
// readings as one and engine time is what the stream's resolution and rate
// make it. Per device:
//
//	sessions: max(read, ours used) + ours reserved + one slot's ≤ cap
//	load:     max(read, ours used) + ours reserved + one slot's ≤ TargetEncoder × 100
//
// (line's rule with nothing left to show: a session counts from admission,
// and other processes' sessions as soon as they show.) The cap is
// ControllerOptions.EncoderSessions, else none until NVENC refuses a
// session: the sessions then open on that device (the refused one not
// counted) become the cap of every device of that model, since the cap is
// the driver's per board. The activity's error is passed on as it is, so
// that its retry waits here for a session rather than escalating.
//
// NVML's "encoder capacity" per codec is reported (gpu.Encoder.Capacity)
// but not judged: its documentation does not say whether it is what is
// used or what is left, and no board here could tell.
//
// Where no device reports an encoder (no GPU, a compute-only board, a
// driver without the calls), classes that consume Encoder are budgeted on
// their other resources and charged to no device; the controller says so
// once.

// encoderLines is one device's encoder budget.
type encoderLines struct {
	known    bool // the device reports its encoder
	sessions line // in sessions; limit +Inf while the cap is unknown
	load     line // in percent of engine time
}

// committed is the sessions counted against the device: read or ours in
// use, whichever is more, plus ours reserved.
func (e *encoderLines) committed() float64 {
	return max(e.sessions.read, e.sessions.expect) + e.sessions.held
}

// fits reports whether one more slot of k fits the device's encoder.
func (e *encoderLines) fits(k *class) bool {
	return k.sessions <= e.sessions.room() && (k.load <= 0 || k.load <= e.load.room())
}

// set takes a device's encoder reading against the cap (0: unknown) and the
// engine-time target.
func (e *encoderLines) set(r gpu.Encoder, limit, target float64) {
	e.known = r.Known
	e.sessions.read, e.sessions.limit = float64(r.Sessions), math.Inf(1)
	if limit > 0 {
		e.sessions.limit = limit
	}
	util := max(0, float64(r.Utilization))
	e.load.set(target, util/100, 100)
}

// add adds n slots of k on the device: held if unused, else in use.
func (e *encoderLines) add(k *class, n float64, used bool) {
	if used {
		e.sessions.expect += n * k.sessions
		e.load.expect += n * k.load
		return
	}
	e.sessions.held += n * k.sessions
	e.load.held += n * k.load
}

// zero restarts the sums (held if !used, else in use) at exactly zero.
func (e *encoderLines) zero(used bool) {
	if used {
		e.sessions.expect, e.load.expect = 0, 0
		return
	}
	e.sessions.held, e.load.held = 0, 0
}

// sessionCap is the most sessions device i takes: the declared cap or the
// one learned on its model, whichever is lower; 0 if neither is known.
// Called with c.mu held.
func (c *Controller) sessionCap(i int) float64 {
	limit := c.defaultCap
	if l, ok := c.learnedCap[c.devNames[i]]; ok && (limit == 0 || l < limit) {
		limit = l
	}
	return limit
}

// refusedSession learns the session cap from NVENC refusing a session to an
// activity of k on device dev: the sessions open there, less the refused
// slot's, become the cap of every device of that model (never above a cap
// known already), at once and at every later reading. Called with c.mu
// held; it returns what to log.
func (c *Controller) refusedSession(k *class, dev int) string {
	if dev < 0 || dev >= c.b.ndev || k.need&Encoder == 0 {
		return ""
	}
	e := &c.b.enc[dev]
	open := max(e.sessions.read, e.sessions.expect-k.sessions)
	limit := max(1, math.Round(open))
	model := c.devNames[dev]
	if l, ok := c.learnedCap[model]; !ok || limit < l {
		c.learnedCap[model] = limit
	}
	for i := 0; i < c.b.ndev; i++ {
		if c.devNames[i] == model {
			c.b.enc[i].sessions.limit = c.sessionCap(i)
		}
	}
	return fmt.Sprintf("headroom: NVENC refused a session on %s with %.0f open: at most %.0f per %s from now on",
		c.devUUIDs[dev], open, limit, c.devNames[dev])
}

// refusedSession records NVENC refusing a session to the activity on l.
func (s *SlotSupplier) refusedSession(l *lease) {
	s.c.mu.Lock()
	dev := -1
	if l.sl != nil {
		dev = l.sl.device
	}
	msg := s.c.refusedSession(s.k, dev)
	s.c.mu.Unlock()
	if msg != "" {
		s.c.logger.Warn(msg, "supplier", s.k.name)
	}
}
