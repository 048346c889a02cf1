package tuner

import (
	"context"
	"math"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/headroomhq/headroom/internal/heartbeat"
)

// Waiting for an encoder session.
//
// Admission holds a device's sessions to its cap, but a cap learned from a
// refusal comes after slots were admitted against no cap: on every board of
// the model, slots beyond the cap may be reserved already, and their
// activities would be refused too. So an activity of an encoder class
// waits, before it runs, until its device has a session for it:
//
//   - cap known: the sessions on the device (the reading's or those of the
//     activities running there, whichever is more) leave room for its own;
//   - cap unknown: its session would not take the device above the most
//     sessions a reading has shown open on a board of the model, or no other
//     activity is trying such a level now. One activity at a time tries a
//     level not yet shown (until a reading shows it or the activity ends),
//     so at most one is ever refused: the refusal that teaches the cap.
//
// It heartbeats meanwhile (the previous attempt's details, as the pool's
// heartbeats do), so that its heartbeat timeout does not fire while it
// waits, and stops waiting when its context ends. Above the levels shown,
// sessions open one per reading on each model: a ramp that lasts until the
// cap is known (declare EncoderSessions to skip it).

// sessionPoll is how often a waiting activity looks again.
const sessionPoll = 20 * time.Millisecond

// sessionProbe is the activity trying a level of sessions not yet shown on
// its model.
type sessionProbe struct {
	l     *lease
	dev   int
	level float64
}

// awaitSession waits until the device of l has a session for its activity.
func (s *SlotSupplier) awaitSession(ctx context.Context, l *lease) error {
	if s.k.need&Encoder == 0 {
		return nil
	}
	if !s.sessionBusy(l) {
		return nil
	}
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	details := heartbeat.Previous(activity.HasHeartbeatDetails(ctx), func(p ...any) error { return activity.GetHeartbeatDetails(ctx, p...) })
	poll := time.NewTicker(sessionPoll)
	defer poll.Stop()
	last := time.Now()
	for s.sessionBusy(l) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
		if every > 0 && time.Since(last) >= every {
			activity.RecordHeartbeat(ctx, details...)
			last = time.Now()
		}
	}
	return nil
}

// sessionBusy reports whether l's activity must wait for a session on its
// device (see above), counting the sessions of the activities that run on
// it (not of those waiting); when it may go it is marked running, and when
// it may try a level not yet shown it becomes its model's probe.
func (s *SlotSupplier) sessionBusy(l *lease) bool {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.sl == nil || l.sl.device < 0 || !c.b.encoders {
		return false
	}
	d := l.sl.device
	e := &c.b.enc[d]
	ours := 0.0
	for _, sl := range c.usedSlots {
		if sl != l.sl && sl.state == slotBound && sl.device == d && sl.ls.running {
			ours += sl.cls.sessions
		}
	}
	need := max(e.sessions.read, ours) + s.k.sessions
	busy := false
	switch name := c.devNames[d]; {
	case !math.IsInf(e.sessions.limit, 1):
		busy = need > e.sessions.limit
	case need <= c.encShown[name]:
	default:
		if p, ok := c.encProbe[name]; ok && p.l != l {
			busy = true
		} else {
			c.encProbe[name] = sessionProbe{l: l, dev: d, level: need}
		}
	}
	l.running = !busy
	return busy
}

// sessionsShown takes a reading of device i's sessions: the most shown on
// its model, and the end of a probe the reading confirms. Called with c.mu
// held.
func (c *Controller) sessionsShown(i int) {
	name, read := c.devNames[i], c.b.enc[i].sessions.read
	c.encShown[name] = max(c.encShown[name], read)
	if p, ok := c.encProbe[name]; ok && p.dev == i && read >= p.level {
		delete(c.encProbe, name)
	}
}

// probeEnded ends l's probe when its activity returns. Called with c.mu
// held.
func (c *Controller) probeEnded(l *lease) {
	for name, p := range c.encProbe {
		if p.l == l {
			delete(c.encProbe, name)
		}
	}
}
