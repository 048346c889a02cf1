package tuner

import (
	"cmp"
	"errors"
	"time"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/resources"
)

// What the controller logs: readings turning unusable and usable again,
// devices turning unhealthy and healthy again, the encoder fallback; each
// once per change, never per reading.

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
	health, note := c.health, c.encNote
	c.health, c.encNote = nil, ""
	c.mu.Unlock()
	if note != "" {
		c.logger.Warn(note)
	}
	for _, h := range health {
		if h.why != "" {
			c.logger.Warn("headroom: GPU unhealthy; no new slots on it until it recovers", "device", h.uuid, "cause", h.why)
		} else {
			c.logger.Info("headroom: GPU healthy again; admitting on it", "device", h.uuid, "was", h.was)
		}
	}
	switch {
	case first:
	case !ok && !was:
		usage, g := c.readingErrs(s, time.Now())
		if errors.Is(g, gpu.ErrGPUUnavailable) {
			c.logger.Warn("headroom: NVML lost the GPUs; classes on them take no new slots, MinSlots included, until it is back", "error", g)
			break
		}
		c.logger.Warn("headroom: readings unusable; admitting MinSlots only until they recover", "error", cmp.Or(usage, g))
	case ok && was:
		c.logger.Info("headroom: readings usable again; admission resumes")
	}
}

// healthChange is a device turning unhealthy (why set) or healthy again.
type healthChange struct{ uuid, why, was string }
