package tuner

import "go.temporal.io/sdk/worker"

// slot is one reservation's record. A slot holds, in the budget's sums, its
// class's charge: while reserved and unused in held, once used in expect
// (all of it) and in remain (what it has still to show at the latest
// reading). The charge is the class's current one and what a slot still has
// to show is a function of its age, the reading's time and its class's
// profile, so the sums are recomputed whenever those change (resum) and each
// operation in between adds or takes exactly what resum would count.
// Records are reused after release; permits are not (see permits).
type slot struct {
	permit *worker.SlotPermit // nil when not reserved; UserData points back here
	cls    *class
	usedAt int64 // -1 until MarkSlotUsed
	device int   // GPU device index, -1 if none
	kind   int8  // workflow task queue kind
	idx    int   // index in Controller.usedSlots while used
	state  int8  // while used: free, bound or done (lease.go)
	pos    int   // index in its class's free or done list
	ls     *lease
}

// hold adds a reserved, unused slot of k on dev to the held sums. Called
// with c.mu held, as is everything in this file.
func (c *Controller) hold(k *class, dev int) {
	c.unused++
	if dev >= 0 {
		k.unusedOn[dev]++
		c.b.gpu[dev].held += k.charge[resGPU]
		c.b.enc[dev].add(k, 1, false)
	}
	if k.need.has(resCPU) {
		c.b.cpu.held += k.charge[resCPU]
	}
	if k.need.has(resMem) {
		c.b.mem.held += k.charge[resMem]
	}
}

// unhold takes it out again. With none left the sums restart at zero
// exactly, so that rounding does not build up.
func (c *Controller) unhold(k *class, dev int) {
	c.unused--
	if dev >= 0 {
		k.unusedOn[dev]--
	}
	if c.unused == 0 {
		c.b.cpu.held, c.b.mem.held = 0, 0
		for i := 0; i < c.b.ndev; i++ {
			c.b.gpu[i].held = 0
			c.b.enc[i].zero(false)
		}
		return
	}
	if dev >= 0 {
		c.b.gpu[dev].held -= k.charge[resGPU]
		c.b.enc[dev].add(k, -1, false)
	}
	if k.need.has(resCPU) {
		c.b.cpu.held -= k.charge[resCPU]
	}
	if k.need.has(resMem) {
		c.b.mem.held -= k.charge[resMem]
	}
}

// use moves a reserved slot into the used sums at now: it has shown
// nothing yet, so all of its charge remains.
func (c *Controller) use(sl *slot, now int64) {
	k := sl.cls
	c.unhold(k, sl.device)
	sl.usedAt = now
	k.used++
	sl.state, sl.pos = slotFree, len(k.free)
	k.free = append(k.free, sl)
	sl.idx = len(c.usedSlots)
	c.usedSlots = append(c.usedSlots, sl)
	if sl.device >= 0 {
		k.usedOn[sl.device]++
		c.b.gpu[sl.device].expect += k.charge[resGPU]
		c.b.gpu[sl.device].remain += k.charge[resGPU]
		c.b.enc[sl.device].add(k, 1, true)
	}
	if k.need.has(resCPU) {
		c.b.cpu.expect += k.charge[resCPU]
		c.b.cpu.remain += k.charge[resCPU]
	}
	if k.need.has(resMem) {
		c.b.mem.expect += k.charge[resMem]
		c.b.mem.remain += k.charge[resMem]
	}
}

// unuse takes a used slot out of the used sums: exactly its charge and what
// resum counted as its remainder. What it showed stays in the reading until
// a new reading shows it gone.
func (c *Controller) unuse(sl *slot) {
	k := sl.cls
	last := c.usedSlots[len(c.usedSlots)-1]
	last.idx = sl.idx
	c.usedSlots[sl.idx] = last
	c.usedSlots[len(c.usedSlots)-1] = nil
	c.usedSlots = c.usedSlots[:len(c.usedSlots)-1]
	k.used--
	k.seen++
	if age := c.nanos() - sl.usedAt; k.life == 0 {
		k.life = age
	} else {
		k.life += (age - k.life) / 8
	}
	if len(c.usedSlots) == 0 {
		c.b.cpu.expect, c.b.cpu.remain, c.b.mem.expect, c.b.mem.remain = 0, 0, 0, 0
		for i := 0; i < c.b.ndev; i++ {
			c.b.gpu[i].expect, c.b.gpu[i].remain = 0, 0
			c.b.enc[i].zero(true)
		}
		if sl.device >= 0 {
			k.usedOn[sl.device]--
		}
		return
	}
	if sl.device >= 0 {
		k.usedOn[sl.device]--
		c.b.gpu[sl.device].expect -= k.charge[resGPU]
		c.b.gpu[sl.device].remain -= c.remaining(sl, resGPU, c.b.gpuAt)
		c.b.enc[sl.device].add(k, -1, true)
	}
	if k.need.has(resCPU) {
		c.b.cpu.expect -= k.charge[resCPU]
		c.b.cpu.remain -= c.remaining(sl, resCPU, c.b.usageAt)
	}
	if k.need.has(resMem) {
		c.b.mem.expect -= k.charge[resMem]
		c.b.mem.remain -= c.remaining(sl, resMem, c.b.usageAt)
	}
}

// remaining is what used slot sl has still to show of resource r in a
// reading taken at at: all of its charge if it was used after the reading.
func (c *Controller) remaining(sl *slot, r res, at int64) float64 {
	ch := sl.cls.charge[r]
	if sl.usedAt >= at {
		return ch
	}
	return sl.cls.prof[r].remaining(ch, at-sl.usedAt)
}

// resum recomputes every sum from the counts, the charges and the used
// slots: the definition the incremental operations above keep to.
func (c *Controller) resum() {
	b := &c.b
	b.cpu.held, b.cpu.expect, b.cpu.remain = 0, 0, 0
	b.mem.held, b.mem.expect, b.mem.remain = 0, 0, 0
	for i := 0; i < b.ndev; i++ {
		b.gpu[i].held, b.gpu[i].expect, b.gpu[i].remain = 0, 0, 0
		b.enc[i].zero(false)
		b.enc[i].zero(true)
	}
	for _, k := range c.classes {
		unused := float64(k.issued - k.used)
		used := float64(k.used)
		if k.need.has(resCPU) {
			b.cpu.held += unused * k.charge[resCPU]
			b.cpu.expect += used * k.charge[resCPU]
		}
		if k.need.has(resMem) {
			b.mem.held += unused * k.charge[resMem]
			b.mem.expect += used * k.charge[resMem]
		}
		if k.onDevice {
			for d := 0; d < b.ndev; d++ {
				b.gpu[d].held += float64(k.unusedOn[d]) * k.charge[resGPU]
				b.gpu[d].expect += float64(k.usedOn[d]) * k.charge[resGPU]
				b.enc[d].add(k, float64(k.unusedOn[d]), false)
				b.enc[d].add(k, float64(k.usedOn[d]), true)
			}
		}
	}
	for _, sl := range c.usedSlots {
		k := sl.cls
		if k.need.has(resCPU) {
			b.cpu.remain += c.remaining(sl, resCPU, b.usageAt)
		}
		if k.need.has(resMem) {
			b.mem.remain += c.remaining(sl, resMem, b.usageAt)
		}
		if sl.device >= 0 {
			b.gpu[sl.device].remain += c.remaining(sl, resGPU, b.gpuAt)
		}
	}
}
