//go:build linux && cgo

package gpu

import (
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// thermalSymbols are the NVML functions the thermal reading uses. The clock
// event reasons were called throttle reasons before driver 535; either name
// is used, the newer first.
var thermalSymbols = []string{"nvmlDeviceGetTemperature", "nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"}

// slowdowns are the clock event reasons that slow a device for heat or
// power, as Device.Slowdown names them. Reasons that are not about the
// device's condition (idle, application clocks, sync boost, the software
// power cap every busy board reaches) are left out.
var slowdowns = []struct {
	bit  uint64
	name string
}{
	{nvml.ClocksThrottleReasonHwThermalSlowdown, "hw thermal"},
	{nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, "power brake"},
	{nvml.ClocksThrottleReasonHwSlowdown, "hw"},
	{nvml.ClocksEventReasonSwThermalSlowdown, "sw thermal"},
}

// thermal reads a device's temperature (°C, 0 if not read) and the heat and
// power slowdowns in effect. Each call only where the library exports it.
func thermal(d nvml.Device, has map[string]bool) (int, string) {
	temp := 0
	if has["nvmlDeviceGetTemperature"] {
		if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			temp = int(t)
		}
	}
	var reasons uint64
	ret := nvml.ERROR_NOT_SUPPORTED
	switch {
	case has["nvmlDeviceGetCurrentClocksEventReasons"]:
		reasons, ret = d.GetCurrentClocksEventReasons()
	case has["nvmlDeviceGetCurrentClocksThrottleReasons"]:
		reasons, ret = d.GetCurrentClocksThrottleReasons()
	}
	if ret != nvml.SUCCESS {
		return temp, ""
	}
	var names []string
	for _, s := range slowdowns {
		if reasons&s.bit != 0 {
			names = append(names, s.name)
		}
	}
	return temp, strings.Join(names, ", ")
}
