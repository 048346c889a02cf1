package tuner

import "time"

// Reason says why a slot was refused.
type Reason uint8

// Refusal reasons, as they appear in the headroom.slots.refused metric.
const (
	reasonNone   Reason = iota
	ReasonMax           // MaxSlots issued
	ReasonRamp          // RampThrottle since the last admission
	ReasonStale         // readings failing or stale: MinSlots only
	ReasonCPU           // no room for one more slot's CPU
	ReasonMemory        // no room for one more slot's memory
	ReasonGPU           // no device with room for one more slot's GPU memory
	// ReasonProbe: the class's cost is neither declared nor confirmed yet,
	// and as many of its slots as it may probe with are issued.
	ReasonProbe
	// ReasonUnhealthy: every GPU the class could be charged to is unhealthy
	// (gpu.Device.Unhealthy); not even MinSlots are admitted, so that the
	// queue's tasks go to workers with healthy GPUs.
	ReasonUnhealthy
	// ReasonEncoder: no healthy device has an encoder session, or engine
	// time, left for one more slot (encoder.go).
	ReasonEncoder
	numReasons
)

var reasonNames = [numReasons]string{"none", "max", "ramp", "stale", "cpu", "memory", "gpu", "probe", "gpu_unhealthy", "encoder"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// resource is the shared resource a refusal is for (0: the class's own limits).
func (r Reason) resource() Resource {
	switch r {
	case ReasonCPU:
		return CPU
	case ReasonMemory:
		return Memory
	case ReasonGPU:
		return GPUMemory
	case ReasonUnhealthy:
		return GPUMemory | Encoder
	case ReasonEncoder:
		return Encoder
	}
	return 0
}

// Workflow task queue kinds, as a slot records them.
const (
	kindUnknown int8 = 0
	kindSticky  int8 = 1
	kindNormal  int8 = -1
)

// decide is the admission decision: whether one more slot of class k, for a
// task queue of the given kind, may be issued at now (nanoseconds; read only
// with a ramp) against budget b, whose readings are usable if fresh. It
// returns the device to charge (-1: none) or the refusal and, for
// ReasonRamp, how long until the throttle allows one. It changes nothing.
//
// In order: never above MaxSlots; always below MinSlots (GPU classes: on a
// healthy device); workflow pollers
// never starve (each queue kind gets its first slot whatever the readings
// say, and neither takes the last slot while the other holds none); stale
// readings admit nothing more; the ramp throttle spaces admissions; a
// probing class stays within its window; then the budget: the slot's charge
// must fit every resource the class consumes.
func decide(k *class, b *budget, kind int8, now int64, fresh bool) (int, Reason, time.Duration) {
	if k.issued >= k.max {
		return -1, ReasonMax, 0
	}
	if k.sawSticky && kind != kindUnknown {
		mine, other := k.normal(), k.sticky
		if kind == kindSticky {
			mine, other = k.sticky, k.normal()
		}
		if other == 0 && mine > 0 && k.issued >= k.max-1 && k.max > 1 {
			return -1, ReasonMax, 0
		}
	}
	if k.guaranteed(kind) {
		d := b.anyDevice(k)
		if d < 0 && k.onDevice && b.devices(k) && b.allSick() {
			return -1, ReasonUnhealthy, 0
		}
		return d, reasonNone, 0
	}
	if !fresh {
		return -1, ReasonStale, 0
	}
	if k.ramp > 0 && k.lastIssue >= 0 && now-k.lastIssue < k.ramp {
		return -1, ReasonRamp, time.Duration(k.ramp - (now - k.lastIssue))
	}
	if k.probe && k.issued >= k.probeWindow() {
		return -1, ReasonProbe, 0
	}
	return b.fits(k)
}

// guaranteed reports whether one more slot of k for a task queue of the
// given kind is admitted whatever the readings and the waiters say (below
// MaxSlots): k has fewer than MinSlots issued, or it is a workflow supplier
// whose pollers of this kind hold no slot.
func (k *class) guaranteed(kind int8) bool {
	if k.issued < k.min {
		return true
	}
	if !k.sawSticky || kind == kindUnknown {
		return false
	}
	if kind == kindSticky {
		return k.sticky == 0
	}
	return k.normal() == 0
}
