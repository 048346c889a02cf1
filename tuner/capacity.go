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
	per := func(room, charge float64) int {
		if charge <= 0 {
			return math.MaxInt
		}
		if !(room > 0) {
			return 0
		}
		return int(min(room/charge, float64(math.MaxInt32)))
	}
	if k.need.has(resCPU) {
		n = min(n, per(b.cpu.room(), k.charge[resCPU]))
	}
	if k.need.has(resMem) {
		n = min(n, per(b.mem.room(), k.charge[resMem]))
	}
	if b.devices(k) {
		g := 0
		for i := 0; i < b.ndev; i++ {
			if !b.seen[i] || b.sick[i] != "" {
				continue
			}
			d := math.MaxInt32
			if k.need.has(resGPU) {
				d = per(b.gpu[i].room(), k.charge[resGPU])
			}
			if e := &b.enc[i]; k.need&Encoder != 0 && b.encoders {
				if !e.known {
					continue
				}
				d = min(d, per(e.sessions.room(), k.sessions))
				if k.load > 0 {
					d = min(d, per(e.load.room(), k.load))
				}
			}
			g = min(g+min(d, math.MaxInt32), math.MaxInt32)
		}
		n = min(n, g)
	}
	return max(n, min(free, guaranteed))
}
