//go:build linux && cgo

package gpu

import (
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// health reads what makes a device unfit for new work: critical Xid events,
// uncorrectable ECC errors, pages or rows waiting for retirement or remap.
// It reads and never decides: Device.Unhealthy says why, the tuner gates.
// Every NVML call is made only when the loaded library exports it and after
// a good Init (the NVMLSource's rules).
type health struct {
	quiet   time.Duration
	ignored map[uint64]bool

	has        map[string]bool    // symbols the library exports (at Init)
	events     nvml.EventSet      // nil: no event support
	registered map[string]bool    // devices registered for critical Xids, by UUID
	xid        map[string]xidSeen // last critical Xid per device UUID
	count      map[string]uint64  // critical Xids per device UUID since the source started
}

type xidSeen struct {
	xid uint64
	at  time.Time
}

func (o NVMLOptions) health() health {
	h := health{quiet: o.HealthQuiet, ignored: map[uint64]bool{}}
	if h.quiet <= 0 {
		h.quiet = 5 * time.Minute
	}
	xids := o.ApplicationXids
	if xids == nil {
		xids = DefaultApplicationXids
	}
	for _, x := range xids {
		h.ignored[x] = true
	}
	return h
}

// healthSymbols are the NVML functions health uses.
var healthSymbols = []string{"nvmlEventSetCreate", "nvmlDeviceRegisterEvents", "nvmlEventSetWait", "nvmlEventSetFree",
	"nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRetiredPagesPendingStatus", "nvmlDeviceGetRemappedRows"}

// start runs after each good Init: which calls exist, and a fresh event set.
func (h *health) start(lib nvml.Interface) {
	h.has = exported(lib, healthSymbols)
	h.events, h.registered = nil, map[string]bool{}
	if h.xid == nil {
		h.xid, h.count = map[string]xidSeen{}, map[string]uint64{}
	}
	if h.has["nvmlEventSetCreate"] && h.has["nvmlDeviceRegisterEvents"] && h.has["nvmlEventSetWait"] {
		if set, ret := lib.EventSetCreate(); ret == nvml.SUCCESS {
			h.events = set
		}
	}
}

// stop runs before Shutdown: the event set is NVML state.
func (h *health) stop() {
	if h.events != nil && h.has["nvmlEventSetFree"] {
		h.events.Free()
	}
	h.events = nil
}

// drain takes the critical Xid events NVML has queued, at most 256 a read.
func (h *health) drain(now time.Time) {
	if h.events == nil {
		return
	}
	for range 256 {
		e, ret := h.events.Wait(0)
		if ret != nvml.SUCCESS { // ERROR_TIMEOUT: none left
			return
		}
		if e.EventType&nvml.EventTypeXidCriticalError == 0 || h.ignored[e.EventData] || e.Device == nil {
			continue
		}
		if uuid, ret := e.Device.GetUUID(); ret == nvml.SUCCESS {
			h.xid[uuid] = xidSeen{xid: e.EventData, at: now}
			h.count[uuid]++
		}
	}
}

// of says why device d (uuid; for a MIG device, its parent GPU's handle and
// UUID) should take no new work, "" if nothing does.
func (h *health) of(d nvml.Device, uuid string, now time.Time) string {
	if h.events != nil && !h.registered[uuid] {
		// NOT_SUPPORTED on some boards: then no events, the rest still holds.
		d.RegisterEvents(nvml.EventTypeXidCriticalError, h.events)
		h.registered[uuid] = true
	}
	if x, ok := h.xid[uuid]; ok {
		if now.Sub(x.at) < h.quiet {
			return fmt.Sprintf("Xid %d %v ago", x.xid, now.Sub(x.at).Round(time.Second))
		}
		delete(h.xid, uuid)
	}
	if h.has["nvmlDeviceGetTotalEccErrors"] {
		if n, ret := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); ret == nvml.SUCCESS && n > 0 {
			return fmt.Sprintf("%d uncorrectable ECC errors since the driver loaded", n)
		}
	}
	if h.has["nvmlDeviceGetRemappedRows"] {
		if _, unc, pending, failed, ret := d.GetRemappedRows(); ret == nvml.SUCCESS {
			switch {
			case failed:
				return "row remapping failed"
			case pending:
				return fmt.Sprintf("row remap pending (%d uncorrectable rows): reset the GPU", unc)
			}
		}
	}
	if h.has["nvmlDeviceGetRetiredPagesPendingStatus"] {
		if st, ret := d.GetRetiredPagesPendingStatus(); ret == nvml.SUCCESS && st == nvml.FEATURE_ENABLED {
			return "page retirement pending: reset the GPU"
		}
	}
	return ""
}
