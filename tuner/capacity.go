package tuner

import "math"

// fit is how many more slots of k the budget admits now, as if they were
// asked for one after another with no ramp throttle: what the worker can
// still take of this class at its targets. It is the count an autoscaler
// needs (capacity left), not MaxSlots − issued: within MaxSlots and the
// probe window, at least what MinSlots guarantees, nothing beyond MinSlots
// on stale readings. Called with c.mu held.
func (c *Controller) fit(k *class) int {
	free := k.max - k.issued
	if free <= 0 {
		return 0
	}
	b := &c.b
	if k.onDevice && b.devices(k) && b.allSick() {
		return 0 // what decide refuses even below MinSlots
	}
	guaranteed := max(0, k.min-k.issued)
	if !c.fresh(k) {
		return min(free, guaranteed)
	}
	if k.probe {
		free = min(free, max(0, k.probeWindow()-k.issued))
	}
	n := free
	if k.need.has(resCPU) {
		n = min(n, per(b.cpu.room(), k.charge[resCPU]))
	}
	if k.need.has(resMem) {
		n = min(n, per(b.mem.room(), k.charge[resMem]))
	}
	if b.devices(k) {
		g := 0
		for i := 0; i < b.ndev; i++ {
			g = min(g+b.fitOn(k, i), math.MaxInt32)
		}
		n = min(n, g)
	}
	return max(n, min(free, guaranteed))
}

// per is how many charges fit in room (MaxInt for a charge of nothing).
func per(room, charge float64) int {
	if charge <= 0 {
		return math.MaxInt
	}
	if !(room > 0) {
		return 0
	}
	return int(min(room/charge, float64(math.MaxInt32)))
}

// fitOn is how many more slots of k device i takes on its own resources
// (GPU memory, encoder): 0 for a device not seen, unhealthy, or without the
// encoder k needs. Its caller bounds it by the host's resources and
// MaxSlots.
func (b *budget) fitOn(k *class, i int) int {
	if !b.seen[i] || b.sick[i] != "" || b.lost {
		return 0
	}
	d := math.MaxInt32
	if k.need.has(resGPU) {
		d = per(b.gpu[i].room(), k.charge[resGPU])
	}
	if e := &b.enc[i]; k.need&Encoder != 0 && b.encoders {
		if !e.known {
			return 0
		}
		d = min(d, per(e.sessions.room(), k.sessions))
		if k.load > 0 {
			d = min(d, per(e.load.room(), k.load))
		}
	}
	return min(d, math.MaxInt32)
}

// fitPerDevice is fit(k) on each device: what device i takes, bounded by
// what the host and MaxSlots allow the class in all (nil: not charged to
// devices). Called with c.mu held.
func (c *Controller) fitPerDevice(k *class) []int {
	if !c.b.devices(k) {
		return nil
	}
	all := c.fit(k)
	out := make([]int, c.b.ndev)
	for i := range out {
		out[i] = min(c.b.fitOn(k, i), all)
	}
	return out
}
