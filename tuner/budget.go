package tuner

import (
	"math"
	"time"
)

// maxDevices bounds the per-device budgets. Devices beyond it (more than 64
// GPUs or MIG instances) are not admitted to.
const maxDevices = 64

// line is the budget of one resource (on one device for GPU memory), in its
// units (cores or bytes). A slot of charge x fits if
//
//	max(read + remain, base + expect) + held + margin + x ≤ limit
//
// read + remain is the reading plus what used slots have still to show (see
// profile.remaining); base + expect is the usage of everything else plus the
// full charge of every used slot. Either alone would do if the model were
// right; the larger is taken so that neither a reading low by chance or a
// footprint shown early (first term small) nor other usage growing (second
// term small) lets a slot in that does not fit. margin is how far the
// readings wander from the learned model (marginSigmas × the fit's residual
// standard deviation): reading noise, and footprints that differ from task to task.
type line struct {
	limit  float64 // target × capacity; +Inf: capacity unknown
	read   float64 // the latest reading
	over   bool    // the reading is at or above target: nothing fits
	base   float64 // usage by anything but this controller's slots
	expect float64 // Σ charge of used slots
	remain float64 // Σ what used slots have still to show at the reading
	held   float64 // Σ charge of reserved, unused slots
	margin float64 // marginSigmas × the learned model's residual standard deviation
}

// room is what one more slot may be charged. A tolerance of 1e-9 of the
// limit keeps float rounding from refusing an exact fit.
func (l *line) room() float64 {
	if l.over {
		return math.Inf(-1)
	}
	return l.limit - max(l.read+l.remain, l.base+l.expect) - l.held - l.margin + 1e-9*l.limit
}

// set takes a new reading: frac of capacity in use (capacity 0: unknown,
// and only the fraction is judged) against a target fraction.
func (l *line) set(target, frac, capacity float64) {
	l.over = frac >= target
	if capacity <= 0 {
		l.read, l.limit = 0, math.Inf(1)
		return
	}
	l.read, l.limit = frac*capacity, target*capacity
}

// budget is the room per resource: CPU and memory, and GPU memory and
// encoders per device index (see Controller.devIndex).
type budget struct {
	cpu, mem line
	gpu      [maxDevices]line
	enc      [maxDevices]encoderLines // encoder.go
	seen     [maxDevices]bool         // device in the latest reading
	sick     [maxDevices]string       // why a device takes no new slots ("": it may)
	lost     bool                     // NVML lost the GPUs: every device is as sick
	ndev     int
	encoders bool // some device in the latest reading reports an encoder
	// at is the time of the reading each line was set from (controller
	// clock): usage for CPU and memory, the GPU reading for GPU memory.
	usageAt, gpuAt int64
}

// fits reports whether one more slot of k fits, and on which device.
func (b *budget) fits(k *class) (int, Reason, time.Duration) {
	if k.need.has(resMem) && !(k.charge[resMem] <= b.mem.room()) {
		return -1, ReasonMemory, 0
	}
	if k.need.has(resCPU) && !(k.charge[resCPU] <= b.cpu.room()) {
		return -1, ReasonCPU, 0
	}
	if !b.devices(k) {
		return -1, reasonNone, 0
	}
	if d := b.device(k, true); d >= 0 {
		return d, reasonNone, 0
	}
	if b.allSick() {
		return -1, ReasonUnhealthy, 0
	}
	if k.need.has(resGPU) && !b.memoryFits(k) {
		return -1, ReasonGPU, 0
	}
	return -1, ReasonEncoder, 0
}

// devices reports whether a slot of k is charged to a device: k consumes
// GPU memory, or encoders and some device reports one (else the class is
// budgeted on its other resources: encoder.go).
func (b *budget) devices(k *class) bool {
	return k.need.has(resGPU) || (k.need&Encoder != 0 && b.encoders)
}

// allSick reports whether the latest reading has devices and every one is
// unhealthy, or NVML has lost them.
func (b *budget) allSick() bool {
	if b.lost {
		return true
	}
	n := 0
	for i := 0; i < b.ndev; i++ {
		if b.seen[i] {
			if b.sick[i] == "" {
				return false
			}
			n++
		}
	}
	return n > 0
}

// anyDevice returns the device a slot admitted regardless of resources is
// charged to: the one with the most room (-1: not charged to a device, or
// none).
func (b *budget) anyDevice(k *class) int {
	if !k.onDevice || !b.devices(k) {
		return -1
	}
	return b.device(k, false)
}

// device returns the healthy device in the latest reading with the most
// room for k (GPU memory, else encoder sessions), only among those where a
// slot of k fits if mustFit; -1 if none.
func (b *budget) device(k *class, mustFit bool) int {
	if b.lost {
		return -1
	}
	enc := k.need&Encoder != 0 && b.encoders
	best, most := -1, 0.0
	for i := 0; i < b.ndev; i++ {
		if !b.seen[i] || b.sick[i] != "" || (enc && !b.enc[i].known) {
			continue
		}
		var r float64
		if k.need.has(resGPU) {
			r = b.gpu[i].room()
			if mustFit && !(k.charge[resGPU] <= r) {
				continue
			}
		}
		if enc {
			if mustFit && !b.enc[i].fits(k) {
				continue
			}
			if !k.need.has(resGPU) {
				r = -b.enc[i].committed()
			}
		}
		if best < 0 || r > most {
			best, most = i, r
		}
	}
	return best
}

// memoryFits reports whether one more slot of k fits some healthy device's
// GPU memory.
func (b *budget) memoryFits(k *class) bool {
	for i := 0; i < b.ndev; i++ {
		if b.seen[i] && b.sick[i] == "" && k.charge[resGPU] <= b.gpu[i].room() {
			return true
		}
	}
	return false
}
