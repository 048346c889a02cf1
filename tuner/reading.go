package tuner

import (
	"math"
	"time"

	"github.com/headroomhq/headroom/resources"
)

// onReading brings the budget up to date with snapshot s, learns from it
// and returns how long until s goes stale (0: already unusable).
func (c *Controller) onReading(s *resources.Snapshot) time.Duration {
	c.mu.Lock()
	c.apply(s)
	learn := c.copySample(s)
	c.mu.Unlock()
	if learn {
		est, base, sigma := c.learner.step(&c.buf)
		c.mu.Lock()
		if c.buf.epoch == c.classEpoch {
			c.publish(est, base, sigma)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.resum()
	c.notify()
	ok := c.usageOK && c.gpuOK
	c.mu.Unlock()
	c.logTransition(s)
	if !ok {
		return 0
	}
	var at time.Time
	g := c.governed()
	if g&(CPU|Memory) != 0 {
		at = s.UsageAt
	}
	if g&(GPUMemory|Encoder) != 0 && (at.IsZero() || s.GPUAt.Before(at)) {
		at = s.GPUAt
	}
	return time.Until(at.Add(s.StaleAfter)) + time.Nanosecond // stale strictly after
}

// apply takes snapshot s's readings into the budget if they are newer than
// its own, so that a reservation never judges by an older reading than the
// latest published. It is cheap (no walk over slots); learning and the sums
// follow on the sampling goroutine. Called with c.mu held.
func (c *Controller) apply(s *resources.Snapshot) {
	if s.Seq != c.seq {
		c.seq = s.Seq
		c.judge(s)
		c.setBudget(s)
	}
}

// setBudget sets the budget's readings from s. Called with c.mu held.
func (c *Controller) setBudget(s *resources.Snapshot) {
	b := &c.b
	if !s.UsageAt.IsZero() {
		u := s.Usage
		b.usageAt = c.at(s.UsageAt)
		b.cpu.set(c.target[resCPU], u.CPU, u.CPUCores)
		b.mem.set(c.target[resMem], u.Memory, float64(u.MemoryLimitBytes))
	}
	if s.GPUAt.IsZero() {
		return
	}
	b.gpuAt = c.at(s.GPUAt)
	b.seen = [maxDevices]bool{}
	encoders := false
	for _, d := range s.GPUs {
		i := c.devIndex(d.UUID, d.Name)
		if i < 0 || d.TotalBytes == 0 {
			continue
		}
		b.seen[i] = true
		b.enc[i].set(d.Encoder, c.sessionCap(i), c.targetEnc)
		if d.Encoder.Known {
			c.sessionsShown(i)
		}
		encoders = encoders || (d.Encoder.Known && c.targetEnc > 0)
		if d.Unhealthy != b.sick[i] {
			c.health = append(c.health, healthChange{uuid: d.UUID, why: d.Unhealthy, was: b.sick[i]})
			b.sick[i] = d.Unhealthy
		}
		total := float64(d.TotalBytes)
		b.gpu[i].set(c.target[resGPU], float64(d.UsedBytes)/total, total)
	}
	if b.encoders = encoders; !encoders && c.targetEnc > 0 && !c.encNoted {
		c.encNote, c.encNoted = "headroom: no GPU here reports a video encoder: classes that consume Encoder are budgeted on their other resources", true
	}
}

// devIndex returns the stable index of a device UUID, adding it if new; -1
// if the table is full. Called with c.mu held.
func (c *Controller) devIndex(uuid, name string) int {
	for i, u := range c.devUUIDs {
		if u == uuid {
			return i
		}
	}
	if len(c.devUUIDs) == maxDevices {
		return -1
	}
	c.devNames = append(c.devNames, name)
	c.devUUIDs = append(c.devUUIDs, uuid)
	c.b.ndev = len(c.devUUIDs)
	return len(c.devUUIDs) - 1
}

// copySample copies what the learner needs from reading s and reports
// whether there is anything to learn: a new usable reading taken after the
// last release (a slot released after the reading was in it, and is no
// longer among the used slots), and with no slot used at the very time it
// was stamped. A slot used after the reading's time is not in it and is
// left out of its row by its use time, so later uses do not discard it:
// the reading taken as the first slots start is the only one that shows the
// host without them, and while as many slots stay in use no later one can
// take its place (TestOneSlotInUseFromTheStartIsLearned). Called with c.mu
// held.
func (c *Controller) copySample(s *resources.Snapshot) bool {
	m := &c.buf
	m.epoch = c.classEpoch
	m.new = [numRes]bool{}
	newUsage := c.usageOK && !s.UsageAt.IsZero() && !s.UsageAt.Equal(c.lastUsage) && c.at(s.UsageAt) > c.lastRelease
	newGPU := c.gpuOK && !s.GPUAt.IsZero() && !s.GPUAt.Equal(c.lastGPU) && c.at(s.GPUAt) > c.lastRelease
	if newUsage {
		c.lastUsage = s.UsageAt
		u := s.Usage
		m.at[resCPU], m.at[resMem] = c.b.usageAt, c.b.usageAt
		m.new[resCPU], m.new[resMem] = c.target[resCPU] > 0 && u.CPUCores > 0, c.target[resMem] > 0 && u.MemoryLimitBytes > 0
		m.read = [2]float64{c.b.cpu.read, c.b.mem.read}
		m.cap = [2]float64{u.CPUCores, float64(u.MemoryLimitBytes)}
	}
	if newGPU {
		c.lastGPU = s.GPUAt
		m.at[resGPU], m.new[resGPU] = c.b.gpuAt, true
	}
	m.gpu, m.gpuCap = m.gpu[:0], m.gpuCap[:0]
	for i := range c.devUUIDs {
		v, cp := math.NaN(), 0.0
		if c.b.seen[i] {
			v, cp = c.b.gpu[i].read, c.b.gpu[i].limit/c.target[resGPU]
		}
		m.gpu, m.gpuCap = append(m.gpu, v), append(m.gpuCap, cp)
	}
	if !newUsage && !newGPU {
		return false
	}
	m.slots = m.slots[:0]
	for _, sl := range c.usedSlots {
		m.slots = append(m.slots, slotSample{cls: sl.cls.id, dev: sl.device, usedAt: sl.usedAt})
		// Used at the very time the reading was stamped: it may or may not
		// be in it.
		if newUsage && sl.usedAt == m.at[resMem] {
			m.new[resCPU], m.new[resMem] = false, false
		}
		if newGPU && sl.usedAt == m.at[resGPU] {
			m.new[resGPU] = false
		}
	}
	c.trimReleased(c.nanos())
	m.released = append(m.released[:0], c.released...)
	m.need, m.charge, m.seen, m.life = m.need[:0], m.charge[:0], m.seen[:0], m.life[:0]
	for _, k := range c.classes {
		m.need, m.charge, m.seen, m.life = append(m.need, k.need), append(m.charge, k.charge), append(m.seen, k.seen), append(m.life, k.life)
	}
	return true
}

// maxReleased bounds the releases remembered for learning.
const maxReleased = 4096

// trimReleased forgets releases older than lingerMax, and the older half if
// that leaves maxReleased or more. Called with c.mu held.
func (c *Controller) trimReleased(now int64) {
	cut := now - int64(lingerMax)
	i := 0
	for i < len(c.released) && c.released[i].at < cut {
		i++
	}
	if len(c.released)-i >= maxReleased {
		i = len(c.released) - maxReleased/2
	}
	c.released = append(c.released[:0], c.released[i:]...)
}

// publish takes what the learner made of the latest reading. Called with
// c.mu held; the caller resums.
func (c *Controller) publish(est []estimate, base [numRes][]float64, sigma [numRes]float64) {
	for i, k := range c.classes {
		e := &est[i]
		k.learned, k.known, k.confirmed, k.lower, k.prof = e.learned, e.known, e.confirmed, e.lower, e.prof
		k.settle = 0
		for r := res(0); r < numRes; r++ {
			if k.need.has(r) && e.known.has(r) {
				k.settle = max(k.settle, e.settle[r])
			}
		}
		k.price()
	}
	if len(base[resCPU]) > 0 {
		c.b.cpu.base, c.b.cpu.margin = base[resCPU][0], marginSigmas[resCPU]*sigma[resCPU]
		c.b.mem.base, c.b.mem.margin = base[resMem][0], marginSigmas[resMem]*sigma[resMem]
	}
	for i, v := range base[resGPU] {
		if i < c.b.ndev {
			c.b.gpu[i].base, c.b.gpu[i].margin = v, marginSigmas[resGPU]*sigma[resGPU]
		}
	}
}
